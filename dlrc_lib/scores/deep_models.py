"""The six deep-learning models of the paper (2a-2f) and Table 3.

Each model's 6,144 features (2,048 per sequence) go through the radiomics workflow:
ICC filter on the re-segmented cases, ComBat, training-cohort selection and a logistic
model whose linear predictor is that model's DL_score
(:class:`dlrc_lib.scores.pipeline.FeatureScore`). Table 3 then reports each model in each
cohort (:func:`dlrc_lib.evaluation.performance.evaluate_score`), and one model is declared "best" by
the rule in ``deep.best_model_rule``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.progress import progress_bar as tqdm
from dlrc_lib.evaluation.performance import evaluate_score, format_table, performance_rows
from dlrc_lib.evaluation.roc import RocDisplay
from dlrc_lib.features.deep.networks import MODEL_NAMES, WeightsInfo, parse_model_name
from dlrc_lib.features.reproducibility import icc_table as reproducibility_icc_table
from dlrc_lib.scores.pipeline import EmptySelectionError, FeatureScore
from dlrc_lib.study import keys as K
from dlrc_lib.study.schema import COHORT_LABELS, COHORTS

RULES = {
    "train_auc": "highest AUC in the training cohort",
    "internal_auc": "highest AUC in the internal-validation cohort (that cohort then no longer "
                    "validates the choice; the external cohort stays untouched)",
    "train_and_external_auc": "highest mean of the training and external-validation AUCs "
                              "(the paper's choice; it uses the external cohort to pick the model, "
                              "so that cohort no longer validates the choice: information leaks)",
}

_TRAIN, _INTERNAL, _EXTERNAL = COHORTS
RULE_COHORTS = {"train_auc": [_TRAIN], "internal_auc": [_INTERNAL], "train_and_external_auc": [_TRAIN, _EXTERNAL]}


# Notebook 04's results when the parameters name no deep model (``deep.models: []``): the DLRC
# model is then the radiomics score and the clinical terms, without a DL_score.
SWITCHED_OFF = "deep learning switched off (deep.models: [])"


def switched_off_results() -> dict[str, Any]:
    """Notebook 04's results for a run without deep models (``deep.models: []``)."""
    return {"deep_learning": "off", "best_model": None, "best_model_rule": None, "reason": SWITCHED_OFF,
            "states": {}, "weights": {}, "failed_models": {}, "ranking": []}


def _indexed(study: pd.DataFrame) -> pd.DataFrame:
    if "patient_id" in study.columns:
        study = study.set_index("patient_id", drop=False)
    study = study.copy()
    study.index = study.index.astype(str).rename("patient_id")
    return study


def ordered(models: Sequence[str]) -> list[str]:
    """Models in the paper's order (2a-2f: ResNet50/101/152_3D, then _2D)."""
    rank = {m: i for i, m in enumerate(MODEL_NAMES)}
    return sorted(models, key=lambda m: rank.get(m, len(rank)))


# ---------------------------------------------------------------- reproducibility
def icc_table(raters: Mapping[str, pd.DataFrame], form: str = "ICC(2,1)", threshold: float = 0.75,
              min_cases: int = 5) -> pd.DataFrame | None:
    """Inter-observer (reader 1 vs reader 2) and intra-observer (reader 1 vs its repeat)
    ICC of every feature; ``keep`` when both exceed ``threshold``.

    ``raters``: ``{"r1": df, "r2": df, "rep": df}`` (patients x features,
    :func:`dlrc_lib.features.deep.extract.extract_raters`). ICCs as R ``psych::ICC`` through
    :func:`dlrc_lib.stats.icc_many`. Returns None when fewer than ``min_cases`` patients
    have both extra masks (no filter possible). A constant feature has no ICC (NaN) and is dropped.
    """
    r1, r2, rep = (raters.get(k) for k in ("r1", "r2", "rep"))
    if r1 is None or r2 is None or rep is None or not len(r1):
        return None
    if len(r1.index.intersection(r2.index).intersection(rep.index)) < max(2, min_cases):
        return None
    return reproducibility_icc_table(r1, r2, rep, form=form, threshold=threshold, min_cases=min_cases)


def icc_tables(raters: Mapping[str, Mapping[str, pd.DataFrame]], form: str = "ICC(2,1)",
               threshold: float = 0.75, min_cases: int = 5) -> dict[str, pd.DataFrame | None]:
    """:func:`icc_table` for every model of :func:`dlrc_lib.features.deep.extract.extract_raters`."""
    return {m: icc_table(raters[m], form, threshold, min_cases) for m in ordered(list(raters))}


def kept_features(iccs: Mapping[str, pd.DataFrame | None]) -> dict[str, list[str] | None]:
    """Per model, the features passing the ICC filter (None: no filter, all features)."""
    return {m: (None if t is None else list(t.index[t["keep"].to_numpy(bool)])) for m, t in iccs.items()}


def icc_summary(iccs: Mapping[str, pd.DataFrame | None]) -> pd.DataFrame:
    """Per model: features, with an ICC, kept (both ICCs above the threshold)."""
    rows = []
    for m in ordered(list(iccs)):
        t = iccs[m]
        if t is None:
            rows.append({"model": m, "features": math.nan, "icc_defined": math.nan, "kept": math.nan,
                         "median_icc_inter": math.nan, "median_icc_intra": math.nan})
            continue
        rows.append({"model": m, "features": len(t), "icc_defined": int(t[["icc_inter", "icc_intra"]].notna().all(axis=1).sum()),
                     "kept": int(t["keep"].sum()), "median_icc_inter": float(t["icc_inter"].median()),
                     "median_icc_intra": float(t["icc_intra"].median())})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------ scoring
@dataclass
class DeepModels:
    """Fitted score pipelines of the deep models (``results[model]`` is a fitted
    :class:`dlrc_lib.scores.pipeline.FeatureScore`; ``failed[model]`` the reason a model has no
    score, e.g. no feature survived selection)."""

    results: dict[str, "FeatureScore"] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return ordered(list(self.results) + list(self.failed))

    def states(self) -> dict[str, dict]:
        """JSON-able score pipelines per model (:meth:`FeatureScore.to_dict`, for the model file)."""
        return {m: r.to_dict() for m, r in self.results.items()}


@dataclass
class BestDeepModel:
    """The deep-learning step as the DLRC model receives it: every model's DL_score and the
    model chosen by ``deep.best_model_rule`` (:func:`choose_best`), with its fitted score
    pipeline and network weights for the model file."""

    name: str  # the chosen model
    scores: pd.DataFrame  # index patient_id: cohort, lnm, one DL_score column per model (:func:`dl_scores`)
    estimator: "FeatureScore | None" = None  # the chosen model's fitted score pipeline
    weights: Mapping[str, Any] | None = None  # its network weights record (:func:`weights_record`)
    rule: str | None = None  # the rule that chose it

    @property
    def score(self) -> pd.Series:
        """The chosen model's DL_score of every patient (NaN: no score)."""
        if self.name not in self.scores.columns:
            raise DlrcError(f"DL scores: no column for the best model '{self.name}'")
        return self.scores[self.name]


def fit_models(features: Mapping[str, pd.DataFrame], study: pd.DataFrame, *, harmonisation, selection,
               seed: int, keep: Mapping[str, Sequence[str] | None] | None = None,
               progress: bool = True, cache_dir: str | None = None) -> DeepModels:
    """Run the feature -> score pipeline for every model (``keep``: ICC-kept features;
    ``cache_dir``: cache each fit, see :class:`dlrc_lib.scores.pipeline.FeatureScore`)."""
    out = DeepModels()
    for m in tqdm(ordered(list(features)), desc="DL models", unit="model", disable=not progress):
        k = (keep or {}).get(m)
        try:
            out.results[m] = FeatureScore(harmonisation, selection, seed=seed,
                                          cache_dir=cache_dir).fit(features[m], study, keep=k)
        except EmptySelectionError as exc:
            out.failed[m] = str(exc)
    return out


def dl_scores(fitted: DeepModels, study: pd.DataFrame) -> pd.DataFrame:
    """The ``dl_scores`` hand-over frame: index patient_id; cohort, lnm, one DL_score column
    per model (NaN for a model without a score)."""
    st = _indexed(study)
    df = st[["cohort", "lnm"]].copy()
    df["cohort"] = df["cohort"].astype(str)
    df["lnm"] = df["lnm"].astype(int)
    for m in fitted.models:
        r = fitted.results.get(m)
        if r is None:
            df[m] = np.nan
        else:
            s = r.score_.copy()
            s.index = s.index.astype(str)
            df[m] = s.reindex(df.index).astype(float).to_numpy()
    return df


def funnel_table(fitted: DeepModels) -> pd.DataFrame:
    """Features left after each selection step, one column per model."""
    cols = {}
    for m in fitted.models:
        r = fitted.results.get(m)
        if r is not None:
            cols[m] = r.funnel_.set_index("step")["n_features"]
    if not cols:
        return pd.DataFrame()
    df = pd.DataFrame(cols)
    steps = list(dict.fromkeys(s for r in fitted.results.values() for s in r.funnel_["step"]))
    return df.reindex(steps).rename_axis("step").reset_index()


def selected_features(fitted: DeepModels) -> pd.DataFrame:
    """The selected features with coefficients and odds ratios, per model."""
    frames = []
    for m in fitted.models:
        r = fitted.results.get(m)
        if r is None:
            frames.append(pd.DataFrame({"model": [m], "feature": [f"(none: {fitted.failed.get(m, '')})"]}))
        elif len(r.selected_):
            frames.append(r.selected_.assign(model=m))
    if not frames:
        return pd.DataFrame(columns=["model", "feature"])
    df = pd.concat(frames, ignore_index=True)
    return df[["model"] + [c for c in df.columns if c != "model"]]


# ------------------------------------------------------------------------ Table 3
def table3(scores: pd.DataFrame, study: pd.DataFrame, models: Sequence[str] | None = None) -> pd.DataFrame:
    """Table 3 (long form): per cohort and model, AUC with DeLong 95 % CI and
    ACC/SEN/SPE/PPV/NPV (Wilson CIs) at the model's training Youden cut-off
    (:func:`dlrc_lib.evaluation.performance.evaluate_score`, i.e. R pROC ``ci.auc`` / ``coords``)."""
    models = ordered(list(models) if models is not None else [c for c in scores.columns if c not in ("cohort", "lnm")])
    frames = []
    st = _indexed(study)
    for m in models:
        s = scores[m].dropna()
        if s.empty:  # no feature survived selection: rows without numbers
            cohorts = [c for c in COHORTS if (st["cohort"].astype(str) == c).any()]
            frames.append(pd.DataFrame({"cohort": cohorts, "label": [COHORT_LABELS[c] for c in cohorts],
                                        "model": m, "n": 0,
                                        "n_missing": [int((st["cohort"].astype(str) == c).sum()) for c in cohorts]}))
            continue
        frames.append(evaluate_score(s, study, "train", model=m))
    if all(f["n"].eq(0).all() for f in frames):
        raise DlrcError("Table 3: no deep-learning model has a score (no feature survived selection)")
    perf = pd.concat(frames, ignore_index=True)
    perf["cohort"] = pd.Categorical(perf["cohort"], [c for c in COHORTS if c in set(perf["cohort"])])
    perf["model"] = pd.Categorical(perf["model"], models)
    perf = perf.sort_values(["cohort", "model"]).reset_index(drop=True)
    perf["cohort"] = perf["cohort"].astype(str)
    perf["model"] = perf["model"].astype(str)
    return perf


def format_table3(perf: pd.DataFrame) -> pd.DataFrame:
    """The paper's layout: Cohort, DL model, AUC (95 % CI), ACC, SEN, SPE, PPV, NPV."""
    out = format_table(perf).rename(columns={"Model": "DL model"})
    empty = (perf["n"] == 0).to_numpy()
    out.loc[empty, out.columns[2:]] = "no feature selected"
    return out


def table3_rows(perf: pd.DataFrame) -> list[K.Row]:
    """Table 3's reproduced values: ``table3.<cohort>.<model>.auc`` [est, lo, hi], ``.acc`` ... in percent."""
    out: list[K.Row] = []
    for m, sub in perf[perf["n"] > 0].groupby("model", sort=False):
        out += performance_rows(sub, table="table3", model=str(m))
    return out


def choose_best(perf: pd.DataFrame, rule: str = "train_auc") -> tuple[str, pd.DataFrame]:
    """The best DL model under ``rule`` (see :data:`RULES`) and the ranking behind it.

    ``train_auc`` uses only the training cohort, ``internal_auc`` only the internal
    validation cohort. ``train_and_external_auc`` mirrors the
    paper (best in training and external validation) and leaks: once the external cohort
    has chosen the model, it is no longer an independent test of it.
    Ties are broken by the paper's model order.
    """
    if rule not in RULES:
        raise DlrcError(f"deep.best_model_rule: {rule!r} is not one of {', '.join(RULES)}")
    wide = perf.pivot(index="model", columns="cohort", values="auc")
    wide = wide.reindex(ordered(list(wide.index)))
    cols = RULE_COHORTS[rule]
    missing = [c for c in cols if c not in wide.columns]
    if missing:
        raise DlrcError(f"deep.best_model_rule {rule}: no {', '.join(missing)} cohort AUC")
    wide["criterion"] = wide[cols].mean(axis=1)
    ranked = wide.dropna(subset=["criterion"])
    if ranked.empty:
        raise DlrcError("best DL model: no model has an AUC for the rule's cohorts")
    best = str(ranked["criterion"].idxmax())  # first maximum = paper order on ties
    wide["rank"] = wide["criterion"].rank(ascending=False, method="first")
    wide["best"] = wide.index == best
    out = wide.reset_index()
    out.columns.name = None
    return best, out


def roc_display(scores: pd.DataFrame, models: Sequence[str] | None = None) -> RocDisplay:
    """ROC curves of the DL models, one panel per cohort; each panel prints every model's AUC."""
    models = ordered(list(models) if models is not None else [c for c in scores.columns if c not in ("cohort", "lnm")])
    return RocDisplay.from_scores(scores, {m: m for m in models}, ci=False, legend_title="DL model",
                                  title="ROC curves of the six deep-learning models")


# ------------------------------------------------------------------------ records
def weights_record(weights: Mapping[str, WeightsInfo], spec: str, seed: int, models: Sequence[str]) -> dict[str, dict]:
    """Per model: the weights setting, where they came from and their identity (the
    results JSON key ``weights``; the model file keeps the best model's)."""
    out = {}
    for m in models:
        info = weights[parse_model_name(m)[0]]
        out[m] = {"spec": spec, "source": info.source, "identity": info.identity, "seed": int(seed),
                  "path": info.path, "random_fallback": bool(info.warning)}
    return out
