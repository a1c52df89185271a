"""Logistic regression as R ``glm.fit`` and backward stepwise selection as ``MASS::stepAIC``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pandas as pd

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.processes import one_blas_thread
from dlrc_lib.stats._base import _DBL_EPS, _binary


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
    cov: np.ndarray | None = None  # unscaled covariance of coef (R ``vcov``); NaN rows/columns for aliased
    names: list[str] | None = None  # term names, "(Intercept)" first (from a DataFrame design)

    # --- results in the statsmodels manner (``fit.params``, ``fit.bse``, ``fit.summary_frame()``)
    def _terms(self) -> list[str]:
        return self.names or ["(Intercept)"] + [f"x{j}" for j in range(1, len(self.coef))]

    @property
    def params(self) -> pd.Series:
        """Coefficients, intercept first (R ``coef(fit)``)."""
        return pd.Series(np.asarray(self.coef, float), index=self._terms())

    @property
    def bse(self) -> pd.Series:
        """Standard errors (R ``summary(fit)$coefficients[, 2]``)."""
        return pd.Series(np.asarray(self.se, float), index=self._terms())

    @property
    def tvalues(self) -> pd.Series:
        """Wald z statistics."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.params / self.bse

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided Wald p-values (R ``summary(fit)$coefficients[, 4]``)."""
        return pd.Series(2 * _norm_sf(np.abs(self.tvalues.to_numpy())), index=self._terms())

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald confidence intervals of the coefficients (R ``confint.default(fit)``)."""
        t = wald_table(self.params, self.bse, level=1 - alpha)
        return pd.DataFrame({"lower": t["coef_lower"].to_numpy(), "upper": t["coef_upper"].to_numpy()},
                            index=self._terms())

    def summary_frame(self, level: float = 0.95) -> pd.DataFrame:
        """One row per term: coef, se, z, p, Wald CI, odds ratio and its CI (:func:`wald_table`)."""
        return wald_table(self.params, self.bse, level=level)


def _norm_sf(x: np.ndarray) -> np.ndarray:
    from scipy.stats import norm

    return norm.sf(x)


def wald_table(coef: pd.Series, se, level: float = 0.95) -> pd.DataFrame:
    """Coefficients with Wald z, p and CIs and the odds ratios with theirs, one row per term:
    term, coef, se, z, p, coef_lower, coef_upper, OR, OR_lower, OR_upper (R ``summary(glm)``,
    ``confint.default``, ``exp``). A separating model's odds ratios are inf, not an error."""
    from scipy.stats import norm

    beta = np.asarray(coef, dtype=float)
    se = np.asarray(se, dtype=float)
    q = norm.ppf(0.5 + level / 2)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z = beta / se
        lo, hi = beta - q * se, beta + q * se
        return pd.DataFrame({
            "term": list(coef.index), "coef": beta, "se": se, "z": z, "p": 2 * norm.sf(np.abs(z)),
            "coef_lower": lo, "coef_upper": hi, "OR": np.exp(beta), "OR_lower": np.exp(lo), "OR_upper": np.exp(hi),
        })


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


def logistic_glm(X, y, *, maxit: int = 25, epsilon: float = 1e-8) -> GlmFit:
    """Logistic regression as R ``glm(y ~ X, family=binomial)``.

    Same IRLS as ``glm.fit``: start mu = (y + 0.5)/2, deviance convergence
    |dev - dev_old| / (|dev| + 0.1) < epsilon, at most 25 iterations, R's clamped logit
    link. Columns linearly dependent on earlier ones are aliased (coefficient NaN), as R.
    The result reads like statsmodels' (``params``, ``bse``, ``pvalues``, ``conf_int()``,
    ``summary_frame()``), with the columns' names when ``X`` is a DataFrame.
    Under (quasi-)complete separation R stops with huge coefficients and fitted
    probabilities of 0 or 1; so does this (``boundary_fitted`` is True), and the
    deviance and AIC then agree with R's to the precision R itself achieves.
    """
    with one_blas_thread():  # small least-squares problems: fastest on one thread
        fit = _logistic_glm(X, y, maxit=maxit, epsilon=epsilon)
    if isinstance(X, pd.DataFrame):
        fit.names = ["(Intercept)"] + [str(c) for c in X.columns]
    return fit


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
    cov = np.full((D.shape[1], D.shape[1]), np.nan)
    if R is not None:
        try:
            Rinv = np.linalg.inv(R)
            se[keep] = np.sqrt(np.sum(Rinv ** 2, axis=1))
            cov[np.ix_(keep, keep)] = Rinv @ Rinv.T  # R: chol2inv(qr.R)
        except np.linalg.LinAlgError:
            pass
    rank = int(keep.sum())
    dev = _binom_dev(yy, mu)
    eps10 = 10 * _DBL_EPS
    boundary = bool(np.any(mu > 1 - eps10) or np.any(mu < eps10))
    return GlmFit(coef, se, dev, dev + 2 * rank, rank, conv, it, mu, ~keep, boundary, cov)


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
    with one_blas_thread():  # small least-squares problems: fastest on one thread
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
