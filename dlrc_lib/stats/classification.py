"""Classification metrics at a cut-off with Wilson intervals (R ``prop.test(correct=FALSE)``)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.stats._base import _binary


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
