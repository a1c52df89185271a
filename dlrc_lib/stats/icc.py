"""Intraclass correlation as R ``psych::ICC`` (ICC(2,1) and ICC(3,1); REML or ANOVA mean squares)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats as sps

from dlrc_lib.core.errors import DlrcError


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
