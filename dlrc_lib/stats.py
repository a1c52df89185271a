"""Statistics with the conventions of the R functions the study used (R 4.2).

Each function names the R call whose numbers it reproduces. The implementations are
vectorised where the pipeline applies them to thousands of features at once
(:func:`mann_whitney_pvalues`, :func:`icc_many`).

=========================  ==============================================================
function                   R reference
=========================  ==============================================================
auc_ci                     ``pROC::ci.auc(roc(y, s, direction="<"), method="delong")``
delong_test                ``pROC::roc.test(r1, r2, method="delong", paired=TRUE)``
youden_threshold           ``pROC::coords(r, "best", best.method="youden")``
classification_metrics     counts + Wilson intervals (``prop.test(x, n, correct=FALSE)``)
hosmer_lemeshow            ``ResourceSelection::hoslem.test(y, p, g=10)``
calibration_curve          ``rms::val.prob(p, y)`` (Intercept, Slope, Brier, C, Dxy)
net_benefit                ``dcurves::dca`` (net benefit, treat all, treat none)
icc / icc_many             ``psych::ICC`` rows ICC2 (single random raters) / ICC3
                           (default lmer=TRUE; ``estimator="anova"``: lmer=FALSE)
mann_whitney_pvalues       ``wilcox.test(x1, x0, exact=FALSE, correct=TRUE)$p.value``
logistic_glm               ``glm(y ~ ., family=binomial)`` (same IRLS, start and stopping)
backward_aic               ``MASS::stepAIC(glm(y ~ ., binomial), direction="backward")``
compare_categorical        compareGroups: ``fisher.test`` if any expected < 5, else
                           ``chisq.test`` (Yates on 2x2)
compare_continuous         compareGroups (two groups): ``t.test(var.equal=TRUE)`` (Student) or
                           ``kruskal.test``; normality by ``shapiro.test``
quantile7                  ``quantile(x, type=7)``
=========================  ==============================================================
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy import special, stats as sps

from .errors import DlrcError

__all__ = [
    "AucCI", "DelongResult", "YoudenPoint", "Proportion", "ClassificationMetrics",
    "HosmerLemeshow", "CalibrationResult", "IccResult", "GlmFit", "StepAicResult",
    "TestResult", "auc", "auc_ci", "delong_test", "youden_threshold", "youden_point",
    "classification_metrics", "metrics_from_counts", "wilson_ci", "hosmer_lemeshow",
    "calibration_curve", "net_benefit", "icc", "icc_many", "mann_whitney_pvalues",
    "logistic_glm", "backward_aic", "compare_categorical", "compare_continuous",
    "fisher_exact", "chisq_test", "quantile7", "format_p",
]

_DBL_EPS = np.finfo(float).eps


# ============================================================================ helpers
def _binary(y, name: str = "y") -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise DlrcError(f"column {name}: expected a 1-D outcome, got shape {arr.shape}")
    try:
        f = arr.astype(float)
    except (TypeError, ValueError):
        raise DlrcError(f"column {name}: outcome must be 0/1, got values like {arr[:3]!r}") from None
    if np.isnan(f).any():
        raise DlrcError(f"column {name}: {int(np.isnan(f).sum())} missing outcome value(s)")
    bad = ~np.isin(f, (0.0, 1.0))
    if bad.any():
        raise DlrcError(f"column {name}: outcome must be 0/1, found {sorted(set(f[bad].tolist()))[:5]}")
    return f.astype(int)


def _numeric(x, name: str, n: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise DlrcError(f"column {name}: values must be numeric") from None
    if arr.ndim != 1:
        raise DlrcError(f"column {name}: expected 1-D values, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise DlrcError(f"column {name}: {arr.shape[0]} values for {n} outcomes")
    if not np.isfinite(arr).all():
        raise DlrcError(f"column {name}: {int((~np.isfinite(arr)).sum())} missing or infinite value(s)")
    return arr


def _midranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (R ``rank(ties.method="average")``) of a 1-D array."""
    return sps.rankdata(x, method="average")


def quantile7(x, probs) -> np.ndarray:
    """``quantile(x, probs, type=7)`` with R's exact arithmetic ``(1-h)*x[lo] + h*x[hi]``."""
    xs = np.sort(np.asarray(x, dtype=float))
    xs = xs[~np.isnan(xs)]
    n = xs.size
    probs = np.clip(np.atleast_1d(np.asarray(probs, dtype=float)), 0.0, 1.0)
    if n == 0:
        return np.full(probs.shape, np.nan)
    index = 1 + max(n - 1, 0) * probs
    lo = np.floor(index).astype(int)
    hi = np.ceil(index).astype(int)
    qs = xs[lo - 1].copy()
    xhi = xs[hi - 1]
    i = (index > lo) & (xhi != qs)
    h = (index - lo)[i]
    qs[i] = (1 - h) * qs[i] + h * xhi[i]
    return qs


def format_p(p: float, digits: int = 3) -> str | float:
    """A p-value as the paper prints it: rounded to ``digits``, or the string "<0.001"."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return float("nan")
    if p < 10 ** (-digits):
        return "<" + f"{10 ** (-digits):.{digits}f}"
    return round(float(p), digits)


# ================================================================== ROC and DeLong
class AucCI(NamedTuple):
    """AUC with its DeLong confidence interval (``pROC::ci.auc(method="delong")``)."""

    auc: float
    lower: float
    upper: float


def _placements(y: np.ndarray, score: np.ndarray):
    """DeLong structural components by Sun & Xu's midrank algorithm (O(n log n)).

    Returns (theta, V10 over cases, V01 over controls), as pROC ``delongPlacements`` with
    direction "<" (controls below cases): V10_i = P(score_i > control) + 0.5 P(tie).
    """
    cases = score[y == 1]
    controls = score[y == 0]
    m, n = cases.size, controls.size
    tz = _midranks(np.concatenate([cases, controls]))
    tx = _midranks(cases)
    ty = _midranks(controls)
    v10 = (tz[:m] - tx) / n
    v01 = 1.0 - (tz[m:] - ty) / m
    theta = float(np.mean(v10))
    return theta, v10, v01


def auc(y, score) -> float:
    """Area under the ROC curve with direction "<" (a higher score means a case)."""
    yy = _binary(y)
    s = _numeric(score, "score", yy.size)
    _check_both_classes(yy)
    return _placements(yy, s)[0]


def _check_both_classes(y: np.ndarray) -> None:
    if y.sum() == 0 or y.sum() == y.size:
        raise DlrcError(f"column y: ROC analysis needs both classes, got {int(y.sum())} cases "
                        f"and {int(y.size - y.sum())} controls")


def auc_ci(y, score, level: float = 0.95) -> AucCI:
    """AUC and its DeLong CI, as ``pROC::ci.auc(roc(y, score, direction="<"), method="delong")``.

    Bounds outside [0, 1] are clipped as pROC does; with a single case or control the
    interval is undefined (NaN), also as pROC.
    """
    yy = _binary(y)
    s = _numeric(score, "score", yy.size)
    _check_both_classes(yy)
    theta, v10, v01 = _placements(yy, s)
    m, n = v10.size, v01.size
    if m <= 1 or n <= 1:
        return AucCI(theta, float("nan"), float("nan"))
    sx = np.sum((v10 - theta) ** 2) / (m - 1)
    sy = np.sum((v01 - theta) ** 2) / (n - 1)
    sd = math.sqrt(sx / m + sy / n)
    z = sps.norm.ppf(1 - (1 - level) / 2)
    lo, hi = theta - z * sd, theta + z * sd
    return AucCI(theta, float(min(max(lo, 0.0), 1.0)), float(min(max(hi, 0.0), 1.0)))


@dataclass(frozen=True)
class DelongResult:
    """Paired DeLong test; unpacks as ``statistic, pvalue = delong_test(...)``.

    ``undefined`` explains why the statistic could not be computed (NaN), e.g. two scores
    that rank the patients identically have zero variance of the AUC difference.
    """

    statistic: float
    pvalue: float
    auc_a: float
    auc_b: float
    undefined: str | None = None

    def __iter__(self) -> Iterator[float]:
        return iter((self.statistic, self.pvalue))


def delong_test(y, score_a, score_b) -> DelongResult:
    """Paired two-sided DeLong test of two correlated AUCs (Sun & Xu's fast algorithm).

    As ``pROC::roc.test(roc(y, a, direction="<"), roc(y, b, direction="<"),
    method="delong", paired=TRUE)``: z = (AUC_a - AUC_b) / sd, p = 2 Phi(-|z|).
    Where the variance of the difference is zero (e.g. a score against itself or a
    monotone transform of it) the test is undefined: statistic and p-value are NaN and
    ``undefined`` says why (pROC reports z = 0, p = 1 in that case).
    """
    yy = _binary(y)
    a = _numeric(score_a, "score_a", yy.size)
    b = _numeric(score_b, "score_b", yy.size)
    _check_both_classes(yy)
    ta, xa, ya = _placements(yy, a)
    tb, xb, yb = _placements(yy, b)
    m, n = xa.size, ya.size
    if m <= 1 or n <= 1:
        return DelongResult(float("nan"), float("nan"), ta, tb,
                            "DeLong test needs at least two cases and two controls")
    dx = (xa - ta) - (xb - tb)
    dy = (ya - ta) - (yb - tb)
    # L S L' with S = SX/m + SY/n, L = (1, -1)
    var = np.sum(dx * dx) / (m - 1) / m + np.sum(dy * dy) / (n - 1) / n
    d = ta - tb
    if not var > 0:
        return DelongResult(float("nan"), float("nan"), ta, tb,
                            "the two scores rank every case/control pair alike: the variance "
                            "of the AUC difference is zero, so DeLong's test is undefined")
    z = d / math.sqrt(var)
    p = 2 * sps.norm.sf(abs(z))
    return DelongResult(float(z), float(p), ta, tb, None)


def _proc_thresholds(score: np.ndarray) -> np.ndarray:
    """pROC ``roc.utils.thresholds`` for direction "<" (midpoints, near ties fixed)."""
    u = np.unique(score)
    lo = np.concatenate([[-np.inf], u])
    hi = np.concatenate([u, [np.inf]])
    with np.errstate(invalid="ignore", over="ignore"):
        t1 = (lo + hi) / 2
        t2 = lo / 2 + hi / 2
    thr = np.where(np.abs(t1) > 1e100, t2, t1)
    ties = np.isin(thr, score)
    for idx in np.flatnonzero(ties):
        if idx >= 1 and thr[idx] == u[idx - 1]:
            thr[idx] = u[idx]
    return thr


class YoudenPoint(NamedTuple):
    threshold: float
    sensitivity: float
    specificity: float
    youden: float
    tied_thresholds: tuple  # every threshold with the same maximal index (pROC returns all)


def youden_point(y, score) -> YoudenPoint:
    """The ROC point of maximal Youden index, as ``pROC::coords(r, "best",
    best.method="youden")`` (direction "<"; a case is positive when score >= threshold).

    pROC returns every threshold that ties for the maximum; the lowest is taken here and
    all are listed in ``tied_thresholds``.
    """
    yy = _binary(y)
    s = _numeric(score, "score", yy.size)
    _check_both_classes(yy)
    thr = _proc_thresholds(s)
    cases = np.sort(s[yy == 1])
    controls = np.sort(s[yy == 0])
    # positives at threshold t: score >= t
    se = (cases.size - np.searchsorted(cases, thr, side="left")) / cases.size
    sp = np.searchsorted(controls, thr, side="left") / controls.size
    crit = se + sp
    best = np.flatnonzero(crit == crit.max())
    i = best[0]
    return YoudenPoint(float(thr[i]), float(se[i]), float(sp[i]), float(crit[i] - 1),
                       tuple(float(t) for t in thr[best]))


def youden_threshold(y, score) -> float:
    """Threshold maximising sensitivity + specificity - 1 (see :func:`youden_point`)."""
    return youden_point(y, score).threshold


# =========================================================== classification metrics
class Proportion(NamedTuple):
    """A proportion with its Wilson 95 % interval; NaN everywhere when 0/0 (undefined)."""

    estimate: float
    lower: float
    upper: float
    numerator: int
    denominator: int

    @property
    def undefined(self) -> bool:
        return self.denominator == 0

    def percent(self, digits: int | None = 1) -> float | None:
        """Estimate in percent (rounded to ``digits``), None when undefined."""
        if self.undefined:
            return None
        v = 100.0 * self.estimate
        return round(v, digits) if digits is not None else v


def wilson_ci(x: int, n: int, level: float = 0.95) -> Proportion:
    """Wilson score interval, as ``prop.test(x, n, correct=FALSE)$conf.int``."""
    if n == 0:
        return Proportion(float("nan"), float("nan"), float("nan"), int(x), 0)
    p = x / n
    z = sps.norm.ppf(1 - (1 - level) / 2)
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return Proportion(p, max(0.0, centre - half), min(1.0, centre + half), int(x), int(n))


@dataclass(frozen=True)
class ClassificationMetrics:
    """Confusion counts and ACC, SEN, SPE, PPV, NPV with Wilson 95 % CIs.

    A ratio whose denominator is zero (e.g. NPV when nobody is called negative) is
    reported as undefined (``Proportion.undefined``; NaN estimate), never as 0.
    """

    tp: int
    fn: int
    tn: int
    fp: int
    acc: Proportion
    sen: Proportion
    spe: Proportion
    ppv: Proportion
    npv: Proportion

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for key in ("acc", "sen", "spe", "ppv", "npv"):
            pr: Proportion = getattr(self, key)
            rows.append({"metric": key.upper(), "estimate": pr.estimate, "lower": pr.lower,
                         "upper": pr.upper, "numerator": pr.numerator,
                         "denominator": pr.denominator, "defined": not pr.undefined})
        return pd.DataFrame(rows)

    def percent(self, digits: int | None = 1) -> dict[str, float | None]:
        """``{"acc": 78.0, ..., "npv": None}`` in percent, None where undefined."""
        return {k: getattr(self, k).percent(digits) for k in ("acc", "sen", "spe", "ppv", "npv")}


def metrics_from_counts(tp: int, fn: int, tn: int, fp: int, level: float = 0.95) -> ClassificationMetrics:
    """:class:`ClassificationMetrics` from the four confusion counts."""
    for name, v in (("tp", tp), ("fn", fn), ("tn", tn), ("fp", fp)):
        if int(v) != v or v < 0:
            raise DlrcError(f"confusion count {name}={v!r} must be a non-negative integer")
    tp, fn, tn, fp = int(tp), int(fn), int(tn), int(fp)
    return ClassificationMetrics(
        tp, fn, tn, fp,
        acc=wilson_ci(tp + tn, tp + fn + tn + fp, level),
        sen=wilson_ci(tp, tp + fn, level),
        spe=wilson_ci(tn, tn + fp, level),
        ppv=wilson_ci(tp, tp + fp, level),
        npv=wilson_ci(tn, tn + fn, level),
    )


def classification_metrics(y, predicted, level: float = 0.95) -> ClassificationMetrics:
    """Counts and ACC/SEN/SPE/PPV/NPV (Wilson CIs) of a 0/1 prediction against 0/1 truth."""
    yy = _binary(y, "y")
    pp = _binary(predicted, "predicted")
    if pp.size != yy.size:
        raise DlrcError(f"column predicted: {pp.size} predictions for {yy.size} outcomes")
    tp = int(np.sum((yy == 1) & (pp == 1)))
    fn = int(np.sum((yy == 1) & (pp == 0)))
    tn = int(np.sum((yy == 0) & (pp == 0)))
    fp = int(np.sum((yy == 0) & (pp == 1)))
    return metrics_from_counts(tp, fn, tn, fp, level)


# ====================================================================== calibration
def _quantile_groups(p: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Group index of each probability and the breaks, as ResourceSelection:
    ``cut(p, unique(quantile(p, seq(0, 1, 1/g))), include.lowest=TRUE)`` (right-closed)."""
    probs = np.arange(groups + 1) * (1.0 / groups)  # R: seq(0, 1, 1/g)
    qq = np.unique(quantile7(p, probs))
    code = np.searchsorted(qq, p, side="left") - 1
    code[p == qq[0]] = 0
    return code, qq


class HosmerLemeshow(NamedTuple):
    statistic: float
    df: int
    pvalue: float
    table: pd.DataFrame  # per group: n, observed/expected events and non-events


def hosmer_lemeshow(y, prob, groups: int = 10) -> HosmerLemeshow:
    """Hosmer-Lemeshow test as ``ResourceSelection::hoslem.test(y, prob, g=groups)``.

    Groups are cut at the unique type-7 quantiles of the fitted probabilities
    (``cut(..., include.lowest=TRUE)``, right-closed); df = g - 2 with g as requested.
    As in R, an interval that holds no patient (possible with tied probabilities) makes the
    statistic 0/0 = NaN; ``table`` shows the groups.
    """
    yy = _binary(y)
    p = _numeric(prob, "prob", yy.size)
    code, qq = _quantile_groups(p, groups)
    if qq.size < 2:
        raise DlrcError("column prob: Hosmer-Lemeshow needs at least two distinct fitted probabilities")
    k = qq.size - 1
    n_g = np.bincount(code, minlength=k)
    o1 = np.bincount(code, weights=yy, minlength=k)
    e1 = np.bincount(code, weights=p, minlength=k)
    o0, e0 = n_g - o1, n_g - e1
    with np.errstate(divide="ignore", invalid="ignore"):
        chisq = float(np.sum((o0 - e0) ** 2 / e0) + np.sum((o1 - e1) ** 2 / e1))
    df = groups - 2
    pval = float(sps.chi2.sf(chisq, df)) if np.isfinite(chisq) else float("nan")
    labels = [("[" if i == 0 else "(") + f"{qq[i]:.3g},{qq[i + 1]:.3g}]" for i in range(k)]
    table = pd.DataFrame({"group": labels, "n": n_g, "observed_0": o0, "expected_0": e0,
                          "observed_1": o1, "expected_1": e1})
    return HosmerLemeshow(chisq, df, pval, table)


@dataclass(frozen=True)
class CalibrationResult:
    """Grouped calibration plus the logistic recalibration statistics of ``rms::val.prob``."""

    groups: pd.DataFrame  # group, n, mean_predicted, observed, lower, upper (Wilson)
    intercept: float
    slope: float
    brier: float
    c_index: float
    dxy: float
    n_dropped: int = 0  # probabilities of exactly 0 or 1 (left out of the recalibration fit)


def calibration_curve(y, prob, groups: int = 10, level: float = 0.95) -> CalibrationResult:
    """Observed vs predicted risk per quantile group, with Wilson CIs, plus ``rms::val.prob``
    statistics: Intercept and Slope of ``lrm(y ~ qlogis(p))``, Brier = mean((p - y)^2),
    C (ROC) and Dxy = 2(C - 0.5). Groups as in :func:`hosmer_lemeshow`.
    """
    yy = _binary(y)
    p = _numeric(prob, "prob", yy.size)
    if ((p < 0) | (p > 1)).any():
        raise DlrcError("column prob: probabilities must lie in [0, 1]")
    rows = []
    if np.unique(p).size >= 2:
        code, qq = _quantile_groups(p, groups)
        for g in range(qq.size - 1):
            sel = code == g
            ci = wilson_ci(int(yy[sel].sum()), int(sel.sum()), level)
            rows.append({"group": g + 1, "n": int(sel.sum()),
                         "mean_predicted": float(p[sel].mean()) if sel.any() else float("nan"),
                         "observed": ci.estimate, "lower": ci.lower, "upper": ci.upper})
    grp = pd.DataFrame(rows, columns=["group", "n", "mean_predicted", "observed", "lower", "upper"])
    ok = (p > 0) & (p < 1)
    lp = special.logit(p[ok])
    intercept = slope = float("nan")
    if ok.sum() >= 2 and np.unique(lp).size >= 2 and 0 < yy[ok].sum() < ok.sum():
        fit = logistic_glm(lp.reshape(-1, 1), yy[ok])
        intercept, slope = float(fit.coef[0]), float(fit.coef[1])
    brier = float(np.mean((p - yy) ** 2))
    c = _placements(yy, p)[0] if 0 < yy.sum() < yy.size else float("nan")
    return CalibrationResult(grp, intercept, slope, brier, c, 2 * (c - 0.5), int((~ok).sum()))


def net_benefit(y, prob, thresholds) -> pd.DataFrame:
    """Decision-curve net benefit per threshold probability, as R ``dcurves::dca``.

    A patient is treated when prob >= pt; net benefit = TP/n - FP/n * pt/(1 - pt);
    treat-all uses everyone as positive; treat-none is 0. As dcurves, a probability of
    exactly 0 counts as below every threshold (dcurves replaces it by -eps).
    """
    yy = _binary(y)
    p = _numeric(prob, "prob", yy.size)
    pt = np.atleast_1d(np.asarray(thresholds, dtype=float))
    if ((pt < 0) | (pt >= 1)).any():
        raise DlrcError("thresholds: threshold probabilities must lie in [0, 1)")
    n = yy.size
    p = np.where(p == 0, -_DBL_EPS, p)
    order = np.argsort(p, kind="mergesort")
    ps = p[order]
    ys = yy[order]
    # number with prob >= pt, and events among them
    start = np.searchsorted(ps, pt, side="left")
    cum_events = np.concatenate([[0], np.cumsum(ys)])
    n_pos = n - start
    tp = cum_events[-1] - cum_events[start]
    fp = n_pos - tp
    odds = pt / (1 - pt)
    prev = yy.mean()
    return pd.DataFrame({
        "threshold": pt,
        "net_benefit": tp / n - fp / n * odds,
        "treat_all": prev - (1 - prev) * odds,
        "treat_none": np.zeros_like(pt),
        "tp": tp.astype(int), "fp": fp.astype(int), "n": n,
    })


# ========================================================================== ICC
class IccResult(NamedTuple):
    """One ICC with its F test and 95 % interval, as a row of ``psych::ICC(x)$results``."""

    icc: float
    F: float
    df1: float
    df2: float
    pvalue: float
    lower: float
    upper: float
    form: str


_ICC_FORMS = ("ICC(2,1)", "ICC(3,1)")


def _icc_mean_squares(x: np.ndarray):
    """Two-way ANOVA mean squares for ratings of shape (..., n_cases, n_raters)."""
    n, k = x.shape[-2], x.shape[-1]
    grand = x.mean(axis=(-2, -1), keepdims=True)
    rowm = x.mean(axis=-1, keepdims=True)
    colm = x.mean(axis=-2, keepdims=True)
    ssr = k * np.sum((rowm - grand) ** 2, axis=(-2, -1))
    ssc = n * np.sum((colm - grand) ** 2, axis=(-2, -1))
    sse = np.sum((x - rowm - colm + grand) ** 2, axis=(-2, -1))
    msr = ssr / (n - 1)
    msc = ssc / (k - 1)
    mse = sse / ((n - 1) * (k - 1))
    return msr, msc, mse, n, k


def _reml_ms(msr, msc, mse, n, k):
    """Expected mean squares implied by REML variance components (psych's default
    ``lmer=TRUE``) for complete balanced ratings: the weighted isotonic regression of the
    mean squares under E[MS_cases] >= E[MS_error] <= E[MS_raters], i.e. a component whose
    ANOVA estimate is negative is set to 0 and its sum of squares pooled into the error."""
    dfr, dfc, dfe = n - 1, k - 1, (n - 1) * (k - 1)
    msr, msc, mse = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (msr, msc, mse)))
    low_is_r = msr <= msc
    ms_l = np.where(low_is_r, msr, msc)
    ms_h = np.where(low_is_r, msc, msr)
    df_l = np.where(low_is_r, dfr, dfc)
    df_h = np.where(low_is_r, dfc, dfr)
    pool_l = ms_l < mse
    lam1 = np.where(pool_l, (mse * dfe + ms_l * df_l) / (dfe + df_l), mse)
    pool_h = pool_l & (ms_h < lam1)
    lam = np.where(pool_h, (mse * dfe + ms_l * df_l + ms_h * df_h) / (dfe + df_l + df_h), lam1)
    new_l = np.where(pool_l, lam, ms_l)
    new_h = np.where(pool_h, lam, ms_h)
    new_r = np.where(low_is_r, new_l, new_h)
    new_c = np.where(low_is_r, new_h, new_l)
    return new_r, new_c, lam


def _icc_from_ms(msr, msc, mse, n, k, form: str):
    with np.errstate(divide="ignore", invalid="ignore"):
        if form == "ICC(2,1)":
            return (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
        if form == "ICC(3,1)":
            return (msr - mse) / (msr + (k - 1) * mse)
    raise DlrcError(f"ICC form {form!r} is not one of {_ICC_FORMS}")


def icc(ratings, form: str = "ICC(2,1)", level: float = 0.95, estimator: str = "reml") -> IccResult:
    """ICC of a cases x raters array, as ``psych::ICC(ratings)`` (row ICC2 or ICC3).

    ICC(2,1): two-way random effects, absolute agreement, single rater;
    ICC(3,1): two-way mixed effects, consistency, single rater. ``estimator="reml"``
    gives psych's default (``lmer=TRUE``: variance components by REML, so a negative
    rater or case component is set to 0); ``"anova"`` gives ``psych::ICC(x, lmer=FALSE)``
    (classical Shrout & Fleiss mean squares). Both agree whenever no ANOVA variance
    component is negative. Cases with a missing rating are dropped. Confidence bounds
    and the F test follow psych (Shrout & Fleiss; McGraw & Wong for ICC(2,1)).
    """
    if estimator not in ("reml", "anova"):
        raise DlrcError(f"ICC estimator {estimator!r} is not 'reml' or 'anova'")
    if form not in _ICC_FORMS:
        raise DlrcError(f"ICC form {form!r} is not one of {_ICC_FORMS}")
    x = np.asarray(ratings, dtype=float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise DlrcError(f"ratings: expected a cases x raters array with >= 2 raters, got shape {x.shape}")
    x = x[np.isfinite(x).all(axis=1)]
    if x.shape[0] < 2:
        raise DlrcError("ratings: fewer than two cases with every rating present")
    msr, msc, mse, n, k = _icc_mean_squares(x)
    if estimator == "reml":
        msr, msc, mse = _reml_ms(msr, msc, mse, n, k)
    msr, msc, mse = float(msr), float(msc), float(mse)
    value = float(_icc_from_ms(msr, msc, mse, n, k, form))
    alpha = 1 - level
    df1, df2 = n - 1, (n - 1) * (k - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        F = msr / mse if mse > 0 else (float("inf") if msr > 0 else float("nan"))
    pval = float(sps.f.sf(F, df1, df2)) if np.isfinite(F) else (0.0 if F == np.inf else float("nan"))
    with np.errstate(divide="ignore", invalid="ignore"):
        lower, upper = _icc_bounds(form, F, msr, msc, mse, n, k, value, alpha, df1, df2)
    return IccResult(value, float(F), float(df1), float(df2), pval, float(lower), float(upper), form)


def _icc_bounds(form, F, msr, msc, mse, n, k, value, alpha, df1, df2):
    if form == "ICC(3,1)":
        fl = F / sps.f.ppf(1 - alpha / 2, df1, df2)
        fu = F * sps.f.ppf(1 - alpha / 2, df2, df1)
        lower = (fl - 1) / (fl + k - 1)
        upper = (fu - 1) / (fu + k - 1)
    else:
        fj = msc / mse if mse > 0 else float("inf")
        icc2 = value
        vn = (k - 1) * (n - 1) * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        vd = (n - 1) * k ** 2 * icc2 ** 2 * fj ** 2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        v = vn / vd if vd > 0 else float("nan")
        if np.isfinite(v) and v > 0:
            f3u = sps.f.ppf(1 - alpha / 2, n - 1, v)
            f3l = sps.f.ppf(1 - alpha / 2, v, n - 1)
            denom_common = k * msc + (k * n - k - n) * mse
            lower = n * (msr - f3u * mse) / (f3u * denom_common + n * msr)
            upper = n * (f3l * msr - mse) / (denom_common + n * f3l * msr)
        else:
            lower = upper = float("nan")
    return lower, upper


def icc_many(ratings, form: str = "ICC(2,1)", estimator: str = "reml") -> np.ndarray:
    """ICC of many features at once: ``ratings`` (n_features, n_cases, n_raters) -> (n_features,).

    Vectorised version of :func:`icc` (point estimates only, same ``estimator``), as
    ``psych::ICC`` per feature. A feature with a missing rating for some case uses its complete cases
    (computed separately); a constant feature gives NaN (0/0), as psych.
    """
    if form not in _ICC_FORMS:
        raise DlrcError(f"ICC form {form!r} is not one of {_ICC_FORMS}")
    if estimator not in ("reml", "anova"):
        raise DlrcError(f"ICC estimator {estimator!r} is not 'reml' or 'anova'")

    def point(xx):
        msr, msc, mse, n, k = _icc_mean_squares(xx)
        if estimator == "reml":
            msr, msc, mse = _reml_ms(msr, msc, mse, n, k)
        return _icc_from_ms(msr, msc, mse, n, k, form)

    x = np.asarray(ratings, dtype=float)
    if x.ndim != 3 or x.shape[2] < 2 or x.shape[1] < 2:
        raise DlrcError(f"ratings: expected (n_features, n_cases>=2, n_raters>=2), got shape {x.shape}")
    finite = np.isfinite(x).all(axis=(1, 2))
    out = np.full(x.shape[0], np.nan)
    if finite.any():
        out[finite] = point(x[finite])
    for i in np.flatnonzero(~finite):
        xi = x[i][np.isfinite(x[i]).all(axis=1)]
        if xi.shape[0] >= 2:
            out[i] = point(xi)
    return out


# ================================================================= Mann-Whitney U
def mann_whitney_pvalues(X, y):
    """Two-sided Mann-Whitney U p-value per column of ``X`` (patients x features).

    Normal approximation with continuity and tie correction, exactly as
    ``wilcox.test(x[y == 1], x[y == 0], exact=FALSE, correct=TRUE)$p.value``. Vectorised:
    one sort per column gives the rank sums (midranks for ties) and the tie term
    sum(t^3 - t) from the tie runs. Missing values are dropped per column (as R); a column that is
    constant gives NaN. Returns a Series for a DataFrame input, else an array.
    """
    index = X.columns if isinstance(X, pd.DataFrame) else None
    A = np.asarray(X, dtype=float)
    if A.ndim == 1:
        A = A[:, None]
    yy = _binary(y)
    if A.shape[0] != yy.size:
        raise DlrcError(f"features: {A.shape[0]} rows for {yy.size} outcomes")
    out = np.full(A.shape[1], np.nan)
    complete = np.isfinite(A).all(axis=0)
    if complete.any():
        out[complete] = _mw_block(A[:, complete], yy)
    for j in np.flatnonzero(~complete):
        ok = np.isfinite(A[:, j])
        if ok.sum() >= 2 and 0 < yy[ok].sum() < ok.sum():
            out[j] = _mw_block(A[ok, j:j + 1], yy[ok])[0]
    return pd.Series(out, index=index, name="p_mann_whitney") if index is not None else out


def _mw_block(A: np.ndarray, y: np.ndarray, chunk: int = 2000) -> np.ndarray:
    N = A.shape[0]
    n1 = int(y.sum())
    n0 = N - n1
    if n1 == 0 or n0 == 0:
        return np.full(A.shape[1], np.nan)
    w = np.empty(A.shape[1])
    ties = np.empty(A.shape[1])
    idx = np.arange(N)
    ranks = np.arange(1, N + 1, dtype=float)
    yf = y.astype(float)
    for c0 in range(0, A.shape[1], chunk):
        # columns as rows (contiguous): sort each, then midranks of tie runs
        B = np.ascontiguousarray(A[:, c0:c0 + chunk].T)
        order = np.argsort(B, axis=1)
        s = np.take_along_axis(B, order, axis=1)
        ys = yf[order]
        new = np.empty(s.shape, dtype=bool)
        new[:, 0] = True
        np.not_equal(s[:, 1:], s[:, :-1], out=new[:, 1:])
        if new.all():
            rs = ys @ ranks
            tt = np.zeros(B.shape[0])
        else:
            start = np.maximum.accumulate(np.where(new, idx, 0), axis=1)
            last = np.empty_like(new)
            last[:, -1] = True
            last[:, :-1] = new[:, 1:]
            end = np.minimum.accumulate(np.where(last, idx, N)[:, ::-1], axis=1)[:, ::-1]
            rs = np.einsum("ij,ij->i", (start + end) / 2.0 + 1, ys)
            t = (end - start + 1).astype(float)
            tt = np.sum(t * t - 1, axis=1)  # = sum over tie runs of (t^3 - t)
        w[c0:c0 + chunk] = rs - n1 * (n1 + 1) / 2.0
        ties[c0:c0 + chunk] = tt
    z = w - n1 * n0 / 2.0
    sigma = np.sqrt((n1 * n0 / 12.0) * ((N + 1) - ties / (N * (N - 1))))
    correction = np.sign(z) * 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        zz = (z - correction) / sigma
    p = 2 * np.minimum(sps.norm.cdf(zz), sps.norm.sf(zz))
    return np.where(sigma > 0, p, np.nan)


# ======================================================================= logistic
@dataclass
class GlmFit:
    """A binomial GLM fitted as R ``glm.fit`` (logit link)."""

    coef: np.ndarray  # intercept first; NaN for aliased columns
    se: np.ndarray
    deviance: float
    aic: float
    rank: int
    converged: bool
    iterations: int
    fitted: np.ndarray
    aliased: np.ndarray  # bool per column (intercept first)
    boundary_fitted: bool  # fitted probabilities numerically 0 or 1 occurred


def _logit_linkinv(eta: np.ndarray) -> np.ndarray:
    # R C_logit_linkinv: exp clamped at +-30 (THRESH), mu = tmp / (1 + tmp)
    tmp = np.where(eta < -30, _DBL_EPS, np.where(eta > 30, 1 / _DBL_EPS, np.exp(np.clip(eta, -30, 30))))
    return tmp / (1 + tmp)


def _logit_mu_eta(eta: np.ndarray) -> np.ndarray:
    e = np.exp(np.clip(eta, -30, 30))
    opexp = 1 + e
    return np.where((eta > 30) | (eta < -30), _DBL_EPS, e / (opexp * opexp))


def _binom_dev(y: np.ndarray, mu: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(y > 0, y * np.log(y / mu), 0.0)
        b = np.where(y < 1, (1 - y) * np.log((1 - y) / (1 - mu)), 0.0)
    return float(np.sum(2 * (a + b)))


def _pivoted_rank(X: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Columns kept by R's limited-pivoting QR (``dqrdc2``): a column whose norm after
    projecting out the kept earlier columns falls below ``tol`` times its own norm is
    aliased. Returns a boolean mask of kept columns."""
    keep = np.zeros(X.shape[1], dtype=bool)
    Q = np.zeros((X.shape[0], 0))
    for j in range(X.shape[1]):
        col = X[:, j]
        nrm = np.linalg.norm(col)
        if nrm == 0:
            continue
        r = col - Q @ (Q.T @ col)
        r = r - Q @ (Q.T @ r)
        rn = np.linalg.norm(r)
        if rn > tol * nrm:
            keep[j] = True
            Q = np.column_stack([Q, r / rn])
    return keep


def _single_thread_blas():
    """Small least-squares problems run fastest on one BLAS thread (multi-threading them
    on a busy machine makes them many times slower)."""
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1, user_api="blas")
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        import contextlib

        return contextlib.nullcontext()


def logistic_glm(X, y, *, maxit: int = 25, epsilon: float = 1e-8) -> GlmFit:
    """Logistic regression as R ``glm(y ~ X, family=binomial)``.

    Same IRLS as ``glm.fit``: start mu = (y + 0.5)/2, deviance convergence
    |dev - dev_old| / (|dev| + 0.1) < epsilon, at most 25 iterations, R's clamped logit
    link. Columns linearly dependent on earlier ones are aliased (coefficient NaN), as R.
    Under (quasi-)complete separation R stops with huge coefficients and fitted
    probabilities of 0 or 1; so does this (``boundary_fitted`` is True), and the
    deviance and AIC then agree with R's to the precision R itself achieves.
    """
    with _single_thread_blas():
        return _logistic_glm(X, y, maxit=maxit, epsilon=epsilon)


def _logistic_glm(X, y, *, maxit: int, epsilon: float) -> GlmFit:
    A = np.asarray(X, dtype=float)
    if A.ndim == 1:
        A = A[:, None]
    yy = _binary(y).astype(float)
    if A.shape[0] != yy.size:
        raise DlrcError(f"features: {A.shape[0]} rows for {yy.size} outcomes")
    if not np.isfinite(A).all():
        raise DlrcError("features: missing or infinite values in the logistic model's design")
    D = np.column_stack([np.ones(yy.size), A])
    keep = _pivoted_rank(D)
    Dk = D[:, keep]
    mu = (yy + 0.5) / 2.0
    eta = np.log(mu / (1 - mu))
    mu = _logit_linkinv(eta)
    devold = _binom_dev(yy, mu)
    beta = np.zeros(Dk.shape[1])
    conv = False
    it = 0
    R = None
    for it in range(1, maxit + 1):
        mev = _logit_mu_eta(eta)
        var = mu * (1 - mu)
        good = mev != 0
        z = eta[good] + (yy - mu)[good] / mev[good]
        w = np.sqrt(mev[good] ** 2 / var[good])
        Q, R = np.linalg.qr(Dk[good] * w[:, None])
        beta_new = np.linalg.solve(R, Q.T @ (z * w))
        eta_new = Dk @ beta_new
        mu_new = _logit_linkinv(eta_new)
        dev = _binom_dev(yy, mu_new)
        halvings = 0
        while not np.isfinite(dev) and halvings < 30:
            beta_new = (beta_new + beta) / 2
            eta_new = Dk @ beta_new
            mu_new = _logit_linkinv(eta_new)
            dev = _binom_dev(yy, mu_new)
            halvings += 1
        beta, eta, mu = beta_new, eta_new, mu_new
        if abs(dev - devold) / (abs(dev) + 0.1) < epsilon:
            conv = True
            break
        devold = dev
    coef = np.full(D.shape[1], np.nan)
    coef[keep] = beta
    se = np.full(D.shape[1], np.nan)
    if R is not None:
        try:
            Rinv = np.linalg.inv(R)
            se[keep] = np.sqrt(np.sum(Rinv ** 2, axis=1))
        except np.linalg.LinAlgError:
            pass
    rank = int(keep.sum())
    dev = _binom_dev(yy, mu)
    eps10 = 10 * _DBL_EPS
    boundary = bool(np.any(mu > 1 - eps10) or np.any(mu < eps10))
    return GlmFit(coef, se, dev, dev + 2 * rank, rank, conv, it, mu, ~keep, boundary)


@dataclass
class StepAicResult:
    """Backward elimination on AIC, as ``MASS::stepAIC(..., direction="backward")``."""

    selected: list[str]  # columns kept, in their original order
    coef: pd.Series  # final model: "(Intercept)" then the kept columns
    aic: float
    path: pd.DataFrame  # step, removed ("" for the start), AIC after the step
    converged: bool
    separation: bool  # the final fit has fitted probabilities numerically 0 or 1
    warnings: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[str]:
        return iter(self.selected)

    def __len__(self) -> int:
        return len(self.selected)


def backward_aic(X, y, *, k: float = 2.0, direction: str = "backward") -> StepAicResult:
    """Backward stepwise logistic regression on AIC, identical in its choices to
    ``MASS::stepAIC(glm(y ~ ., family=binomial, data=X), direction="backward")``.

    ``direction="both"`` is ``stepAIC(..., direction="both")`` from the full model: each step
    also considers adding back every term dropped earlier (R lists the drops before the
    additions, so on equal AIC a drop wins).

    Each step refits the model without each remaining term (``drop1``) and removes the
    term whose removal gives the lowest AIC; it stops when keeping all terms ("<none>")
    is at least as good (ties go to "<none>", then to the earlier term, as R's ``order``).
    Terms that add no degree of freedom (linearly dependent on others) are removed first,
    the last such term first, as stepAIC. Under separation the fits behave as R's do
    (deviance near 0); the result records it in ``separation`` and ``warnings``.
    """
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        A = X.to_numpy(dtype=float)
    else:
        A = np.asarray(X, dtype=float)
        if A.ndim == 1:
            A = A[:, None]
        names = [f"x{i + 1}" for i in range(A.shape[1])]
    if direction not in ("backward", "both"):
        raise DlrcError(f"stepwise AIC: direction {direction!r} is not backward or both")
    yy = _binary(y)
    if not np.isfinite(A).all():
        bad = [names[j] for j in np.flatnonzero(~np.isfinite(A).all(axis=0))]
        raise DlrcError(f"columns {', '.join(bad[:5])}: missing or infinite values; stepwise "
                        "AIC needs complete data (R stops with 'number of rows in use has changed')")
    with _single_thread_blas():
        return _backward_aic(A, yy, names, k, both=direction == "both")


def _backward_aic(A: np.ndarray, yy: np.ndarray, names: list[str], k: float,
                  both: bool = False) -> StepAicResult:
    def glm(cols):
        return _logistic_glm(A[:, cols], yy, maxit=25, epsilon=1e-8)

    current = list(range(A.shape[1]))
    fit = glm(current)
    aic = fit.deviance + k * fit.rank
    path = [{"step": 0, "removed": "", "aic": aic, **({"added": ""} if both else {})}]
    warns: list[str] = []
    step = 0
    while current or (both and A.shape[1]):
        cands = []
        for pos, j in enumerate(current):
            sub = [c for c in current if c != j]
            f2 = glm(sub)
            cands.append((pos, j, f2, fit.rank - f2.rank, f2.deviance + k * f2.rank))
        zero_df = [c for c in cands if c[3] == 0]
        if both:  # add1 rows after the drop1 rows, in the order of the full model's terms
            for j in range(A.shape[1]):
                if j not in current:
                    f2 = glm(sorted(current + [j]))
                    cands.append((-1, j, f2, f2.rank - fit.rank, f2.deviance + k * f2.rank))
        if not cands:
            break
        if zero_df:
            chosen = zero_df[-1]
        else:
            aics = np.array([aic] + [c[4] for c in cands])
            o = int(np.argmin(aics))  # first minimum: "<none>" wins ties, then term order
            if o == 0:
                break
            chosen = cands[o - 1]
        pos, j, f2, _, new_aic = chosen
        if new_aic >= aic + 1e-7 and not zero_df:
            break
        if pos < 0:
            current = sorted(current + [j])
        else:
            current = [c for c in current if c != j]
        fit, aic = f2, new_aic
        step += 1
        row = {"step": step, "removed": names[j] if pos >= 0 else "", "aic": aic}
        if both:
            row["added"] = names[j] if pos < 0 else ""
        path.append(row)
    if not fit.converged:
        warns.append("glm.fit: algorithm did not converge")
    if fit.boundary_fitted:
        warns.append("glm.fit: fitted probabilities numerically 0 or 1 occurred (separation)")
    coef = pd.Series(fit.coef, index=["(Intercept)"] + [names[c] for c in current])
    return StepAicResult([names[c] for c in current], coef, float(aic), pd.DataFrame(path),
                         fit.converged, fit.boundary_fitted, warns)


# ================================================================ group comparisons
class TestResult(NamedTuple):
    pvalue: float
    method: str


_FISHER_RELERR = 1 + 1e-7  # R fisher.test: tables with prob <= p_obs * (1 + 1e-7) count


def chisq_test(table, correct: bool = True) -> tuple[float, float, int, np.ndarray]:
    """Pearson chi-square as ``chisq.test(table, correct=correct)``: Yates' correction
    ``min(0.5, |x - E|)`` on 2x2 only. Returns (statistic, pvalue, df, expected)."""
    x = np.asarray(table, dtype=float)
    n = x.sum()
    E = np.outer(x.sum(axis=1), x.sum(axis=0)) / n
    if correct and x.shape == (2, 2):
        yates = min(0.5, float(np.min(np.abs(x - E))))
    else:
        yates = 0.0
    stat = float(np.sum((np.abs(x - E) - yates) ** 2 / E))
    df = (x.shape[0] - 1) * (x.shape[1] - 1)
    return stat, float(sps.chi2.sf(stat, df)), df, E


def fisher_exact(table) -> float:
    """Two-sided Fisher exact p-value for any R x C table, as R ``fisher.test(table)``.

    Sums the probabilities of all tables with the observed margins whose probability is
    at most the observed one times (1 + 1e-7) (R's relative tolerance). Exact network
    enumeration: tables are built row by row; partial tables reaching the same remaining
    column margins with the same probability are merged, and subtrees whose every
    completion is (or none is) as extreme as the observed table are summed in closed form.
    Unlike R's FEXACT it needs no workspace setting: tables for which R's default
    ``workspace`` stops with "FEXACT error 7" get the exact p-value that R gives with a
    larger workspace.
    """
    t = np.asarray(table, dtype=np.int64)
    if t.ndim != 2 or (t < 0).any():
        raise DlrcError(f"contingency table: expected a 2-D table of non-negative counts, got {t.tolist()}")
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    if min(t.shape) < 2:
        return 1.0
    if t.shape[1] > t.shape[0]:
        t = t.T
    rows = np.sort(t.sum(axis=1))  # smallest rows first; the largest one is determined last
    cols = t.sum(axis=0)
    n = int(t.sum())
    lf = special.gammaln(np.arange(n + 2) + 1.0)
    const = float(np.sum(lf[rows]) + np.sum(lf[cols]) - lf[n])
    k_obs = -float(np.sum(lf[t]))
    thr = k_obs + math.log(_FISHER_RELERR)
    R = rows.size
    suffix_n = np.concatenate([np.cumsum(rows[::-1])[::-1], [0]])

    def even_max(total: int, caps: np.ndarray) -> float:
        # max of -sum log x_j! s.t. sum x = total, 0 <= x <= caps (even water-filling)
        caps = np.sort(caps)
        rem, m, val = total, caps.size, 0.0
        for i, c in enumerate(caps):
            share = rem // (m - i)
            if c <= share:
                val -= lf[c]
                rem -= c
            else:
                q, r = divmod(rem, m - i)
                val -= (m - i - r) * lf[q] + r * lf[q + 1]
                rem = 0
                break
        return val

    def greedy_min(total: int, caps: np.ndarray) -> float:
        # min of -sum log x_j! under the same constraints (fill the largest caps first)
        val, rem = 0.0, total
        for c in np.sort(caps)[::-1]:
            x = min(c, rem)
            val -= lf[x]
            rem -= x
            if rem == 0:
                break
        return val

    bound_cache: dict = {}

    def bounds(i: int, m: tuple) -> tuple[float, float, float]:
        key = (i, m)
        hit = bound_cache.get(key)
        if hit is not None:
            return hit
        marr = np.asarray(m)
        rr = rows[i:]
        up_r = sum(even_max(int(r), marr) for r in rr)
        up_c = sum(even_max(int(c), rr) for c in marr)
        lo_r = sum(greedy_min(int(r), marr) for r in rr)
        lo_c = sum(greedy_min(int(c), rr) for c in marr)
        total = float(lf[suffix_n[i]] - np.sum(lf[rr]) - np.sum(lf[marr]))  # log sum of exp(K)
        out = (min(up_r, up_c), max(lo_r, lo_c), total)
        bound_cache[key] = out
        return out

    comp_cache: dict = {}

    def compositions(total: int, caps: tuple) -> np.ndarray:
        # all vectors x with sum total, 0 <= x_j <= caps_j, as an (n, len(caps)) array
        key = (total, caps)
        hit = comp_cache.get(key)
        if hit is not None:
            return hit
        if len(caps) == 1:
            out = np.array([[total]], dtype=np.int64) if total <= caps[0] else np.zeros((0, 1), np.int64)
        else:
            rest = sum(caps[1:])
            parts = []
            for x0 in range(max(0, total - rest), min(caps[0], total) + 1):
                tail = compositions(total - x0, caps[1:])
                if tail.shape[0]:
                    parts.append(np.column_stack([np.full(tail.shape[0], x0, np.int64), tail]))
            out = np.concatenate(parts) if parts else np.zeros((0, len(caps)), np.int64)
        comp_cache[key] = out
        return out

    pvalue = 0.0
    C = cols.size
    # level state: remaining column margins (sorted, descending), past log-kernel, multiplicity
    M = np.sort(cols)[::-1][None, :].astype(np.int64)
    V = np.zeros(1)
    W = np.ones(1)
    for i in range(R - 1):
        # merge partial tables with the same remaining margins and the same past value
        keys = np.column_stack([M, np.round(V / 1e-9).astype(np.int64)])
        uk, first, inv = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        inv = inv.ravel()
        W = np.bincount(inv, weights=W)
        V = V[first]
        M = uk[:, :C]
        node_keys, node_start = np.unique(M, axis=0, return_index=True)
        bounds_idx = np.r_[node_start, M.shape[0]]
        new_m, new_v, new_w = [], [], []
        r = int(rows[i])
        for g in range(node_keys.shape[0]):
            sl = slice(bounds_idx[g], bounds_idx[g + 1])
            m = tuple(int(v) for v in node_keys[g])
            v, w = V[sl], W[sl]
            up, lo, tot = bounds(i, m)
            every = v + up <= thr
            if every.any():
                pvalue += float(np.sum(w[every] * np.exp(const + v[every] + tot)))
            keep = ~every & (v + lo <= thr)
            if not keep.any():
                continue
            v, w = v[keep], w[keep]
            X = compositions(r, m)
            kx = -lf[X].sum(axis=1)
            children = np.asarray(m, dtype=np.int64)[None, :] - X
            if i == R - 2:
                # the last row is determined by the remaining margins
                ktot = kx - lf[children].sum(axis=1)
                vals = v[None, :] + ktot[:, None]
                hit = vals <= thr
                if hit.any():
                    pvalue += float(np.sum((np.exp(const + vals) * w[None, :])[hit]))
                continue
            children = np.sort(children, axis=1)[:, ::-1]
            new_m.append(np.repeat(children, v.size, axis=0))
            new_v.append((kx[:, None] + v[None, :]).ravel())
            new_w.append(np.tile(w, X.shape[0]))
        if i == R - 2 or not new_m:
            break
        M = np.concatenate(new_m)
        V = np.concatenate(new_v)
        W = np.concatenate(new_w)
    return float(min(1.0, pvalue))


def compare_categorical(table) -> TestResult:
    """p-value of a groups x levels count table by R compareGroups' rule.

    Empty rows and columns are dropped; if any expected count is below 5, Fisher's exact
    test (R ``fisher.test``, any R x C); otherwise Pearson's chi-square (``chisq.test``,
    Yates' continuity correction on 2x2). Returns ``(pvalue, method)`` with method
    "Fisher's exact test" or "Chi-squared test".
    """
    t = np.asarray(table)
    if t.ndim != 2:
        raise DlrcError(f"contingency table: expected 2-D counts, got shape {t.shape}")
    t = np.asarray(t, dtype=float)
    if (t < 0).any() or not np.all(np.equal(np.round(t), t)):
        raise DlrcError(f"contingency table: counts must be non-negative integers, got {t.tolist()}")
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0].astype(np.int64)
    if min(t.shape) < 2:
        return TestResult(float("nan"), "not testable (fewer than two non-empty rows/columns)")
    _, p, _, E = chisq_test(t, correct=True)
    if (E < 5).any():
        return TestResult(fisher_exact(t), "Fisher's exact test")
    return TestResult(p, "Chi-squared test")


def compare_continuous(a, b, method: str = "auto", alpha: float = 0.05, var_equal: bool = True) -> TestResult:
    """Compare a continuous variable between two groups as R compareGroups does.

    method "normal": ``t.test(x ~ g, var.equal = var_equal)`` — compareGroups' two-group test,
    whose ``var.equal`` defaults to TRUE: Student's t-test (the "independent samples t-test" of
    SPSS' first row, as the paper names it); ``var_equal=False`` gives Welch's test;
    "nonnormal": ``kruskal.test(x ~ g)`` (equivalent to Mann-Whitney without continuity
    correction); "auto" (compareGroups ``method=NA``): normal when ``shapiro.test`` of the
    pooled values gives p > alpha, non-normal when it does not or cannot be computed
    (fewer than 3 or more than 5000 values, all identical). Missing values are dropped.
    """
    x0 = np.asarray(a, dtype=float)
    x1 = np.asarray(b, dtype=float)
    x0, x1 = x0[np.isfinite(x0)], x1[np.isfinite(x1)]
    if x0.size < 1 or x1.size < 1:
        return TestResult(float("nan"), "not testable (an empty group)")
    pooled = np.concatenate([x0, x1])
    if method == "auto":
        if pooled.size < 3 or pooled.size > 5000 or np.ptp(pooled) == 0:
            method = "nonnormal"
        else:
            method = "normal" if sps.shapiro(pooled).pvalue > alpha else "nonnormal"
    if method == "normal":
        if x0.size < 2 or x1.size < 2 or (np.ptp(x0) == 0 and np.ptp(x1) == 0):
            return TestResult(float("nan"), "t-test")
        res = sps.ttest_ind(x0, x1, equal_var=bool(var_equal))
        return TestResult(float(res.pvalue), "t-test" if var_equal else "Welch t-test")
    if method == "nonnormal":
        if np.ptp(pooled) == 0:
            return TestResult(float("nan"), "Kruskal-Wallis test")
        res = sps.kruskal(x0, x1)
        return TestResult(float(res.pvalue), "Kruskal-Wallis test")
    raise DlrcError(f"compare_continuous: method {method!r} is not auto, normal or nonnormal")
