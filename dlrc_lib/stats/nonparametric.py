"""Mann-Whitney U p-values for thousands of features at once (R ``wilcox.test(exact=FALSE, correct=TRUE)``)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.stats._base import _binary


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
