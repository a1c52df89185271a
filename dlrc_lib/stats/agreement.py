"""Agreement between two raters' categorical calls: Cohen's kappa (R ``psych::cohen.kappa``)."""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from dlrc_lib.core.errors import DlrcError


class KappaResult(NamedTuple):
    kappa: float
    se: float  # large-sample standard error (Fleiss, Cohen & Everitt 1969)
    lower: float
    upper: float
    agreement: float  # observed proportion of agreement p_o
    chance: float  # agreement expected by chance p_e (from the two raters' margins)
    n: int  # pairs rated by both
    level: float


def cohen_kappa(a, b, level: float = 0.95, categories: Sequence | None = None) -> KappaResult:
    """Unweighted Cohen's kappa of two raters' categorical calls of the same cases, as the
    unweighted row of ``psych::cohen.kappa(cbind(a, b))`` (estimate, variance and bounds).

    kappa = (p_o - p_e) / (1 - p_e), with p_o the observed share of agreement and p_e the
    agreement expected from the raters' margins. The variance is the large-sample one of
    Fleiss, Cohen & Everitt (1969)::

        var = [sum_i p_ii ((1 - p_e) - (p_i. + p_.i)(1 - p_o))^2
               + (1 - p_o)^2 sum_{i != j} p_ij (p_.i + p_j.)^2
               - (p_o p_e - 2 p_e + p_o)^2] / (n (1 - p_e)^4)

    and the bounds kappa -/+ z * sqrt(var), set to -1 / 1 where they pass them (as psych
    does, with a warning there). Pairs with a missing call are
    dropped. ``categories`` fixes the levels (default: those either rater used). When both
    raters put every case in one category (p_e = 1) kappa is undefined (NaN), as in R.
    """
    x = pd.Series(np.asarray(a, dtype=object).ravel())
    y = pd.Series(np.asarray(b, dtype=object).ravel())
    if len(x) != len(y):
        raise DlrcError(f"cohen_kappa: {len(x)} calls of rater 1 for {len(y)} of rater 2")
    ok = (x.notna() & y.notna()).to_numpy()
    x, y = x[ok], y[ok]
    n = int(len(x))
    if n == 0:
        raise DlrcError("cohen_kappa: no case was rated by both raters")
    levels = list(categories) if categories is not None else sorted(set(x) | set(y), key=str)
    unknown = (set(x) | set(y)) - set(levels)
    if unknown:
        raise DlrcError(f"cohen_kappa: call(s) {sorted(map(str, unknown))} not among the categories {levels}")
    pos = {v: i for i, v in enumerate(levels)}
    table = np.zeros((len(levels), len(levels)))
    np.add.at(table, (x.map(pos).to_numpy(int), y.map(pos).to_numpy(int)), 1.0)
    p = table / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    po = float(np.trace(p))
    pe = float(rows @ cols)
    z = float(sps.norm.ppf(1 - (1 - level) / 2))
    if pe >= 1.0:
        nan = float("nan")
        return KappaResult(nan, nan, nan, nan, po, pe, n, level)
    kappa = (po - pe) / (1 - pe)
    diag = np.diag(p)
    term1 = float(np.sum(diag * ((1 - pe) - (rows + cols) * (1 - po)) ** 2))
    off = ~np.eye(len(levels), dtype=bool)
    term2 = float((1 - po) ** 2 * np.sum((p * (cols[:, None] + rows[None, :]) ** 2)[off]))
    term3 = (po * pe - 2 * pe + po) ** 2
    var = (term1 + term2 - term3) / (n * (1 - pe) ** 4)
    se = math.sqrt(var) if var > 0 else 0.0
    lower, upper = max(-1.0, kappa - z * se), min(1.0, kappa + z * se)
    return KappaResult(float(kappa), se, float(lower), float(upper), po, pe, n, level)
