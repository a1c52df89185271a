"""Input checks and small helpers shared by the statistics modules (R type-7 quantiles, p formatting)."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from dlrc_lib.core.errors import DlrcError

_DBL_EPS = np.finfo(float).eps

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
