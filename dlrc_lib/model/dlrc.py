"""The DLRC model: clinical screening, the fused logistic model, Fig. 4.

The paper builds its headline model in two steps (section "Model construction"):

1. every clinical variable of Table 1 is tested between LNM-negative and LNM-positive
   patients of the training cohort with the Table 1 tests; variables with p < 0.05 are
   candidates, minus those the parameters exclude (the paper dropped clinical FIGO stage as
   less accurate than pathological staging);
2. the radiomics score, the best deep-learning model's score and the candidates enter a
   logistic regression reduced by backward stepwise AIC (R ``MASS::stepAIC``). The paper's
   final terms were c_LNM, DL_score and Rad_score.

:class:`DlrcModel` is the fitted logistic model (scikit-learn style, state in ``*_``
attributes); :func:`youden_cutoffs` fixes each model's cut-off in the training cohort, which
Tables 2 and 4 (:mod:`dlrc_lib.evaluation.comparison`) apply; :func:`roc_display` draws Fig. 4.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from dlrc_lib import stats
from dlrc_lib.core.config import PAPER_BEST_DL
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.evaluation.cohort_table import compute_table1
from dlrc_lib.evaluation.comparison import format_p, model_roles
from dlrc_lib.evaluation.roc import RocDisplay
from dlrc_lib.model.nomogram import Nomogram
from dlrc_lib.study.manifest import by_patient
from dlrc_lib.study.schema import (
    CLINICAL,
    DLRC,
    LEVELS,
    PROB_COLUMNS,
    RADIOMICS,
    clinical_levels,
)

if TYPE_CHECKING:
    from dlrc_lib.scores.deep_models import BestDeepModel

def _require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DlrcError(f"{what}: missing column(s) {', '.join(missing)}")


# -------------------------------------------------------------------- screening
def screen_clinical(study: pd.DataFrame, clinical_p: float = 0.05,
                    exclude: Sequence[str] = ("figo_stage",)) -> pd.DataFrame:
    """Univariate screening of the clinical variables on the training cohort.

    Categorical variables: ``stats.compare_categorical`` on the level x LNM counts
    (R compareGroups' chi-square / Fisher rule); continuous variables:
    ``stats.compare_continuous`` (t-test or Kruskal-Wallis after a normality check);
    age at menopause among postmenopausal patients only, as in Table 1.

    Returns one row per variable: ``variable, term, test, p, p_shown, candidate, note``.
    A variable is a candidate when p < ``clinical_p``, it is not in ``exclude`` and it can
    enter a model.
    """
    unknown = [v for v in exclude if v not in CLINICAL]
    if unknown:
        raise DlrcError(f"dlrc.exclude_clinical: unknown clinical variable(s) {', '.join(unknown)}; "
                        f"known: {', '.join(CLINICAL)}")
    _require(study, ["cohort", "lnm"], "study")
    train = study[study["cohort"] == "train"]
    if train.empty:
        raise DlrcError("study: no patient in the training cohort")
    table1_input = train if "patient_id" in train.columns else train.rename_axis("patient_id").reset_index()
    tests = compute_table1(table1_input).tests.set_index(["variable", "cohort"])
    rows = []
    for var, spec in CLINICAL.items():
        term, encoding = spec.term, spec.encoding
        p, test = float(tests.loc[(var, "train"), "p"]), str(tests.loc[(var, "train"), "method"])
        significant = bool(p < clinical_p)
        if not significant:
            note, cand = f"p >= {clinical_p:g}", False
        elif var in exclude:
            note, cand = "excluded by the parameters (dlrc.exclude_clinical)", False
        elif encoding is None:
            note, cand = spec.note, False
        else:
            note, cand = f"p < {clinical_p:g}: candidate", True
        rows.append({"variable": var, "term": term, "test": str(test), "p": float(p),
                     "p_shown": format_p(p), "candidate": cand, "note": note})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------- design
def design_matrix(frame: pd.DataFrame, clinical: Sequence[str] = (),
                  scores: Sequence[str] = ("Rad_score", "DL_score")) -> pd.DataFrame:
    """Model columns for the scores and the clinical candidates (index kept).

    Binary variables become one 0/1 column named by their term (``c_lnm`` -> ``c_LNM``,
    ``menopause`` -> ``menopause`` = 1 for "Yes"); multi-level ones one 0/1 column per
    non-reference level (``histology[AC]``); continuous ones enter as they are.
    """
    _require(frame, list(scores) + list(clinical), "model data")
    cols: dict[str, pd.Series] = {s: frame[s].astype(float) for s in scores}
    for var in clinical:
        spec = CLINICAL[var]
        term, encoding = spec.term, spec.encoding
        if encoding == "numeric":
            cols[term] = frame[var].astype(float)
        elif encoding == "binary":
            lev = clinical_levels(frame, var)
            cols[term] = (lev == LEVELS[var][1]).astype(float).where(lev.notna())
        elif encoding == "dummies":
            lev = clinical_levels(frame, var)
            for level in LEVELS[var][1:]:
                cols[f"{term}[{level}]"] = (lev == level).astype(float).where(lev.notna())
        else:
            raise DlrcError(f"clinical variable '{var}' cannot enter the model: {spec.note}")
    X = pd.DataFrame(cols, index=frame.index)
    bad = X.isna().any(axis=1)
    if bad.any():
        first = X.index[bad][:5]
        what = {p: ", ".join(X.columns[X.loc[p].isna()]) for p in first}
        raise DlrcError("model data: missing values for " +
                        "; ".join(f"patient {p} ({c})" for p, c in what.items()) +
                        (f" and {int(bad.sum()) - len(first)} more" if bad.sum() > len(first) else ""))
    return X


def expit(x: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


# ------------------------------------------------------------------------ model
class DlrcModel:
    """Logistic regression reduced by backward stepwise AIC, as R
    ``MASS::stepAIC(glm(lnm ~ ., family = binomial), direction = "backward")``.

    ``fit(X, y)`` keeps the columns ``stats.backward_aic`` retains and refits the maximum
    likelihood logistic model on them (R ``glm``). Fitted attributes: ``candidates_``
    (columns offered), ``terms_`` (columns kept), ``coef_`` (Series: ``(Intercept)`` then
    the terms), ``cov_`` (their covariance matrix), ``aic_``, ``step_path_`` (the
    elimination steps with their AIC) and ``warnings_`` (e.g. separation).
    """

    def __init__(self, stepwise: bool = True):
        self.stepwise = stepwise

    def fit(self, X: pd.DataFrame, y: Any) -> "DlrcModel":
        y = np.asarray(y, dtype=int)
        if len(np.unique(y)) != 2:
            raise DlrcError("training cohort: LNM must have both classes to fit the model")
        self.candidates_ = list(X.columns)
        self.step_path_ = pd.DataFrame(columns=["step", "removed", "AIC"])
        self.warnings_: list[str] = []
        if self.stepwise:
            step = stats.backward_aic(X, y)
            terms = list(step.selected)
            self.step_path_ = step.path.copy()
            self.warnings_ = list(step.warnings)
        else:
            terms = list(X.columns)
        if not terms:
            raise DlrcError("backward AIC kept no term: the scores and clinical candidates carry "
                            "no information on LNM in the training cohort")
        self.terms_ = [t for t in self.candidates_ if t in set(terms)]
        # R glm(family = binomial) run to full convergence (glm.control(epsilon = 1e-14, maxit = 100)):
        # the default epsilon = 1e-8 stops while the coefficients still move in the 6th decimal
        fit = stats.logistic_glm(X[self.terms_].to_numpy(float), y, epsilon=1e-14, maxit=100)
        if not fit.converged:
            self.warnings_.append("the logistic model did not converge (R glm.fit's iteration limit)")
        if fit.boundary_fitted and not any("separation" in w for w in self.warnings_):
            self.warnings_.append("fitted probabilities numerically 0 or 1 occurred (separation)")
        names = ["(Intercept)"] + self.terms_
        self.coef_ = pd.Series(np.asarray(fit.coef, float), index=names)
        self.cov_ = pd.DataFrame(np.asarray(fit.cov, float), index=names, columns=names)
        self.aic_ = float(fit.aic)
        self.n_ = int(len(y))
        self.events_ = int(y.sum())
        return self

    # -------------------------------------------------------------- prediction
    def linear_predictor(self, X: pd.DataFrame) -> pd.Series:
        _require(X, self.terms_, "model data")
        lp = self.coef_["(Intercept)"] + X[self.terms_].to_numpy(float) @ self.coef_[self.terms_].to_numpy()
        return pd.Series(lp, index=X.index, name="lp")

    def predict_proba(self, X: pd.DataFrame) -> pd.Series:
        """Probability of LNM per patient (Series aligned with ``X``)."""
        return pd.Series(expit(self.linear_predictor(X)), index=X.index, name="prob_dlrc")

    # ---------------------------------------------------------------- reporting
    def coef_table(self, level: float = 0.95) -> pd.DataFrame:
        """Coefficients with Wald CIs and odds ratios (R ``summary(glm)``,
        ``confint.default``, ``exp``)."""
        se = pd.Series(np.sqrt(np.diag(self.cov_.to_numpy())), index=self.coef_.index)
        out = stats.wald_table(self.coef_, se, level=level)
        out.insert(out.columns.get_loc("p") + 1, "p_shown", [format_p(v) for v in out["p"]])
        out.loc[out["term"] == "(Intercept)", ["OR", "OR_lower", "OR_upper"]] = np.nan
        return out

    def to_dict(self) -> dict:
        return {"terms": list(self.terms_), "candidates": list(self.candidates_),
                "coef": {k: float(v) for k, v in self.coef_.items()},
                "cov": self.cov_.to_numpy().tolist(), "aic": self.aic_,
                "n": self.n_, "events": self.events_}

    @classmethod
    def from_dict(cls, d: Mapping) -> "DlrcModel":
        m = cls()
        m.terms_ = list(d["terms"])
        m.candidates_ = list(d.get("candidates", d["terms"]))
        names = ["(Intercept)"] + m.terms_
        m.coef_ = pd.Series([float(d["coef"][k]) for k in names], index=names)
        cov = d.get("cov")
        m.cov_ = pd.DataFrame(np.asarray(cov, float) if cov is not None else np.full((len(names),) * 2, np.nan),
                              index=names, columns=names)
        m.aic_ = float(d.get("aic", np.nan))
        m.n_ = int(d.get("n", 0))
        m.events_ = int(d.get("events", 0))
        return m


@dataclass
class DlrcFit:
    """Everything the notebook shows about the fitted DLRC model."""

    screening: pd.DataFrame  # clinical screening table
    clinical: list[str]  # clinical candidates offered to the stepwise selection
    model: DlrcModel
    design: pd.DataFrame  # all patients x candidate columns
    prob: pd.Series  # DLRC probability of every patient


def score_columns(data: pd.DataFrame) -> list[str]:
    """The image scores a DLRC model is offered: Rad_score, and DL_score unless deep learning was
    switched off (the frame has no DL_score column)."""
    return [s for s in ("Rad_score", "DL_score") if s == "Rad_score" or s in data.columns]


def fit_dlrc(data: pd.DataFrame, study: pd.DataFrame, clinical_p: float = 0.05,
             exclude: Sequence[str] = ("figo_stage",)) -> DlrcFit:
    """Screen the clinical variables, then fit the DLRC model on the training cohort.

    ``data``: index patient_id with ``cohort``, ``lnm``, ``Rad_score`` and ``DL_score`` (without
    it, deep learning switched off: the candidates are Rad_score and the clinical variables);
    ``study``: the study table (index patient_id) for the clinical columns.
    """
    scores = score_columns(data)
    _require(data, ["cohort", "lnm", "Rad_score"], "scores")
    screening = screen_clinical(study, clinical_p, exclude)
    clinical = screening.loc[screening["candidate"], "variable"].tolist()
    missing = data.index.difference(study.index)
    if len(missing):
        raise DlrcError(f"study: patient {missing[0]} has scores but no clinical row"
                        + (f" ({len(missing)} such patients)" if len(missing) > 1 else ""))
    merged = data.join(study[[c for c in clinical if c not in data.columns]])
    X = design_matrix(merged, clinical, scores=scores)
    train = (data["cohort"] == "train").to_numpy()
    model = DlrcModel().fit(X.loc[train], data.loc[train, "lnm"].astype(int))
    return DlrcFit(screening=screening, clinical=clinical, model=model, design=X,
                   prob=model.predict_proba(X))


# ---------------------------------------------------------------- predictions
def predictions_frame(study: pd.DataFrame, rad_score: pd.Series, dl_score: pd.Series | None,
                      prob_dlrc: pd.Series) -> pd.DataFrame:
    """The ``predictions`` hand-over frame (index patient_id).

    The radiomics and deep-learning probabilities are the logistic transforms of their
    scores (each score is the linear predictor of its own logistic model). ``dl_score`` None
    (deep learning switched off): no DL_score and prob_dl columns.
    """
    _require(study, ["cohort", "lnm", "c_lnm", "lnsd_mm", "lnld_mm", "node_necrosis"], "study")
    idx = prob_dlrc.index
    out = study.loc[idx, ["cohort", "lnm", "c_lnm", "lnsd_mm", "lnld_mm", "node_necrosis"]].copy()
    out["Rad_score"] = rad_score.loc[idx].astype(float)
    if dl_score is not None:
        out["DL_score"] = dl_score.loc[idx].astype(float)
    out["prob_radiomics"] = expit(out["Rad_score"])
    if dl_score is not None:
        out["prob_dl"] = expit(out["DL_score"])
    out["prob_dlrc"] = prob_dlrc.astype(float)
    out.index.name = "patient_id"
    return out


def youden_cutoffs(predictions: pd.DataFrame) -> dict[str, float]:
    """Training Youden cut-off on each model's probability (pROC ``coords(.., "best")``); no
    deep-learning cut-off when the frame has no ``prob_dl`` (deep learning switched off)."""
    st = stats
    train = predictions[predictions["cohort"] == "train"]
    return {role: float(st.youden_threshold(train["lnm"].to_numpy(int), train[col].to_numpy(float)))
            for role, col in PROB_COLUMNS.items() if col in predictions.columns}


# ------------------------------------------------------------------------ Fig. 4
def roc_display(predictions: pd.DataFrame, best_dl: str | None) -> RocDisplay:
    """Fig. 4: ROC curves of radiomics, the best DL model (none when ``best_dl`` is None: deep
    learning switched off) and DLRC, one panel per cohort (a-c), each panel's text giving AUC
    (95 % CI, DeLong)."""
    roles = model_roles(best_dl)
    colours = {RADIOMICS: "#1b9e77", DLRC: "#d95f02", **({best_dl: "#7570b3"} if best_dl else {})}
    return RocDisplay.from_scores(
        predictions, {name: PROB_COLUMNS[role] for name, role in roles},
        ci=True, title="ROC curves; panel text: AUC (95% CI, DeLong)", colours=colours)


# ----------------------------------------------------------------- score inputs
@dataclass
class ScoreInputs:
    """Rad_score and the chosen DL_score of every patient scored by both pipelines."""

    scores: pd.DataFrame  # index patient_id: cohort, lnm, Rad_score, DL_score (none: deep learning off)
    best_model: str | None  # the chosen deep-learning model (None: deep learning switched off)
    lost: pd.DataFrame  # patient_id, reason: patients without one of the two scores

    @property
    def summary(self) -> str:
        """One line: the deep-learning model used (or that there is none) and the patients scored."""
        if self.best_model is None:
            return (f"deep learning switched off (deep.models: []): the DLRC model is fitted on Rad_score and "
                    f"the clinical candidates; patients with a Rad_score: {len(self.scores)}")
        return (f"best deep-learning model (notebook 04): {self.best_model}; patients with both scores: "
                f"{len(self.scores)}")


def score_inputs(rad_scores: pd.DataFrame, deep: "BestDeepModel | None", study: pd.DataFrame) -> ScoreInputs:
    """Rad_score and the chosen model's DL_score of every patient of ``study`` scored by both.

    ``rad_scores``: the radiomics score's hand-over frame (index patient_id, column
    ``Rad_score``; :func:`dlrc_lib.scores.pipeline.score_frame`); ``deep``: every DL model's
    scores and the chosen one, or None when deep learning was switched off (``deep.models: []``:
    no DL_score column). Patients missing from either are listed with the reason, never
    dropped silently."""
    rad = rad_scores
    best = deep.name if deep is not None else None
    if deep is not None and not best:
        raise DlrcError("DL scores: no best model chosen")
    _require(rad, ["Rad_score"], "radiomics scores")
    sources = [("no Rad_score (radiomics)", rad["Rad_score"])]
    if deep is not None:
        sources.append((f"no DL_score ({best})", deep.score))
    st = by_patient(study)
    ids = st.index
    rows = []
    for pid in ids:
        why = [w for w, score in sources if pid not in score.index or pd.isna(score.at[pid])]
        if why:
            rows.append({"patient_id": pid, "reason": "; ".join(why)})
    lost = pd.DataFrame(rows, columns=["patient_id", "reason"])
    gone = set(lost["patient_id"])
    keep = [p for p in ids if p not in gone]
    scores = pd.DataFrame({"cohort": st.loc[keep, "cohort"], "lnm": st.loc[keep, "lnm"].astype(int),
                           "Rad_score": rad.loc[keep, "Rad_score"].astype(float)})
    if deep is not None:
        scores["DL_score"] = deep.score.loc[keep].astype(float)
    scores.index.name = "patient_id"
    return ScoreInputs(scores=scores, best_model=None if best is None else str(best), lost=lost)


def nomogram_for(fit: DlrcFit, scores: pd.DataFrame):
    """The Fig. 3 nomogram of a fitted DLRC model (term ranges from the training cohort)."""
    train = fit.design.loc[scores.index[scores["cohort"] == "train"], fit.model.terms_]
    return Nomogram.from_model(fit.model.coef_, train)


def best_model_note(best_dl: str | None) -> str | None:
    """A note for the report when the chosen DL model is not the paper's (its Table 2 and
    Table 4 values are then recorded under its own name, with no published counterpart); none
    when deep learning was switched off (the notebook says so itself)."""
    if best_dl is None or best_dl == PAPER_BEST_DL:
        return None
    return (f"The best deep-learning model of this run is {best_dl}, not the paper's {PAPER_BEST_DL}: "
            f"its Table 2 rows and Table 4 comparisons are recorded as table2.<cohort>.{best_dl}.* and "
            f"table4.*_{best_dl}.*, which the paper does not report.")
