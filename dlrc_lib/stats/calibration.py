"""Calibration and clinical usefulness: Hosmer-Lemeshow (ResourceSelection), ``rms::val.prob``, net benefit (dcurves)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import special
from scipy import stats as sps

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.stats._base import _DBL_EPS, _binary, _numeric, quantile7
from dlrc_lib.stats.classification import wilson_ci
from dlrc_lib.stats.glm import logistic_glm
from dlrc_lib.stats.roc import _placements


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
