"""ROC analysis as R pROC: AUC with DeLong CI, the paired DeLong test, the Youden cut-off."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, NamedTuple

import numpy as np
from scipy import stats as sps

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.stats._base import _binary, _midranks, _numeric


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
    se: float = float("nan")  # standard error of auc_a - auc_b (DeLong)

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
    return DelongResult(float(z), float(p), ta, tb, None, float(math.sqrt(var)))


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
