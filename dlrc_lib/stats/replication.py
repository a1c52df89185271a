"""Judging a replicate against the original study: how much a cohort of this size can tell.

A replicate estimate is compared with the **prediction interval** of the original (Patil, Peng &
Leek 2016, *Perspect Psychol Sci* 11:539): where a second study of this size would land, 95 % of
the time, if the original's estimate were the truth, ``theta_orig +- z * sqrt(se_orig^2 +
se_rep^2)``. For an AUC the interval is built on the logit scale (AUCs are bounded) and mapped
back; for a difference of proportions on its own scale. A non-significant replicate of a
significant finding counts against it only where the replicate had the **power** to detect the
original effect. Each function also answers the inverse question: roughly how many patients
would make the comparison decidable, assuming a standard error that shrinks as ``1/sqrt(n)`` at
the same prevalence.

The calibration statistics are those of Van Calster et al. 2016 (*J Clin Epidemiol* 74:167):
calibration-in-the-large (``glm(y ~ offset(lp), binomial)``'s intercept) and the calibration
slope (``glm(y ~ lp, binomial)``), each with its Wald interval.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special
from scipy import stats as sps

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.stats._base import _binary, _numeric
from dlrc_lib.stats.glm import logistic_glm

#: AUCs are moved this far inside (0, 1) before the logit
_AUC_EDGE = 1e-6


def z_of(level: float = 0.95) -> float:
    """The two-sided normal quantile of a ``level`` interval (1.959964 for 0.95)."""
    return float(sps.norm.ppf(1 - (1 - level) / 2))


def se_from_ci(estimate: float, lower: float, upper: float, level: float = 0.95) -> float:
    """Standard error behind a symmetric Wald interval ``estimate +- z se``.

    The larger half-width is used, so an interval clipped at 0 or 1 (as pROC clips DeLong's)
    still gives the SE from its unclipped side.
    """
    half = max(float(estimate) - float(lower), float(upper) - float(estimate))
    if not half >= 0:
        raise DlrcError(f"confidence interval {lower}–{upper} does not contain its estimate {estimate}")
    return half / z_of(level)


def hanley_mcneil_se(auc: float, cases: int, controls: int) -> float:
    """Standard error of an AUC by Hanley & McNeil (1982, *Radiology* 143:29), equation 2."""
    a = float(auc)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (cases - 1) * (q1 - a * a) + (controls - 1) * (q2 - a * a)) / (cases * controls)
    return math.sqrt(max(var, 0.0))


@dataclass(frozen=True)
class PredictionInterval:
    """Where a replicate's estimate would fall (``lower``-``upper``) if the original's were true."""

    centre: float
    lower: float
    upper: float
    se_original: float
    se_replicate: float
    level: float = 0.95
    scale: str = "identity"

    def contains(self, value: float) -> bool:
        return self.lower <= float(value) <= self.upper


def _logit_var(se: float, auc: float) -> float:
    a = min(max(float(auc), _AUC_EDGE), 1 - _AUC_EDGE)
    return (float(se) / (a * (1 - a))) ** 2


def auc_prediction_interval(auc_original: float, se_original: float, se_replicate: float,
                            auc_replicate: float | None = None, level: float = 0.95) -> PredictionInterval:
    """95 % prediction interval of a replicate AUC on the logit scale.

    Each SE is carried to the logit scale by the delta method at its own AUC (the replicate's at
    ``auc_replicate``, the original's when that is not given):
    ``expit(logit(A) +- z sqrt(se_o^2 / (A(1-A))^2 + se_r^2 / (a(1-a))^2))``.
    """
    centre = special.logit(min(max(float(auc_original), _AUC_EDGE), 1 - _AUC_EDGE))
    rep_at = auc_original if auc_replicate is None else auc_replicate
    half = z_of(level) * math.sqrt(_logit_var(se_original, auc_original) + _logit_var(se_replicate, rep_at))
    return PredictionInterval(float(auc_original), float(special.expit(centre - half)),
                              float(special.expit(centre + half)), float(se_original), float(se_replicate),
                              level, "logit")


def difference_prediction_interval(original: float, se_original: float, se_replicate: float,
                                   level: float = 0.95) -> PredictionInterval:
    """Prediction interval of a replicate difference (e.g. of two sensitivities, in points)."""
    half = z_of(level) * math.hypot(se_original, se_replicate)
    return PredictionInterval(float(original), float(original) - half, float(original) + half,
                              float(se_original), float(se_replicate), level)


def patients_for_interval(n: int, *, centre: float, var_original: float, var_replicate: float,
                          null: float, level: float = 0.95) -> int | None:
    """Roughly the replicate size whose prediction interval excludes ``null``.

    The replicate's variance is taken to shrink as ``1/n`` (same prevalence); ``None`` where the
    original's own uncertainty already reaches ``null`` (no replicate size would do).
    """
    room = ((centre - null) / z_of(level)) ** 2 - var_original
    if room <= 0:
        return None
    return max(int(math.ceil(n * var_replicate / room)), int(n) + 1)


def patients_for_auc_interval(n: int, pi: PredictionInterval, auc_replicate: float | None = None) -> int | None:
    """:func:`patients_for_interval` for :func:`auc_prediction_interval` (null: AUC 0.5)."""
    at = pi.centre if auc_replicate is None else auc_replicate
    centre = float(special.logit(min(max(pi.centre, _AUC_EDGE), 1 - _AUC_EDGE)))
    return patients_for_interval(n, centre=centre, var_original=_logit_var(pi.se_original, pi.centre),
                                 var_replicate=_logit_var(pi.se_replicate, at), null=0.0, level=pi.level)


def power_two_sided(effect: float, se: float, alpha: float = 0.05) -> float:
    """Power of a two-sided z test at level ``alpha`` to detect ``effect`` when its SE is ``se``:
    ``Phi(|d|/se - z) + Phi(-|d|/se - z)``."""
    if not se > 0:
        return 1.0 if effect else float(alpha)
    z = z_of(1 - alpha)
    shift = abs(float(effect)) / float(se)
    return float(sps.norm.cdf(shift - z) + sps.norm.cdf(-shift - z))


def patients_for_power(n: int, effect: float, se: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Roughly the sample size giving ``power`` against ``effect`` (SE shrinking as ``1/sqrt(n)``)."""
    if not effect:
        return None
    needed_se = abs(float(effect)) / (z_of(1 - alpha) + float(sps.norm.ppf(power)))
    return max(int(math.ceil(n * (float(se) / needed_se) ** 2)), int(n))


def proportion_difference_se(p1: float, n1: int, p2: float, n2: int) -> float:
    """SE of ``p1 - p2`` for two independent proportions, Agresti & Caffo (2000): one success and
    one failure added to each group, so that 0 % or 100 % still has a standard error.
    Conservative for two calls on the same patients."""
    if n1 <= 0 or n2 <= 0:
        return float("nan")
    q1, q2 = (p1 * n1 + 1) / (n1 + 2), (p2 * n2 + 1) / (n2 + 2)
    return math.sqrt(q1 * (1 - q1) / (n1 + 2) + q2 * (1 - q2) / (n2 + 2))


def paired_proportion_difference_se(a, b) -> float:
    """SE of ``mean(a) - mean(b)`` for two binary calls on the same patients, Agresti & Min (2005):
    0.5 added to each cell of the 2x2 table (so that no or one-sided disagreement still has a
    standard error), ``sqrt((p10 + p01 - (p10 - p01)^2) / (n + 2))``."""
    x = np.asarray(a, dtype=bool)
    y = np.asarray(b, dtype=bool)
    n = x.size
    if n == 0 or y.size != n:
        return float("nan")
    p10 = (float(np.sum(x & ~y)) + 0.5) / (n + 2)
    p01 = (float(np.sum(~x & y)) + 0.5) / (n + 2)
    return math.sqrt(max(p10 + p01 - (p10 - p01) ** 2, 0.0) / (n + 2))


@dataclass(frozen=True)
class Estimate:
    """A statistic with its Wald interval."""

    estimate: float
    se: float
    lower: float
    upper: float


def _wald(est: float, se: float, level: float) -> Estimate:
    z = z_of(level)
    return Estimate(float(est), float(se), float(est - z * se), float(est + z * se))


def _clean(y, prob) -> tuple[np.ndarray, np.ndarray]:
    yy = _binary(y)
    p = _numeric(prob, "prob", yy.size)
    if ((p <= 0) | (p >= 1)).any():
        p = np.clip(p, 1e-8, 1 - 1e-8)
    return yy, special.logit(p)


def calibration_in_the_large(y, prob, level: float = 0.95, maxit: int = 50) -> Estimate:
    """Intercept of ``glm(y ~ offset(qlogis(prob)), binomial)`` with its Wald interval
    (Newton's method on the one parameter; 0 means observed = predicted on average)."""
    yy, lp = _clean(y, prob)
    if yy.sum() in (0, yy.size):
        return Estimate(float("nan"), float("nan"), float("nan"), float("nan"))
    a = 0.0
    for _ in range(maxit):
        mu = special.expit(a + lp)
        info = float(np.sum(mu * (1 - mu)))
        step = float(np.sum(yy - mu)) / info
        a += step
        if abs(step) < 1e-12:
            break
    mu = special.expit(a + lp)
    return _wald(a, 1 / math.sqrt(float(np.sum(mu * (1 - mu)))), level)


def calibration_slope(y, prob, level: float = 0.95) -> Estimate:
    """Slope of ``glm(y ~ qlogis(prob), binomial)`` with its Wald interval (1 is ideal)."""
    yy, lp = _clean(y, prob)
    if yy.sum() in (0, yy.size) or np.unique(lp).size < 2:
        return Estimate(float("nan"), float("nan"), float("nan"), float("nan"))
    fit = logistic_glm(lp.reshape(-1, 1), yy)
    return _wald(float(fit.coef[1]), float(fit.se[1]), level)


def _net_benefit_matrix(y: np.ndarray, prob: np.ndarray | None, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Net benefit per bootstrap sample (rows of ``idx``) and threshold; ``prob=None`` is treat-all."""
    n = idx.shape[1]
    yb = y[idx]
    w = t / (1 - t)
    if prob is None:
        events = yb.sum(axis=1, keepdims=True) / n
        return events - (1 - events) * w
    pb = prob[idx]
    out = np.empty((idx.shape[0], t.size))
    for j, pt in enumerate(t):
        treat = pb >= pt
        tp = np.sum(treat & (yb == 1), axis=1) / n
        fp = np.sum(treat & (yb == 0), axis=1) / n
        out[:, j] = tp - fp * w[j]
    return out


def net_benefit_difference(y, prob, other, thresholds, *, B: int = 500, seed: int = 0,
                           level: float = 0.95) -> pd.DataFrame:
    """Net benefit of ``prob`` minus that of ``other`` at each threshold, with a percentile
    bootstrap interval over patients (the same resamples for both, so the difference is paired).

    ``other`` is a second model's probabilities, ``"all"`` (treat everyone) or ``"none"``
    (treat no one: net benefit 0). Columns: threshold, difference, lower, upper.
    """
    yy = _binary(y)
    p = _numeric(prob, "prob", yy.size)
    t = np.asarray(thresholds, dtype=float)
    if ((t <= 0) | (t >= 1)).any():
        raise DlrcError("net benefit: thresholds must lie strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    idx = np.vstack([np.arange(yy.size)[None, :], rng.integers(0, yy.size, size=(B, yy.size))])
    mine = _net_benefit_matrix(yy, p, idx, t)
    if isinstance(other, str):
        if other not in ("all", "none"):
            raise DlrcError(f"net benefit: unknown strategy {other!r} (a model's probabilities, 'all' or 'none')")
        theirs = _net_benefit_matrix(yy, None, idx, t) if other == "all" else np.zeros_like(mine)
    else:
        theirs = _net_benefit_matrix(yy, _numeric(other, "other", yy.size), idx, t)
    diff = mine - theirs
    lo, hi = np.quantile(diff[1:], [(1 - level) / 2, 1 - (1 - level) / 2], axis=0)
    return pd.DataFrame({"threshold": t, "difference": diff[0], "lower": lo, "upper": hi})
