"""Training-cohort feature selection that turns thousands of features into one score.

The paper's four steps (radiomics and each deep-learning feature set alike), all on the
training cohort only:

1. **Univariate filter** — Mann–Whitney U test of each feature between LNM(+) and LNM(−),
   keep ``p < mw_p`` (R ``wilcox.test(exact=FALSE, correct=TRUE)`` via
   :func:`dlrc_lib.stats.mann_whitney_pvalues`).
2. **Redundancy filter** — Spearman correlation between the survivors; of every pair with
   ``|rho| > spearman_r`` keep the feature with the smaller Mann–Whitney p (greedy in order
   of p, so a feature is kept when it is not too correlated with any better one).
3. **LASSO** — L1-penalised logistic regression on the standardised survivors over a
   glmnet-style lambda path, stratified k-fold cross-validation of the binomial deviance,
   and the one-standard-error rule (the largest lambda whose CV deviance is within one SE of
   the minimum), as R ``cv.glmnet(x, y, family="binomial", type.measure="deviance")`` and
   ``coef(fit, s="lambda.1se")`` (:func:`dlrc_lib.stats.lasso_cv`, pinned to R along the
   whole path by tests/test_lasso_glmnet.py). The folds are seeded.
4. **Backward stepwise AIC** — unpenalised logistic regression on the LASSO survivors, backward
   elimination (``selection.stepwise_direction: both`` also tries adding dropped terms back) on AIC (R ``MASS::stepAIC(glm(...), direction="backward")`` via
   :func:`dlrc_lib.stats.backward_aic`).

The score is the final logistic model's linear predictor. The standardisation (training
mean and SD, as R ``scale()``) and the coefficients are applied unchanged to other cohorts.
Each step records how many features survive (the selection funnel); a step that leaves no
feature produces an explanation instead of a crash.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from dlrc_lib import stats
from dlrc_lib.stats.lasso import LassoCVResult, lasso_cv

__all__ = [
    "SelectionResult",
    "LassoCVResult",
    "select_features",
    "mann_whitney_filter",
    "spearman_prune",
    "lasso_cv",
    "fit_logistic",
    "standardise",
]


# ------------------------------------------------------------------------ utilities
def standardise(X: pd.DataFrame, mean: pd.Series, sd: pd.Series) -> pd.DataFrame:
    """``(X - mean) / sd`` column-wise with the given (training) mean and SD."""
    cols = list(mean.index)
    return (X[cols] - mean) / sd


def _usable(X: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    vals = X.to_numpy(dtype=float)
    finite = np.isfinite(vals).all(axis=0)
    with np.errstate(invalid="ignore"):
        const = np.nanstd(np.where(np.isfinite(vals), vals, np.nan), axis=0) == 0
    cols = list(X.columns)
    nonfinite = [c for c, f in zip(cols, finite) if not f]
    constant = [c for c, f, k in zip(cols, finite, const) if f and k]
    ok = [c for c, f, k in zip(cols, finite, const) if f and not k]
    return ok, nonfinite, constant


# ------------------------------------------------------------------- step 1: MW filter
def mann_whitney_filter(X: pd.DataFrame, y: pd.Series, threshold: float) -> pd.DataFrame:
    """Mann–Whitney p per feature (sorted by p); column ``keep`` = ``p < threshold``."""
    p = np.asarray(stats.mann_whitney_pvalues(X.to_numpy(dtype=float), np.asarray(y, dtype=int)),
                   dtype=float)
    out = pd.DataFrame({"feature": list(X.columns), "p": p})
    out["order"] = np.arange(len(out))
    out = out.sort_values(["p", "order"], kind="mergesort").drop(columns="order")
    out["keep"] = out["p"] < threshold
    return out.reset_index(drop=True)


# ---------------------------------------------------------------- step 2: Spearman
def spearman_matrix(X: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlation between columns (average ranks for ties), as R ``cor(method="spearman")``."""
    R = np.apply_along_axis(rankdata, 0, X.to_numpy(dtype=float))
    C = np.corrcoef(R, rowvar=False) if R.shape[1] > 1 else np.ones((1, 1))
    return pd.DataFrame(np.atleast_2d(C), index=X.columns, columns=X.columns)


def spearman_prune(X: pd.DataFrame, order: Sequence[str], threshold: float) -> tuple[list[str], pd.DataFrame]:
    """Greedy redundancy pruning.

    ``order``: features from best (smallest p) to worst. A feature is kept unless its
    ``|rho|`` with an already kept (better) feature exceeds ``threshold``. Returns the kept
    features (in ``order``) and a table of the dropped ones with the feature that
    displaced each and their rho.
    """
    order = list(order)
    if not order:
        return [], pd.DataFrame(columns=["feature", "dropped_for", "rho"])
    C = spearman_matrix(X[order]).to_numpy()
    kept: list[int] = []
    dropped = []
    for i in range(len(order)):
        if kept:
            r = C[i, kept]
            j = int(np.argmax(np.abs(r)))
            if abs(r[j]) > threshold:
                dropped.append((order[i], order[kept[j]], float(r[j])))
                continue
        kept.append(i)
    return [order[i] for i in kept], pd.DataFrame(dropped, columns=["feature", "dropped_for", "rho"])


# -------------------------------------------------------------------- step 3: LASSO
# the cross-validated LASSO (cv.glmnet) is an estimator of dlrc_lib.stats: dlrc_lib.stats.lasso

# --------------------------------------------------------------- step 4: final model
def fit_logistic(X: pd.DataFrame, y: Sequence[int]) -> pd.DataFrame:
    """Unpenalised logistic regression (R ``glm(family=binomial)`` via
    :func:`dlrc_lib.stats.logistic_glm`); one row per term with coef, se, z, p, OR and its
    Wald 95 % CI (R ``summary(fit)$coefficients`` and ``exp(confint.default(fit))``)."""
    fit = stats.logistic_glm(X.astype(float), np.asarray(y, dtype=int))
    return fit.summary_frame()[["term", "coef", "se", "z", "p", "OR", "OR_lower", "OR_upper"]]


# ------------------------------------------------------------------------ the chain
@dataclass
class SelectionResult:
    """Everything the selection produced; ``explanation`` is set when a step left nothing."""

    funnel: pd.DataFrame  # step, n_features, rule
    mann_whitney: pd.DataFrame  # feature, p, keep (all usable features)
    spearman_dropped: pd.DataFrame
    lasso: Optional[LassoCVResult]
    coefficients: pd.DataFrame  # final model: term, coef, se, z, p, OR, CI
    mean: pd.Series  # training means of the features entering LASSO
    sd: pd.Series  # training SDs (ddof=1) of those features
    selected: list[str] = field(default_factory=list)
    explanation: Optional[str] = None
    empty_step: Optional[str] = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.explanation is None

    @property
    def intercept(self) -> float:
        return float(self.coefficients.loc[self.coefficients["term"] == "(Intercept)", "coef"].iloc[0])

    @property
    def coef(self) -> pd.Series:
        c = self.coefficients[self.coefficients["term"] != "(Intercept)"]
        return pd.Series(c["coef"].to_numpy(), index=c["term"].to_list())

    def linear_predictor(self, X: pd.DataFrame) -> pd.Series:
        """Score = intercept + standardised features @ coefficients (training scaling)."""
        if not self.ok:
            raise ValueError(self.explanation)
        coef = self.coef
        Z = standardise(X, self.mean[coef.index], self.sd[coef.index])
        return pd.Series(self.intercept + Z.to_numpy() @ coef.to_numpy(), index=X.index, name="score")


def _funnel_row(step: str, n: int, rule: str) -> dict[str, Any]:
    return {"step": step, "n_features": int(n), "rule": rule}


def _lasso_step(Z: pd.DataFrame, y: pd.Series, kept: list[str], params, seed: int,
                notes: list[str], memo=None) -> tuple[LassoCVResult, list[str], str]:
    """LASSO with cross-validated lambda on the standardised candidates; the survivors (at
    most ``max_features_lasso``, by |coefficient|) in ``kept``'s order and the funnel text."""
    lasso = lasso_cv(Z, y.to_numpy(), folds=params.lasso_folds, rule=params.lasso_rule, seed=seed, memo=memo)
    if not lasso.converged:
        notes.append("the LASSO solver reached its iteration limit on some lambda values")
    nz = lasso.coef[lasso.coef != 0]
    nz = nz.reindex(nz.abs().sort_values(ascending=False, kind="mergesort").index)
    if params.max_features_lasso is not None and len(nz) > params.max_features_lasso:
        notes.append(f"LASSO kept {len(nz)} features; the {params.max_features_lasso} with the "
                     "largest |coefficient| go on to stepwise AIC (selection.max_features_lasso)")
        nz = nz.iloc[: params.max_features_lasso]
    rule_txt = f"{lasso.rule} rule, {int(len(np.unique(lasso.foldid)))}-fold CV, lambda = {lasso.chosen_lambda:.4g}"
    return lasso, [c for c in kept if c in nz.index], rule_txt


def _stepwise_step(Z: pd.DataFrame, y: pd.Series, direction: str, notes: list[str]) -> list[str]:
    """``MASS::stepAIC`` on the LASSO survivors; its warnings go to ``notes``."""
    step = stats.backward_aic(Z, y.to_numpy(), direction=direction)
    notes.extend(f"stepwise AIC: {w}" for w in step.warnings)
    return list(step.selected)


def _mann_whitney_explanation(mw: pd.DataFrame, params, n_usable: int, n_pos: int, n_neg: int) -> str:
    """Why no feature passed the Mann-Whitney filter."""
    best = mw.iloc[0]
    return (f"no feature passed Mann-Whitney p < {params.mw_p:g} in the training cohort "
            f"(smallest p = {best['p']:.3g}, {best['feature']}; {n_usable} features tested, "
            f"{n_pos} LNM(+) / {n_neg} LNM(-)); a larger selection.mw_p lets more features through")


def _lasso_explanation(lasso, n_candidates: int, rule_txt: str, params) -> str:
    """Why the LASSO kept no feature."""
    i = int(np.flatnonzero(lasso.lambdas == lasso.lambda_min)[0])
    return (f"LASSO ({rule_txt}) kept no feature: the cross-validated deviance of the "
            f"{n_candidates} candidates (best {lasso.cvm[i]:.4f} at lambda.min = {lasso.lambda_min:.4g}, "
            f"{int(lasso.nzero[i])} features) is within one standard error of the intercept-only "
            f"model ({lasso.cvm[0]:.4f}), so the 1-SE rule prefers no feature"
            + ("; with so small a training cohort set selection.lasso_rule: min" if params.lasso_rule == "1se"
               else ""))


def select_features(X: pd.DataFrame, y: Sequence[int], params, *, seed: int = 0,
                    funnel_prefix: Optional[list[dict]] = None,
                    record_usable: bool = True, lasso_memo=None) -> SelectionResult:
    """Run the four selection steps on a training matrix (patients x features) and labels.

    ``params``: a :class:`dlrc_lib.core.config.SelectionParams`. ``funnel_prefix`` rows (e.g. the
    ICC filter) are put before this function's own funnel rows; ``record_usable=False``
    leaves out the "usable features" row when the caller already screened them.
    ``lasso_memo``: a :class:`dlrc_lib.core.memo.Memo` for the cross-validated LASSO path
    (see :func:`lasso_cv`).
    """
    y = pd.Series(np.asarray(y, dtype=int), index=X.index)
    rows = list(funnel_prefix or [])
    notes: list[str] = []
    empty_coef = pd.DataFrame(columns=["term", "coef", "se", "z", "p", "OR", "OR_lower", "OR_upper"])
    empty_series = pd.Series(dtype=float)

    def stop(step: str, why: str, mw=None, sp=None, lasso=None, mean=empty_series, sd=empty_series):
        return SelectionResult(
            funnel=pd.DataFrame(rows), mann_whitney=mw if mw is not None else pd.DataFrame(columns=["feature", "p", "keep"]),
            spearman_dropped=sp if sp is not None else pd.DataFrame(columns=["feature", "dropped_for", "rho"]),
            lasso=lasso, coefficients=empty_coef, mean=mean, sd=sd, selected=[], explanation=why,
            empty_step=step, notes=notes,
        )

    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos < 2 or n_neg < 2:
        return stop("input", f"the training cohort has {n_pos} LNM(+) and {n_neg} LNM(-) patients; "
                             "selection needs at least 2 of each")
    usable, nonfinite, constant = _usable(X)
    if record_usable:
        rows.append(_funnel_row("Usable (finite, non-constant)", len(usable),
                                f"{len(nonfinite)} with missing values, {len(constant)} constant in training"))
    if nonfinite:
        notes.append(f"{len(nonfinite)} feature(s) with missing/non-finite values in the training "
                     f"cohort were not used, e.g. {', '.join(nonfinite[:3])}")
    if not usable:
        return stop("usable", "no feature is finite and non-constant in the training cohort")

    mw = mann_whitney_filter(X[usable], y, params.mw_p)
    passed = mw.loc[mw["keep"], "feature"].tolist()
    rows.append(_funnel_row("Mann-Whitney U", len(passed), f"p < {params.mw_p:g}"))
    if not passed:
        return stop("mann_whitney", _mann_whitney_explanation(mw, params, len(usable), n_pos, n_neg), mw=mw)

    kept, dropped = spearman_prune(X[passed], passed, params.spearman_r)
    rows.append(_funnel_row("Spearman pruning", len(kept), f"|rho| <= {params.spearman_r:g}"))

    mean = X[kept].mean()
    sd = X[kept].std(ddof=1)
    Z = standardise(X, mean, sd)
    lasso, lasso_kept, rule_txt = _lasso_step(Z, y, kept, params, seed, notes, memo=lasso_memo)
    rows.append(_funnel_row("LASSO", len(lasso_kept), rule_txt))
    if not lasso_kept:
        return stop("lasso", _lasso_explanation(lasso, len(kept), rule_txt, params),
                    mw=mw, sp=dropped, lasso=lasso, mean=mean, sd=sd)

    direction = getattr(params, "stepwise_direction", "backward")
    kept_aic = _stepwise_step(Z[lasso_kept], y, direction, notes)
    step_name = "Backward stepwise AIC" if direction == "backward" else f"Stepwise AIC ({direction})"
    rows.append(_funnel_row(step_name, len(kept_aic), f"MASS::stepAIC, direction = {direction}"))
    if not kept_aic:
        return stop("aic", f"{direction} stepwise AIC removed all {len(lasso_kept)} LASSO features: the "
                           "intercept-only logistic model has the lowest AIC", mw=mw, sp=dropped,
                    lasso=lasso, mean=mean, sd=sd)
    coefs = fit_logistic(Z[kept_aic], y.to_numpy())
    return SelectionResult(
        funnel=pd.DataFrame(rows), mann_whitney=mw, spearman_dropped=dropped, lasso=lasso,
        coefficients=coefs, mean=mean, sd=sd, selected=list(kept_aic), notes=notes,
    )
