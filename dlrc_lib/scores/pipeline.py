"""From a feature matrix to a score: harmonise, select on the training cohort, score everyone.

:func:`fit_feature_score` is the whole chain the paper used for the radiomics model and for
each deep-learning model: (optional ICC filter) -> ComBat -> Mann–Whitney -> Spearman ->
LASSO -> backward AIC -> logistic model, whose linear predictor is the score (Rad_score,
DL_score). Everything it fitted is kept in :attr:`FeatureScoreResult.state`, a JSON-able
dict, so :func:`apply_feature_score` can score new patients without refitting: their
features are harmonised with the stored ComBat estimates, standardised with the training
means and SDs, and combined with the stored coefficients.

Patients are never dropped silently: a patient without usable features (failed extraction)
gets no score, and the reason is listed in :attr:`FeatureScoreResult.excluded`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Sequence

import numpy as np
import pandas as pd

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.memo import Memo, code_fingerprint, digest
from dlrc_lib.scores.combat import CombatEstimates, apply_combat, harmonise
from dlrc_lib.scores.selection import SelectionResult, select_features, standardise
from dlrc_lib.study.manifest import by_patient

__all__ = ["FeatureScoreResult", "EmptySelectionError", "fit_feature_score", "apply_feature_score",
           "score_frame", "selected_table", "state_estimates", "STATE_VERSION"]

STATE_VERSION = 2  # 2: harmonisation.own_data, the estimates of batches harmonised from their own data
SUPPORTED_STATE_VERSIONS = (1, 2)  # 1: only the batches of the ComBat fit itself


class EmptySelectionError(DlrcError):
    """A selection step left no feature; ``.result`` holds the funnel and the explanation."""

    def __init__(self, message: str, result: "FeatureScoreResult"):
        super().__init__(message)
        self.result = result


@dataclass
class FeatureScoreResult:
    """What :func:`fit_feature_score` produced."""

    score: pd.Series  # over ALL study patients (NaN for excluded ones): linear predictor
    funnel: pd.DataFrame  # step, n_features, rule
    selected: pd.DataFrame  # feature, coef, se, z, p, OR, OR_lower, OR_upper
    harmonised: pd.DataFrame  # features after ComBat (included patients x usable features)
    raw: pd.DataFrame  # the same features before ComBat
    state: dict[str, Any]  # JSON-able: enough for apply_feature_score
    selection: SelectionResult
    excluded: pd.DataFrame  # patient_id, cohort, reason
    harmonisation: Any = None  # dlrc_lib.scores.combat.HarmonisationResult
    notes: list[str] = field(default_factory=list)

    @property
    def intercept(self) -> float:
        return float(self.state["model"]["intercept"])

    def standardised(self, cohort: Optional[str] = None, study: Optional[pd.DataFrame] = None) -> pd.DataFrame:
        """Selected features after harmonisation, standardised with the training scaling."""
        sel = self.selection
        feats = list(self.selection.coef.index)
        Z = standardise(self.harmonised, sel.mean[feats], sel.sd[feats])
        if cohort is not None and study is not None:
            coh = by_patient(study).loc[Z.index, "cohort"]
            Z = Z[coh.to_numpy() == cohort]
        return Z




def _seq_of(name: str) -> str:
    return name.split("_", 1)[0] if "_" in name else ""


def _screen_patients(features: pd.DataFrame, study: pd.DataFrame,
                     lost: Optional[pd.DataFrame] = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Patients kept for scoring, and the excluded ones with a reason each."""
    rows = []
    why: dict[str, str] = {}
    if lost is not None and len(lost):
        why = dict(zip(lost["patient_id"].astype(str), lost["reason"].astype(str)))
    absent = [p for p in study.index if p not in features.index]
    for pid in absent:
        reason = f"no features: {why[pid]}" if pid in why else "no features (extraction failed or not run)"
        rows.append((pid, study.at[pid, "cohort"], reason))
    present = features.loc[features.index.intersection(study.index, sort=False)]
    present = present.loc[[p for p in study.index if p in present.index]]
    vals = present.to_numpy(dtype=float)
    bad = ~np.isfinite(vals)
    seqs = np.array([_seq_of(c) for c in present.columns])
    keep = []
    for i, pid in enumerate(present.index):
        if not bad[i].any():
            keep.append(pid)
            continue
        lost = [s for s in dict.fromkeys(seqs) if bad[i, seqs == s].all()]
        if lost or bad[i].mean() > 0.5:
            what = f"no {', '.join(lost)} features" if lost else f"{int(bad[i].sum())} of {bad.shape[1]} features missing"
            rows.append((pid, study.at[pid, "cohort"], what + " (extraction failed)"))
        else:
            keep.append(pid)
    excluded = pd.DataFrame(rows, columns=["patient_id", "cohort", "reason"])
    return present.loc[keep], excluded


def fit_feature_score(features: pd.DataFrame, study: pd.DataFrame, *, keep: Optional[Sequence[str]] = None,
                      harmonisation, selection, seed: int = 0,
                      keep_label: str = "ICC filter",
                      lost: Optional[pd.DataFrame] = None,
                      cache_dir: Optional[str] = None, memo: Optional[Memo] = None) -> FeatureScoreResult:
    """Harmonise, select on the training cohort and score every patient.

    Parameters
    ----------
    features : patients x features (index patient_id), e.g. all radiomics features.
    study : the study table (``dlrc_lib.study.manifest.load_study``): cohort, lnm, scanner, centre.
    keep : optional feature subset to start from (e.g. the ICC-reproducible features);
        recorded as the first funnel step after the input.
    harmonisation, selection : ``HarmonisationParams`` and ``SelectionParams``.
    seed : seeds the LASSO cross-validation folds.
    lost : optional table (patient_id, reason) of patients whose extraction failed, e.g.
        ``RadiomicsResult.lost``; their reasons are carried into :attr:`~FeatureScoreResult.excluded`.

    cache_dir : optional feature-store folder; the fit is then cached under
        ``<cache_dir>/memo/feature_score``, keyed by the bytes of every input, the parameters,
        the seed and the code (:mod:`dlrc_lib.core.memo`), so a re-run on unchanged inputs loads it.
    memo : optional :class:`~dlrc_lib.core.memo.Memo` to use instead (its hit/miss counts are
        kept for provenance).

    Raises :class:`EmptySelectionError` (a ``DlrcError``) with the explanation when a
    selection step leaves no feature; its ``.result`` still carries the funnel.
    """
    if memo is None:
        memo = Memo(cache_dir, "feature_score")
    key = None
    code = code_fingerprint(_FIT_MODULES) if memo.root is not None else None
    if code is not None:
        st = by_patient(study)
        cols = [c for c in ("cohort", "lnm", harmonisation.batch) if c in st.columns]
        key = digest(features, st[cols], None if keep is None else [str(k) for k in keep],
                     harmonisation, selection, seed, keep_label, lost, code)

    # the cross-validated LASSO path, shared by fits that differ only in the lambda rule
    lasso_memo = Memo(memo.root.parent.parent, "lasso_cv", max_entries=128) if memo.root is not None else None

    def compute() -> dict[str, Any]:
        try:
            return {"result": _fit_feature_score(features, study, keep=keep, harmonisation=harmonisation,
                                                 selection=selection, seed=seed, keep_label=keep_label,
                                                 lost=lost, lasso_memo=lasso_memo), "error": None}
        except EmptySelectionError as exc:
            return {"result": exc.result, "error": str(exc)}

    out = memo.get_or_compute(key, compute)
    if out["error"] is not None:
        raise EmptySelectionError(out["error"], out["result"])
    return out["result"]


_FIT_MODULES = ("dlrc_lib.scores.pipeline", "dlrc_lib.scores.selection", "dlrc_lib.scores.combat", "dlrc_lib.stats")


def _fit_feature_score(features: pd.DataFrame, study: pd.DataFrame, *, keep: Optional[Sequence[str]],
                       harmonisation, selection, seed: int, keep_label: str,
                       lost: Optional[pd.DataFrame], lasso_memo: Optional[Memo] = None) -> FeatureScoreResult:
    study = by_patient(study)
    features = features.copy()
    features.index = features.index.astype(str)
    unknown = features.index.difference(study.index)
    notes: list[str] = []
    if len(unknown):
        notes.append(f"{len(unknown)} patient(s) with features are not in the study table and were "
                     f"ignored, e.g. {', '.join(map(str, unknown[:3]))}")
    funnel = [{"step": "Extracted", "n_features": features.shape[1], "rule": "all features"}]
    if keep is not None:
        keep = [str(k) for k in keep]
        missing = [k for k in keep if k not in features.columns]
        if missing:
            notes.append(f"{len(missing)} feature(s) of the {keep_label} set are not in the feature "
                         f"matrix, e.g. {', '.join(missing[:3])}")
        wanted = set(keep)
        kept = [c for c in features.columns if c in wanted]
        features = features[kept]
        funnel.append({"step": keep_label, "n_features": len(kept), "rule": "kept features"})
    data, excluded = _screen_patients(features, study, lost)
    # features missing for a remaining patient cannot be harmonised: drop them (counted)
    finite = np.isfinite(data.to_numpy(dtype=float)).all(axis=0)
    if not finite.all():
        notes.append(f"{int((~finite).sum())} feature(s) with missing values in some patients were not used")
    data = data.loc[:, finite]
    cohort = study.loc[data.index, "cohort"].astype(str)
    train = data.index[cohort.to_numpy() == "train"]
    if len(train) == 0:
        raise DlrcError("feature score: no training-cohort patient has usable features")
    # features constant in the training cohort carry nothing and break ComBat's pooled variance
    sd_train = data.loc[train].std(ddof=0)
    n_const = int((sd_train.to_numpy() == 0).sum())
    data = data.loc[:, sd_train.to_numpy() > 0]
    funnel.append({"step": "Usable (finite, non-constant)", "n_features": data.shape[1],
                   "rule": f"{int((~finite).sum())} with missing values, {n_const} constant in training"})
    h = harmonise(data, study, harmonisation)
    harm = h.features
    if h.unharmonised:
        col = harmonisation.batch
        b = study.loc[harm.index, col].astype(str)
        who = [f"{col} {u} ({', '.join(b.index[b == u])})" for u in h.unharmonised]
        notes.append("ComBat: single-patient batch(es) left unharmonised (harmonisation.small_batch: "
                     "skip): " + "; ".join(who))
    y = study.loc[train, "lnm"].astype(int)
    sel = select_features(harm.loc[train], y, selection, seed=seed, funnel_prefix=funnel,
                          record_usable=False, lasso_memo=lasso_memo)
    notes.extend(sel.notes)
    score = pd.Series(np.nan, index=study.index, name="score")
    if sel.ok:
        score.loc[harm.index] = sel.linear_predictor(harm).to_numpy()
        coefs = sel.coefficients[sel.coefficients["term"] != "(Intercept)"]
        selected = coefs.rename(columns={"term": "feature"}).reset_index(drop=True)
    else:
        selected = pd.DataFrame(columns=["feature", "coef", "se", "z", "p", "OR", "OR_lower", "OR_upper"])
    state = _make_state(h, sel, harmonisation, selection, seed)
    res = FeatureScoreResult(score=score, funnel=sel.funnel, selected=selected, harmonised=harm,
                             raw=data, state=state, selection=sel, excluded=excluded,
                             harmonisation=h, notes=notes)
    if not sel.ok:
        raise EmptySelectionError(sel.explanation or "selection left no feature", res)
    return res


def _make_state(h, sel: SelectionResult, harmonisation, selection, seed: int) -> dict[str, Any]:
    feats = list(sel.coef.index) if sel.ok else []
    return {
        "version": STATE_VERSION,
        "harmonisation": {
            "mode": harmonisation.mode,
            "batch": harmonisation.batch,
            "parametric": bool(harmonisation.parametric),
            "estimates": h.estimates.to_dict() if h.estimates is not None else None,
            # the batches outside the fit (e.g. validation-only scanners in mode train_reference),
            # harmonised towards it from their own data: their location/scale as applied
            "own_data": _own_data_state(h),
        },
        "selection": {**selection.model_dump(mode="json"), "seed": int(seed)},
        "features": feats,
        "scaler": {"mean": [float(sel.mean[f]) for f in feats], "sd": [float(sel.sd[f]) for f in feats]},
        "model": {
            "intercept": float(sel.intercept) if sel.ok else None,
            "coef": [float(sel.coef[f]) for f in feats],
        },
    }


def _own_data_state(h) -> Optional[dict[str, Any]]:
    """``{"batches", "gamma_star", "delta_star", "batch_sizes"}`` of the batches harmonised from
    their own data (rows in batch order, over the fit's features); None without ComBat."""
    if h.estimates is None:
        return None
    new = sorted(h.new_batches)
    sizes = h.applied.batch_sizes if h.applied is not None else {}
    return {
        "batches": [str(b) for b in new],
        "gamma_star": [np.asarray(h.new_batches[b][0], dtype=float).tolist() for b in new],
        "delta_star": [np.asarray(h.new_batches[b][1], dtype=float).tolist() for b in new],
        "batch_sizes": {str(b): int(sizes[b]) for b in new if b in sizes},
    }


def state_estimates(state: dict[str, Any]) -> Optional[CombatEstimates]:
    """The ComBat estimates of every batch a fitted state harmonised: the fit's, plus (state
    version 2) those of the batches harmonised from their own data; None without ComBat."""
    hs = state.get("harmonisation") or {}
    if hs.get("estimates") is None:
        return None
    est = CombatEstimates.from_dict(hs["estimates"])
    od = hs.get("own_data") or {}
    if od.get("batches"):
        est = est.with_batches({str(b): (g, d) for b, g, d in zip(od["batches"], od["gamma_star"], od["delta_star"])},
                               od.get("batch_sizes"))
    return est


def apply_feature_score(state: dict[str, Any], new_features: pd.DataFrame, batches: pd.Series, *,
                        unseen: Literal["error", "estimate"] = "error") -> pd.Series:
    """Score new patients with a fitted state (from :attr:`FeatureScoreResult.state`).

    ``new_features``: patients x features (at least the selected ones; all the harmonised
    features when a batch is new and ``unseen="estimate"``). ``batches``: each patient's
    scanner or centre (whichever the state was harmonised by). A scanner the fit harmonised
    (in the ComBat fit, or from its own data, e.g. a validation cohort's scanner in mode
    ``train_reference``) gets the stored estimates, so a patient is scored exactly as at
    fitting time. Scanners unknown to the state are refused (``unseen="error"``) or
    harmonised towards the reference from the new patients' own data (``"estimate"``, at
    least 2 patients per new scanner).
    """
    if state.get("version") not in SUPPORTED_STATE_VERSIONS:
        raise DlrcError(f"feature-score state version {state.get('version')} is not supported "
                        f"(this dlrc reads version{'s' if len(SUPPORTED_STATE_VERSIONS) > 1 else ''} "
                        f"{', '.join(map(str, SUPPORTED_STATE_VERSIONS))})")
    feats = list(state["features"])
    if not feats:
        raise DlrcError("feature-score state has no selected feature")
    X = new_features.copy()
    X.index = X.index.astype(str)
    missing = [f for f in feats if f not in X.columns]
    if missing:
        raise DlrcError(f"feature score: selected feature(s) missing from the new data: {', '.join(missing)}")
    hs = state["harmonisation"]
    label = hs.get("batch", "batch")
    if hs.get("estimates") is not None:
        est = state_estimates(state)
        batches = pd.Series(batches).astype(str)
        batches.index = batches.index.astype(str)
        new = sorted(set(batches.reindex(X.index).dropna().unique()) - set(est.batches))
        if not new:
            est = _subset(est, feats)
        Xh = apply_combat(est, X, batches, unseen=unseen, label=label)
    else:
        Xh = X
    bad = ~np.isfinite(Xh[feats].to_numpy(dtype=float))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DlrcError(f"feature score: patient {Xh.index[r]} has no value for {feats[c]}")
    Z = (Xh[feats].to_numpy(dtype=float) - np.asarray(state["scaler"]["mean"])) / np.asarray(state["scaler"]["sd"])
    lp = state["model"]["intercept"] + Z @ np.asarray(state["model"]["coef"])
    return pd.Series(lp, index=Xh.index, name="score")


def _subset(est: CombatEstimates, feats: list[str]) -> CombatEstimates:
    idx = [est.features.index(f) for f in feats]
    return CombatEstimates(
        features=feats, batches=est.batches, grand_mean=est.grand_mean[idx],
        var_pooled=est.var_pooled[idx], gamma_star=est.gamma_star[:, idx],
        delta_star=est.delta_star[:, idx], parametric=est.parametric,
        passthrough=[f for f in est.passthrough if f in feats], batch_sizes=est.batch_sizes,
        unharmonised=est.unharmonised, own_data=est.own_data,
    )


def score_frame(result: FeatureScoreResult, study: pd.DataFrame, name: str = "Rad_score") -> pd.DataFrame:
    """The hand-over frame of a score: index patient_id, columns cohort, lnm, ``name``
    (NaN for patients without features; :attr:`FeatureScoreResult.excluded` says why)."""
    st = by_patient(study)
    out = pd.DataFrame({"cohort": st["cohort"].astype(str), "lnm": st["lnm"].astype(int),
                        name: result.score.reindex(st.index).astype(float)})
    out.index.name = "patient_id"
    return out


def selected_table(result: FeatureScoreResult, digits: int = 3) -> pd.DataFrame:
    """The final model as the paper's Table S2: feature, coefficient (per training SD),
    OR with Wald 95 % CI, p; the intercept last. Sorted by |coefficient|."""
    c = result.selection.coefficients.copy()
    inter = c[c["term"] == "(Intercept)"]
    feats = c[c["term"] != "(Intercept)"]
    feats = feats.reindex(feats["coef"].abs().sort_values(ascending=False, kind="mergesort").index)
    c = pd.concat([feats, inter])

    def p_text(p: float) -> str:
        return "<0.001" if p < 0.001 else f"{p:.{digits}f}"

    return pd.DataFrame({
        "Feature": c["term"].to_numpy(),
        "Coefficient": c["coef"].round(digits).to_numpy(),
        "SE": c["se"].round(digits).to_numpy(),
        "OR (95% CI)": [f"{_num(o, digits)} ({_num(lo, digits)}–{_num(hi, digits)})" if t != "(Intercept)" else ""
                        for t, o, lo, hi in zip(c["term"], c["OR"], c["OR_lower"], c["OR_upper"])],
        "p": [p_text(p) for p in c["p"]],
    })


def _num(v: float, digits: int) -> str:
    """Fixed decimals for ordinary values, 3 significant digits for extreme ones (separation)."""
    if not np.isfinite(v):
        return "inf" if v > 0 else "-inf" if v < 0 else "NA"
    if v != 0 and (abs(v) >= 1e4 or abs(v) < 10 ** -digits):
        return f"{v:.3g}"
    return f"{v:.{digits}f}"
