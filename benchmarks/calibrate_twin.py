"""Calibrate the synthetic twin: run a cheap surrogate of the radiomics + DLRC pipeline for
several settings of the generator's knobs and tabulate what the pipeline finds.

    python benchmarks/calibrate_twin.py benchmarks/calibration/grid.yaml --out benchmarks/calibration/results.csv

For each named setting of ``grid.yaml`` (dotted parameter keys over ``params/paper.yaml``,
e.g. ``study.signal.heterogeneity: 0.4``) it

1. generates the paper-scale twin with those knobs (into ``--work/<name>``; regenerated only
   when the generator or the knobs changed),
2. extracts the reader-1 radiomics features with ``calibration/radiomics_surrogate.yaml``
   (original + wavelet images: about a fifth of the paper-scale extraction's cost),
3. runs the package's own radiomics pipeline on them (ComBat, Mann-Whitney, Spearman, LASSO,
   backward AIC: ``FeatureScore`` with the run's parameters), and
4. fits the DLRC model (clinical screening + Rad_score + a DL_score) and reports its AUCs,
   Hosmer-Lemeshow p-values and calibration slopes.

The DL_score of the surrogate is a seeded standard-normal draw, not a network: with the
random-initialised weights that are all this machine can load, the deep-learning claims are
not testable and the twin is not tuned to them (see the report's weight note).

The same row for a finished full-pipeline run (e.g. ``make reproduce``'s ``reports/paper``),
to compare the surrogate with the pipeline it stands in for:

    python benchmarks/calibrate_twin.py --from-run reports/paper --name full_cal_c \
        --out benchmarks/calibration/full_runs.csv

Nothing here reads the paper's results: the targets are applied by a person reading the
table (docs/twin_calibration.md lists them, the chosen setting and the full-pipeline checks).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlrc_lib.core.config import load_params  # noqa: E402
from dlrc_lib.evaluation.performance import evaluate_score  # noqa: E402
from dlrc_lib.features.radiomics import extract_radiomics, feature_groups  # noqa: E402
from dlrc_lib.model.dlrc import fit_dlrc  # noqa: E402
from dlrc_lib.scores.pipeline import FeatureScore  # noqa: E402
from dlrc_lib.stats.calibration import calibration_curve, hosmer_lemeshow  # noqa: E402
from dlrc_lib.stats.roc import auc as roc_auc  # noqa: E402
from dlrc_lib.study.manifest import load_study  # noqa: E402
from dlrc_lib.study.schema import COHORTS  # noqa: E402
from dlrc_lib.twin.prepare import prepare_study  # noqa: E402

SURROGATE = ROOT / "benchmarks" / "calibration" / "radiomics_surrogate.yaml"


def evaluate_setting(name: str, overrides: dict, work: Path, settings: Path, n_jobs: int,
                     params_path: Path, by_image_type: bool = False) -> dict:
    t0 = time.perf_counter()
    over = dict(overrides)
    over["study.twin_dir"] = str(work / name)
    over["run_name"] = f"calibration-{name}"
    params = load_params(params_path, over)
    manifest = prepare_study(params)
    t_gen = time.perf_counter() - t0
    study = load_study(manifest)
    rad = extract_radiomics(study, str(settings), str(work / "cache"), sequences=params.radiomics.sequences,
                            masks=("reader1",), n_jobs=n_jobs, progress=True)
    t_ext = time.perf_counter() - t0 - t_gen
    fit = FeatureScore(params.harmonisation, params.selection, seed=params.seed).fit(rad.features, study,
                                                                                     lost=rad.lost)
    perf = evaluate_score(fit.score_, study, cutoff_from="train", model="Radiomics").set_index("cohort")
    sel = list(fit.selected_["feature"])
    groups = feature_groups(sel)
    row: dict = {"setting": name, **{k: v for k, v in overrides.items()}}
    for c in COHORTS:
        row[f"rad_auc_{c}"] = round(float(perf.loc[c, "auc"]), 3)
    scored = fit.score_.dropna()
    _rad_slopes(row, study.set_index("patient_id")[["cohort", "lnm"]].loc[scored.index], scored)
    row["rad_drop_train_external"] = round(row["rad_auc_train"] - row["rad_auc_external"], 3)
    _beyond_size(row, rad.features, study)
    _score_vs_traits(row, scored, study, params)
    if by_image_type:
        _by_image_type(row, rad.features, study, params, fit)
    funnel = fit.funnel_.set_index(fit.funnel_.columns[0]).iloc[:, 0].to_dict()
    row["funnel"] = " > ".join(str(v) for v in funnel.values())
    row["n_selected"] = len(sel)
    row["selected_image_types"] = ", ".join(f"{k}:{v}" for k, v in groups["image_type"].value_counts().items())
    # DLRC: clinical screening + Rad_score + a noise DL_score (random weights carry no tuned signal)
    st = study.set_index("patient_id", drop=False).rename_axis("patient_id")
    scores = st.loc[fit.score_.dropna().index, ["cohort", "lnm"]].copy()
    scores["Rad_score"] = fit.score_.dropna()
    scores["DL_score"] = np.random.default_rng(params.seed).normal(size=len(scores))
    d = fit_dlrc(scores, st)
    row["dlrc_terms"] = " + ".join(d.model.terms_)
    scores["c_lnm"] = st.loc[scores.index, "c_lnm"]
    _row_from_predictions(row, scores, d.prob)
    row["seconds_generate"] = round(t_gen, 1)
    row["seconds_extract"] = round(t_ext, 1)
    row["seconds_total"] = round(time.perf_counter() - t0, 1)
    return row


def _beyond_size(row: dict, features: pd.DataFrame, study: pd.DataFrame) -> dict:
    """How much of what the features know about LNM, once tumour size is taken out, carries from
    training to the validation cohorts.

    Each feature is standardised within its scanner and its linear dependence on the log tumour
    diameter (within scanner) removed; its univariate AUC - 0.5 is computed per cohort. Columns:
    the median |AUC - 0.5| in training (how strong the size-independent signal is) and the
    correlation of AUC - 0.5 across features between training and each validation cohort (near
    1: the same features carry it everywhere; low: what a multivariable score learns beyond size
    in training is noise or centre-specific).
    """
    from scipy.stats import rankdata

    st = study.set_index("patient_id").loc[features.index]
    X = features.loc[:, features.notna().all() & (features.std() > 0)].astype(float)
    size = np.log(st["tumour_diameter_mm"].astype(float))
    R = pd.DataFrame(index=X.index, columns=X.columns, dtype=float)
    for idx in st.groupby("scanner").groups.values():
        B = X.loc[idx]
        B = (B - B.mean()) / B.std().replace(0, 1)
        s = size.loc[idx] - size.loc[idx].mean()
        beta = B.mul(s, axis=0).sum() / max(float((s ** 2).sum()), 1e-12)
        R.loc[idx] = (B - np.outer(s, beta)).to_numpy()
    d = {}
    for c in COHORTS:
        m = (st["cohort"] == c).to_numpy()
        y = st.loc[m, "lnm"].astype(int).to_numpy()
        r = np.apply_along_axis(rankdata, 0, R.loc[m].to_numpy())
        n1, n0 = y.sum(), len(y) - y.sum()
        d[c] = (r[y == 1].sum(0) - n1 * (n1 + 1) / 2) / (n1 * n0) - 0.5
    row["beyond_size_auc_train"] = round(float(np.median(np.abs(d["train"]))), 3)
    for c in COHORTS[1:]:
        row[f"beyond_size_corr_{c}"] = round(float(np.corrcoef(d["train"], d[c])[0, 1]), 3)
    return row


def _score_vs_traits(row: dict, score: pd.Series, study: pd.DataFrame, params) -> dict:
    """What the Rad_score measures: its least-squares regression (training cohort) on the
    generator's own latent tumour traits and the log tumour diameter, which the twin knows for
    every patient. A score that is mostly log size plus noise (low R^2, small trait coefficients)
    fits that noise in training and carries size's LNM relation, which Table 1 makes weaker in
    the external cohort: that is what its slopes below 1 then show."""
    import statsmodels.api as sm

    from dlrc_lib.twin.anatomy import patient_model

    table = study.reset_index(drop=True)
    latent = pd.DataFrame([patient_model(r, params.study.signal, params.seed, i).latent
                           for i, r in enumerate(table.to_dict("records"))], index=table["patient_id"])
    st = study.set_index("patient_id").loc[score.index]
    X = latent.loc[score.index].assign(log_size=np.log(st["tumour_diameter_mm"].astype(float)))
    for c in ("train", "external"):
        m = (st["cohort"] == c).to_numpy()
        fit = sm.OLS(score.to_numpy()[m], sm.add_constant(X.loc[m])).fit()
        row[f"score_r2_traits_{c}"] = round(float(fit.rsquared), 3)
        row[f"score_traits_{c}"] = " ".join(f"{k[:3]}={v:.2f}" if k != "log_size" else f"logsize={v:.2f}"
                                             for k, v in fit.params.drop("const").items())
    return row


# cumulative pools of image types for ``--by-image-type``, after the surrogate's own pool (its
# image types without GLCM, as benchmarks/calibration/radiomics_surrogate.yaml); "all" is the
# setting's own fit
SURROGATE_POOL = "surrogate (Original+Wavelet, no GLCM)"
IMAGE_TYPE_POOLS = (("Original+Wavelet", ("Original", "Wavelet")), ("+LoG", ("LoG",)),
                    ("+LBP", ("LBP2D", "LBP3D")))


def _by_image_type(row: dict, features: pd.DataFrame, study: pd.DataFrame, params, full_fit) -> dict:
    """The radiomics pipeline re-run on the surrogate's pool of features (how the surrogate would
    have scored this twin) and on growing pools of image types (Original + Wavelet, then
    LoG, then LBP, then all: ``full_fit``, the setting's own fit): which image types' features
    bring the optimism. One column, ``by_image_type``: per pool, the features after stepwise AIC,
    the radiomics AUC (training / internal / external) and the calibration slope (internal /
    external)."""
    groups = feature_groups(features.columns)
    types = groups["image_type"].to_numpy()
    pools = [(SURROGATE_POOL, np.isin(types, ["Original", "Wavelet"]) & (groups["feature_class"].to_numpy() != "glcm"))]
    keep: list[str] = []
    for label, add in IMAGE_TYPE_POOLS:
        keep += add
        pools.append((label, np.isin(types, keep)))
    fits = [(label, FeatureScore(params.harmonisation, params.selection, seed=params.seed).fit(features.loc[:, pool], study))
            for label, pool in pools]
    cohorts = study.set_index("patient_id")[["cohort", "lnm"]]
    parts = []
    for label, fit in fits + [("all", full_fit)]:
        perf = evaluate_score(fit.score_, study, cutoff_from="train", model="Radiomics").set_index("cohort")
        scored = fit.score_.dropna()
        slopes = _rad_slopes({}, cohorts.loc[scored.index], scored)
        parts.append(f"{label}: {len(fit.selected_)} features, AUC "
                     + "/".join(f"{perf.loc[c, 'auc']:.3f}" for c in COHORTS)
                     + f", slope {slopes['rad_slope_internal']:.2f}/{slopes['rad_slope_external']:.2f}")
    row["by_image_type"] = "; ".join(parts)
    return row


def _rad_slopes(row: dict, cohorts: pd.DataFrame, score: pd.Series) -> dict:
    """Calibration slope of the radiomics model (Rad_score is its log-odds) in each cohort: below 1
    where the score fitted on training is too spread for that cohort (optimism or centre shift)."""
    for c in COHORTS:
        m = (cohorts["cohort"] == c).to_numpy()
        y = cohorts.loc[m, "lnm"].astype(int).to_numpy()
        p = 1.0 / (1.0 + np.exp(-score.loc[cohorts.index[m]].to_numpy()))
        row[f"rad_slope_{c}"] = round(float(calibration_curve(y, p).slope), 3)
    return row


def _row_from_predictions(row: dict, scores: pd.DataFrame, prob: pd.Series) -> dict:
    """The DLRC columns of a results row, from per-patient cohort, lnm, c_lnm and probability."""
    for c in COHORTS:
        m = (scores["cohort"] == c).to_numpy()
        y = scores.loc[m, "lnm"].astype(int).to_numpy()
        p = prob.loc[scores.index[m]].to_numpy()
        row[f"dlrc_auc_{c}"] = round(float(roc_auc(y, p)), 3)
        row[f"dlrc_hl_p_{c}"] = round(float(hosmer_lemeshow(y, p).pvalue), 3)
        row[f"dlrc_slope_{c}"] = round(float(calibration_curve(y, p).slope), 3)
        row[f"c_lnm_auc_{c}"] = round(float(roc_auc(y, scores.loc[m, "c_lnm"].astype(int).to_numpy())), 3)
    return row


def evaluate_run(run_dir: Path, name: str) -> dict:
    """The results row of a finished ``dlrc run`` folder (the full pipeline: all image types
    and classes, the run's own DL_score), computed as ``evaluate_setting`` computes it."""
    pred = pd.read_parquet(run_dir / "data" / "predictions.parquet")
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    study_params = run["params"]["study"]
    row: dict = {"setting": name, "commit": (run.get("git_commit") or "")[:7]}
    row.update({f"study.signal.{k}": v for k, v in study_params["signal"].items()})
    row["study.scanner_effect"] = study_params["scanner_effect"]
    for c in COHORTS:
        m = (pred["cohort"] == c).to_numpy()
        row[f"rad_auc_{c}"] = round(float(roc_auc(pred.loc[m, "lnm"].astype(int).to_numpy(),
                                                  pred.loc[m, "Rad_score"].to_numpy())), 3)
    _rad_slopes(row, pred[["cohort", "lnm"]], pred["Rad_score"])
    row["rad_drop_train_external"] = round(row["rad_auc_train"] - row["rad_auc_external"], 3)
    funnel = pd.read_csv(run_dir / "tables" / "radiomics_selection_funnel.csv")
    row["funnel"] = " > ".join(str(v) for v in funnel.iloc[:, 1])
    sel = [f["feature"] for f in json.loads((run_dir / "results" / "03_radiomics.json").read_text(encoding="utf-8"))["selected"]]
    row["n_selected"] = len(sel)
    groups = feature_groups(sel)
    row["selected_image_types"] = ", ".join(f"{k}:{v}" for k, v in groups["image_type"].value_counts().items())
    dlrc = json.loads((run_dir / "results" / "05_dlrc.json").read_text(encoding="utf-8"))
    row["dlrc_terms"] = " + ".join(dlrc["dlrc_terms"])
    return _row_from_predictions(row, pred, pred["prob_dlrc"])


def _report(row: dict, out: Path | None) -> None:
    """Print a results row and put it into ``out`` (replacing the row of the same setting)."""
    print(json.dumps(row, indent=1, default=str), flush=True)
    if out:
        old = pd.read_csv(out) if out.is_file() else pd.DataFrame()
        if len(old):
            old = old[old["setting"] != row["setting"]]
        pd.concat([old, pd.DataFrame([row])], ignore_index=True).to_csv(out, index=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grid", nargs="?", help="YAML: {setting name: {dotted key: value}}")
    ap.add_argument("--from-run", help="a finished run folder: tabulate the full pipeline's result instead")
    ap.add_argument("--name", help="the row's setting name with --from-run (default: the folder's name)")
    ap.add_argument("--params", default=str(ROOT / "params" / "paper.yaml"))
    ap.add_argument("--work", default="/tmp/dlrc-calibration", help="scratch folder (twins and cache)")
    ap.add_argument("--settings", default=str(SURROGATE), help="PyRadiomics settings of the surrogate")
    ap.add_argument("--only", nargs="*", help="run only these settings")
    ap.add_argument("--n-jobs", type=int, default=0)
    ap.add_argument("--out", help="CSV of results (rows are appended/replaced by setting name)")
    ap.add_argument("--suffix", default="", help="appended to each row's setting name, e.g. ' (full radiomics)' "
                    "with --settings params/radiomics.yaml: the same twin through the paper-scale extraction")
    ap.add_argument("--by-image-type", action="store_true",
                    help="also re-run the radiomics pipeline on growing pools of image types (a column "
                    "by_image_type; ~30 s per pool at paper scale): which image types bring the optimism")
    args = ap.parse_args()
    out = Path(args.out) if args.out else None
    if args.from_run:
        run_dir = Path(args.from_run)
        if not (run_dir / "data" / "predictions.parquet").is_file():
            ap.error(f"{run_dir}: no data/predictions.parquet: not a run that finished notebook 05")
        _report(evaluate_run(run_dir, args.name or run_dir.name), out)
        return 0
    if not args.grid:
        ap.error("give a grid file or --from-run")
    grid = yaml.safe_load(Path(args.grid).read_text(encoding="utf-8")) or {}
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for name, overrides in grid.items():
        if args.only and name not in args.only:
            continue
        row = evaluate_setting(name, overrides or {}, work, Path(args.settings), args.n_jobs, Path(args.params),
                               by_image_type=args.by_image_type)
        row["setting"] = name + args.suffix
        _report(row, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
