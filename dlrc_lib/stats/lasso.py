"""The cross-validated LASSO of the paper's radiomics and deep-learning selection, as R
``cv.glmnet(x, y, family = "binomial", type.measure = "deviance")`` (glmnet 4.1).

:func:`lasso_cv` emulates it along the whole path: the lambda sequence (log-linear from the
smallest lambda that zeroes every coefficient to ``lambda.min.ratio`` times it, 0.01 when
n < p, else 1e-4), glmnet's early stops, each fold fitted on its *own* lambda sequence and
predicted at the full fit's lambdas by linear interpolation (glmnet's ``lambda.interp``, what
``predict(fit, s = lambda)`` does), the fold-size weighted mean deviance (``cvm``) and its
standard error (``cvsd``), ``lambda.min`` and ``lambda.1se``. Each lambda's fit is solved to the
optimality conditions' rounding level (an active-set Newton method), so the coefficients and
``cvm`` are glmnet's at a tight convergence threshold: tests/test_lasso_glmnet.py pins cvm and
cvsd at every lambda to 2e-8 of R's (thresh 1e-20) on correlated, p > n and unbalanced data.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from dlrc_lib.core.memo import code_fingerprint, digest

__all__ = ["LassoCVResult", "lasso_cv", "lambda_interp", "PMIN"]


@dataclass
class LassoCVResult:
    """Cross-validated LASSO path (``cv.glmnet`` fields)."""

    lambdas: np.ndarray  # decreasing
    cvm: np.ndarray  # mean CV binomial deviance per lambda
    cvsd: np.ndarray  # its standard error
    nzero: np.ndarray  # non-zero coefficients per lambda (full-data fit)
    lambda_min: float
    lambda_1se: float
    rule: str
    coef: pd.Series  # coefficients at the chosen lambda (standardised-feature scale)
    intercept: float
    foldid: np.ndarray
    converged: bool = True

    @property
    def chosen_lambda(self) -> float:
        return self.lambda_1se if self.rule == "1se" else self.lambda_min

    def path_frame(self) -> pd.DataFrame:
        return pd.DataFrame({
            "lambda": self.lambdas, "log_lambda": np.log(self.lambdas), "cvm": self.cvm,
            "cvlo": self.cvm - self.cvsd, "cvup": self.cvm + self.cvsd, "nzero": self.nzero,
        })


def _lambda_path(X: np.ndarray, y: np.ndarray, nlambda: int, ratio: Optional[float]) -> np.ndarray:
    n, p = X.shape
    sd = X.std(axis=0)
    Z = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1)
    lmax = np.max(np.abs(Z.T @ (y - y.mean()))) / n
    if ratio is None:
        ratio = 0.01 if n < p else 1e-4
    return np.exp(np.linspace(np.log(lmax), np.log(lmax * ratio), nlambda))


def _penalised_objective(Z, y, b0, beta, lam):
    eta = b0 + Z @ beta
    loglik = np.sum(y * eta - np.logaddexp(0.0, eta))
    return -loglik / len(y) + lam * np.abs(beta).sum()


# Coordinate-descent tolerance of each weighted-lasso subproblem (sklearn: duality gap relative to
# ||y||^2). Tighter values stall on correlated features (thousands of sweeps per call) without
# moving the solution: coefficients still agree with cv.glmnet to 1e-5 (tests/test_selection.py).
CD_TOL = 1e-6


PMIN = 1e-5  # glmnet's pmin: probabilities are clipped to [PMIN, 1 - PMIN]


def _sigmoid(eta: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-eta) = inf for eta < -709 gives the correct limit 0
        return 1.0 / (1.0 + np.exp(-eta))


def _newton_step(ZA: np.ndarray, p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The Newton direction of the smooth (fixed-sign) objective at probabilities ``p``."""
    n = len(p)
    w = np.maximum(p * (1.0 - p), 1e-12)
    X1 = np.column_stack([np.ones(n), ZA])
    H = (X1.T * w) @ X1 / n
    try:
        return -np.linalg.solve(H, g)
    except np.linalg.LinAlgError:
        # exactly collinear active features (e.g. a duplicated column): the minimum-norm
        # Newton step, a descent direction whenever one exists
        return -np.linalg.lstsq(H, g, rcond=None)[0]


def _backtrack(ZA, y, lam, b0, bA, sA, d, eta, slope, tmax, quadratic):
    """Armijo backtracking along ``d`` from step ``tmax``: (step, new active coefficients), or
    (None, None) when no step of at least 1e-12 decreases the objective. ``quadratic``: take
    the first step as it is."""
    n = len(y)
    f0 = np.sum(np.logaddexp(0.0, eta) - y * eta) / n + lam * (sA @ bA)
    t = tmax
    while True:
        nb = bA + t * d[1:]
        ne = b0 + t * d[0] + ZA @ nb
        f1 = np.sum(np.logaddexp(0.0, ne) - y * ne) / n + lam * (sA @ nb)
        if quadratic or f1 <= f0 + 1e-4 * t * slope:
            return t, nb
        t *= 0.5
        if t < 1e-12:
            return None, None


def _newton_lasso(Z: np.ndarray, y: np.ndarray, b0: float, beta: np.ndarray, lam: float,
                  gtol: float = 1e-11) -> tuple[float, np.ndarray, bool]:
    """One lambda of the L1 logistic fit by an active-set Newton method (warm start ``b0``,
    ``beta``); returns (b0, beta, solved).

    With the signs of the non-zero coefficients fixed, the penalised objective
    ``-loglik/n + lam * sum(s_j beta_j)`` is smooth, so Newton's method with a backtracking
    line search solves it to machine precision in a few steps. A step is cut where a
    coefficient would change sign (that coefficient leaves the active set). At the solution
    the KKT conditions are checked on every zero coefficient; violators enter with the sign
    of their score and the solve continues. The result is therefore exact (score within
    ``gtol`` of ``lam * sign`` on the active set, at most ``lam`` elsewhere), which is why it
    agrees with ``glmnet`` to glmnet's own accuracy. ``solved`` is False when the method
    cannot proceed (no descent direction, a lone entrant pushed against its sign);
    the caller then uses the coordinate-descent solver, :func:`_irls_lasso`. Exactly collinear
    active features (a duplicated column) take the minimum-norm Newton step.
    """
    n, q = Z.shape
    beta = beta.copy()
    s = np.sign(beta)
    score = Z.T @ (y - _sigmoid(b0 + Z @ beta)) / n
    enter = (s == 0) & (np.abs(score) > lam)
    s[enter] = np.sign(score[enter])
    A = np.flatnonzero(s)
    single = False  # after a joint entry went wrong: enter the worst violator alone
    alone = False  # the last entry was a single violator
    for _ in range(50 + 10 * q):
        ZA = Z[:, A]
        eta = b0 + ZA @ beta[A]
        p = _sigmoid(eta)
        r = y - p
        g = np.concatenate([[-r.sum() / n], -(ZA.T @ r) / n + lam * s[A]])
        if np.max(np.abs(g)) <= gtol:
            score = Z.T @ r / n
            excess = np.where(s == 0, np.abs(score) - lam * (1.0 + 1e-9), -np.inf)
            if not np.any(excess > 0):
                return float(b0), beta, True
            enter = [int(np.argmax(excess))] if single else np.flatnonzero(excess > 0)
            s[enter] = np.sign(score[enter])
            A = np.flatnonzero(s)
            alone = single
            continue
        d = _newton_step(ZA, p, g)
        slope = g @ d
        if not (np.all(np.isfinite(d)) and slope < 0):
            return float(b0), beta, False
        dA, bA, sA = d[1:], beta[A], s[A]
        wrong = (bA == 0) & (dA * sA < 0)  # an entering coefficient pushed against its sign
        if wrong.any():
            if alone:
                # at a solution of the smaller problem a lone entrant always moves with its
                # sign; that it does not means the Hessian is numerically singular
                return float(b0), beta, False
            s[A[wrong]] = 0
            A = np.flatnonzero(s)
            single = True
            continue
        cross = (bA != 0) & (dA * sA < 0)
        tmax, hit = 1.0, -1
        if cross.any():
            ratio = -bA[cross] / dA[cross]
            k = int(np.argmin(ratio))
            if ratio[k] < 1.0:
                tmax, hit = float(ratio[k]), int(A[np.flatnonzero(cross)[k]])
        # near the solution the full Newton step is taken as it is: the decrease it promises
        # is then below the rounding of the objective, which a line search cannot resolve
        quadratic = hit < 0 and np.max(np.abs(g)) < 1e-7
        t, nb = _backtrack(ZA, y, lam, b0, bA, sA, d, eta, slope, tmax, quadratic)
        if t is None:
            return float(b0), beta, False  # no descent along the Newton direction
        b0 = b0 + t * d[0]
        beta[A] = nb
        if t == tmax and hit >= 0:
            beta[hit] = 0.0
            s[hit] = 0
            A = np.flatnonzero(s)
    return float(b0), beta, False


def _irls_lasso(Z: np.ndarray, y: np.ndarray, b0: float, beta: np.ndarray, lam: float, tol: float,
                max_iter: int) -> tuple[float, np.ndarray, bool]:
    """One lambda of the L1 logistic fit on the columns ``Z`` (warm start ``b0``, ``beta``):
    proximal Newton, i.e. IRLS whose weighted-lasso subproblems are solved by coordinate
    descent (:func:`sklearn.linear_model.enet_path`), with step halving if the penalised
    objective would rise. Returns (b0, beta, converged)."""
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import enet_path

    if Z.shape[1] == 0:  # no feature can enter: the intercept-only model
        ybar = float(np.clip(y.mean(), 1e-12, 1 - 1e-12))
        return float(np.log(ybar / (1 - ybar))), beta, True
    obj = _penalised_objective(Z, y, b0, beta, lam)
    for _ in range(100):
        eta = b0 + Z @ beta
        prob = np.clip(_sigmoid(eta), 1e-5, 1 - 1e-5)
        w = prob * (1 - prob)
        z = eta + (y - prob) / w
        sw = w.sum()
        zbar = (w @ z) / sw
        xbar = (w @ Z) / sw
        rw = np.sqrt(w)
        Xw = np.asfortranarray(rw[:, None] * (Z - xbar))
        yw = rw * (z - zbar)
        # the inner coordinate descent may stop short of CD_TOL on a Newton step; the outer
        # loop decides convergence (reported as LassoCVResult.converged), so sklearn's
        # per-call warning is noise in the report
        with sklearn.config_context(skip_parameter_validation=True), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            _, coefs, _ = enet_path(Xw, yw, l1_ratio=1.0, alphas=[lam], precompute=Xw.T @ Xw, Xy=Xw.T @ yw,
                                    coef_init=beta.copy(), check_input=False, tol=CD_TOL,
                                    max_iter=max_iter)
        new_beta = coefs[:, 0]
        new_b0 = zbar - xbar @ new_beta
        step = 1.0
        while True:  # step halving keeps the penalised objective monotone
            cb = beta + step * (new_beta - beta)
            c0 = b0 + step * (new_b0 - b0)
            new_obj = _penalised_objective(Z, y, c0, cb, lam)
            if new_obj <= obj + 1e-14:
                break
            step /= 2
            if step < 1e-4:
                # no descent along the Newton direction: the clipped-weight quadratic model has
                # nothing left to give (a (quasi-)separated fit); keep the current solution
                return float(b0), beta, True
        change = max(np.max(np.abs(cb - beta), initial=0.0), abs(c0 - b0))
        beta, b0 = cb, c0
        done = abs(obj - new_obj) <= tol * (abs(new_obj) + tol) and change < 1e-6
        obj = new_obj
        if done:
            return float(b0), beta, True
    return float(b0), beta, False


def _fit_path(X: np.ndarray, y: np.ndarray, lambdas: np.ndarray, tol: float, max_iter: int,
              early_stop: bool = False):
    """L1 logistic fits along ``lambdas`` with glmnet's algorithm.

    Objective (glmnet, binomial): ``-loglik/n + lambda * |beta|_1`` with the features
    standardised by their 1/n SD inside the fit and the coefficients returned on the scale
    of ``X``; the intercept is unpenalised. Each lambda is warm-started from the previous one
    and solved exactly by an active-set Newton method (:func:`_newton_lasso`); where that cannot
    proceed, by proximal Newton (iteratively reweighted least squares whose weighted-lasso
    subproblems are solved by coordinate descent, :func:`sklearn.linear_model.enet_path`, with
    step halving if the penalised objective would rise; :func:`_irls_lasso`).
    The path ends early, as glmnet's ``lognet`` does, once the fitted probabilities are all
    saturated (the mean of ``p(1-p)``, with ``p`` clipped to [1e-5, 1-1e-5], at most
    ``(1+1e-5) 1e-5 (1-1e-5)``: complete separation), and with ``early_stop`` also by the rules
    glmnet applies only when it computes its own lambda sequence (from the 5th lambda on, once
    the fraction of deviance explained grows by less than 1e-5 or exceeds 0.999): in
    ``cv.glmnet`` the full-data fit and, when it is given no lambda, every fold's fit. The path
    then has fewer lambdas.
    Returns (betas (nlambda x p), intercepts, converged).
    """
    n, p = X.shape
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    live = sd > 0
    Z = (X[:, live] - mu[live]) / sd[live]
    q = Z.shape[1]
    betas = np.zeros((len(lambdas), p))
    b0s = np.zeros(len(lambdas))
    ybar = float(np.clip(y.mean(), 1e-12, 1 - 1e-12))
    b0, beta = float(np.log(ybar / (1 - ybar))), np.zeros(q)
    converged = True
    null_dev = -2.0 * np.sum(y * np.log(ybar) + (1 - y) * np.log(1 - ybar))
    prev_ratio = 0.0
    prev_lam = float(lambdas[0]) if len(lambdas) else 0.0
    grad = Z.T @ (y - _sigmoid(b0 + Z @ beta)) / n  # score at the current solution
    for k, lam in enumerate(lambdas):
        # sequential strong rule (Tibshirani et al. 2012, as glmnet): only features whose score
        # at the previous solution reaches 2*lam - prev_lam (or already in the model) enter the
        # fit; the KKT conditions are then checked on all the others and any violator is added
        # and the fit repeated, so the solution is the full problem's.
        strong = (np.abs(grad) >= 2.0 * lam - prev_lam) | (beta != 0)
        while True:
            S = np.flatnonzero(strong)
            b0_s, beta_s, ok = _newton_lasso(Z[:, S], y, b0, beta[S], lam)
            if not ok:
                b0_s, beta_s, ok = _irls_lasso(Z[:, S], y, b0, beta[S], lam, tol, max_iter)
            b0 = b0_s
            converged = converged and ok
            beta = np.zeros(q)
            beta[S] = beta_s
            eta = b0 + Z @ beta
            prob = _sigmoid(eta)
            grad = Z.T @ (y - prob) / n
            violators = ~strong & (np.abs(grad) > lam * (1.0 + 1e-9))
            if not violators.any():
                break
            strong |= violators
        prev_lam = float(lam)
        betas[k, live] = beta / sd[live]
        b0s[k] = b0 - np.sum(beta * mu[live] / sd[live])
        pc = np.clip(prob, PMIN, 1 - PMIN)  # the solution's eta and probabilities, from the KKT check
        if np.mean(pc * (1 - pc)) <= (1 + PMIN) * PMIN * (1 - PMIN):
            return betas[: k + 1], b0s[: k + 1], converged
        if early_stop and null_dev > 0:
            ratio = 1.0 - 2.0 * np.sum(np.logaddexp(0.0, eta) - y * eta) / null_dev
            if k >= 4 and (ratio - prev_ratio < 1e-5 or ratio > 0.999):
                return betas[: k + 1], b0s[: k + 1], converged
            prev_ratio = ratio
    return betas, b0s, converged


def lambda_interp(lam: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """glmnet's ``lambda.interp``: for each ``s`` the neighbouring grid points of the decreasing
    path ``lam`` (0-based ``left``, ``right``) and the weight ``frac`` of ``left``; the
    coefficients at ``s`` are ``frac * beta[left] + (1 - frac) * beta[right]`` (linear in lambda),
    with ``s`` outside the path clamped to its ends."""
    s = np.asarray(s, dtype=float)
    if len(lam) == 1:
        zero = np.zeros(len(s), dtype=int)
        return zero, zero, np.ones(len(s))
    span = lam[0] - lam[-1]
    sfrac = np.clip((lam[0] - s) / span, 0.0, 1.0)
    grid = (lam[0] - lam) / span  # 0 ... 1, increasing
    coord = np.interp(sfrac, grid, np.arange(len(lam), dtype=float))
    left, right = np.floor(coord).astype(int), np.ceil(coord).astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = (sfrac - grid[right]) / (grid[left] - grid[right])
    frac[(left == right) | (np.abs(grid[left] - grid[right]) < np.finfo(float).eps)] = 1.0
    return left, right, frac


def _binomial_deviance(y: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Per-observation deviance, probabilities clipped to [1e-5, 1-1e-5] as glmnet does."""
    p = np.clip(_sigmoid(eta), PMIN, 1 - PMIN)
    return -2.0 * (y[:, None] * np.log(p) + (1 - y[:, None]) * np.log(1 - p))


def lasso_cv(X: pd.DataFrame, y: Sequence[int], *, folds: int = 10, rule: str = "1se",
             seed: int = 0, foldid: Optional[Sequence[int]] = None, nlambda: int = 100,
             lambda_min_ratio: Optional[float] = None, tol: float = 1e-10,
             max_iter: int = 20000, memo=None) -> LassoCVResult:
    """Cross-validated L1 logistic regression, emulating R ``cv.glmnet``.

    ``cv.glmnet(as.matrix(X), y, family="binomial", type.measure="deviance",
    foldid=foldid, nlambda=100)``: the lambda path runs log-linearly from the smallest
    lambda that zeroes every coefficient down to ``lambda_min_ratio`` times it (0.01 when
    n < p, else 1e-4); each fold is fitted on its own such path and predicted at the full
    path's lambdas by interpolation, as ``cv.glmnet`` does without a given lambda; the CV error is the
    per-fold mean deviance averaged with fold-size weights, its SE
    ``sqrt(weighted var / (folds - 1))``; ``lambda.min`` minimises it and ``lambda.1se``
    is the largest lambda within one SE of that minimum. Folds: stratified by outcome
    and seeded (``foldid`` overrides, 1-based as in R).

    ``memo``: an optional :class:`dlrc_lib.core.memo.Memo`. The cross-validated path does not
    depend on ``rule``, so it is cached by everything else (the data's bytes, the folds, the
    path settings and this module's code): the 1se and min rules on the same data (e.g. two
    variants of a sweep) fit it once.
    """
    Xv = X.to_numpy(dtype=float)
    yv = np.asarray(y, dtype=float)
    key = None
    if memo is not None and memo.root is not None:
        code = code_fingerprint([__name__])  # None: this module changed on disk, do not cache
        if code is not None:
            key = digest(Xv, yv, folds, seed, None if foldid is None else np.asarray(foldid, dtype=int),
                         nlambda, lambda_min_ratio, tol, max_iter, code)
    compute = lambda: _cv_path(Xv, yv, folds=folds, seed=seed, foldid=foldid, nlambda=nlambda,  # noqa: E731
                               lambda_min_ratio=lambda_min_ratio, tol=tol, max_iter=max_iter)
    path = memo.get_or_compute(key, compute) if memo is not None else compute()
    lambdas, cvm, betas, b0 = path["lambdas"], path["cvm"], path["betas"], path["b0"]
    idmin = cvm <= cvm.min()
    lambda_min = float(np.max(lambdas[idmin]))
    imin = int(np.flatnonzero(lambdas == lambda_min)[0])
    semin = cvm[imin] + path["cvsd"][imin]
    lambda_1se = float(np.max(lambdas[cvm <= semin]))
    chosen = lambda_1se if rule == "1se" else lambda_min
    k = int(np.flatnonzero(lambdas == chosen)[0])
    return LassoCVResult(
        lambdas=lambdas, cvm=cvm, cvsd=path["cvsd"], nzero=(betas != 0).sum(axis=1),
        lambda_min=lambda_min, lambda_1se=lambda_1se, rule=rule,
        coef=pd.Series(betas[k], index=list(X.columns)), intercept=float(b0[k]),
        foldid=path["foldid"], converged=bool(path["converged"]),
    )


def _cv_path(Xv: np.ndarray, yv: np.ndarray, *, folds: int, seed: int, foldid: Optional[Sequence[int]],
             nlambda: int, lambda_min_ratio: Optional[float], tol: float, max_iter: int) -> dict[str, Any]:
    """The rule-independent part of :func:`lasso_cv`: the full-data path and the CV error."""
    from sklearn.model_selection import StratifiedKFold

    n = len(yv)
    lambdas = _lambda_path(Xv, yv, nlambda, lambda_min_ratio)
    if foldid is None:
        n_min = int(min(yv.sum(), n - yv.sum()))
        k = max(2, min(folds, n_min))
        foldid = np.zeros(n, dtype=int)
        skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        for f, (_, test) in enumerate(skf.split(Xv, yv)):
            foldid[test] = f + 1
    foldid = np.asarray(foldid, dtype=int)
    betas, b0, conv = _fit_path(Xv, yv, lambdas, tol, max_iter, early_stop=True)
    lambdas = lambdas[: len(b0)]
    ids = np.unique(foldid)
    cvraw = np.zeros((len(ids), len(lambdas)))
    N = np.zeros(len(ids))
    for i, f in enumerate(ids):
        test = foldid == f
        # as cv.glmnet does when it is given no lambda: each fold fits its own lambda sequence
        # (its own lambda_max and lambda.min.ratio, with glmnet's early stops), and is predicted
        # at the full fit's lambdas by predict(fit, s = lambda), i.e. its coefficients linearly
        # interpolated between its own grid points (glmnet's lambda.interp): a lambda above the
        # fold's lambda_max gives its all-zero fit, one below where its path stopped its last fit
        Xf, yf = Xv[~test], yv[~test]
        own = _lambda_path(Xf, yf, nlambda, lambda_min_ratio)
        bf, b0f, c = _fit_path(Xf, yf, own, tol, max_iter, early_stop=True)
        conv = conv and c
        left, right, frac = lambda_interp(own[: len(b0f)], lambdas)
        bi = bf[left] * frac[:, None] + bf[right] * (1 - frac[:, None])
        b0i = b0f[left] * frac + b0f[right] * (1 - frac)
        eta = Xv[test] @ bi.T + b0i
        cvraw[i] = _binomial_deviance(yv[test], eta).mean(axis=0)
        N[i] = test.sum()
    w = N / N.sum()
    cvm = w @ cvraw
    cvsd = np.sqrt((w @ (cvraw - cvm) ** 2) / (len(ids) - 1))
    return {"lambdas": lambdas, "cvm": cvm, "cvsd": cvsd, "betas": betas, "b0": b0, "foldid": foldid,
            "converged": bool(conv)}
