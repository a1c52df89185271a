"""Data sets on which the cross-validated LASSO is pinned to R ``cv.glmnet`` (tests/r/glmnet_cv.R
computed the expected values in tests/data/glmnet_cv.json; the tests do not need R).

Each set: X (n x p), y (0/1) and a stratified ``foldid`` (1-based, as R takes it).
``python tests/lassodata.py DIR`` writes them as CSV for the R script.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def _stratified_foldid(y: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    foldid = np.zeros(len(y), dtype=int)
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        foldid[idx] = np.resize(np.arange(1, folds + 1), len(idx))
    return foldid


def _latent(rng: np.random.Generator, n: int, p: int, k: int, noise: float) -> np.ndarray:
    F = rng.normal(size=(n, k))
    L = rng.normal(size=(k, p))
    # the product written out (no BLAS), so that every machine builds the same bits
    X = np.zeros((n, p))
    for j in range(k):
        X += np.outer(F[:, j], L[j])
    return X * 0.8 + rng.normal(size=(n, p)) * noise


def dataset(name: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``correlated`` (n 200, p 30, pairwise |r| up to ~0.9), ``wide`` (p 120 > n 70),
    ``unbalanced`` (n 300, ~12 % events)."""
    if name == "correlated":
        rng = np.random.default_rng(31)
        n, p = 200, 30
        X = _latent(rng, n, p, 6, 0.6)
        eta = 0.7 * X[:, 0] - 0.5 * X[:, 3] + 0.3 * X[:, 7]
        eta = eta / eta.std() * 1.1 - 0.4
    elif name == "wide":
        rng = np.random.default_rng(32)
        n, p = 70, 120
        X = _latent(rng, n, p, 10, 0.7)
        eta = 0.8 * X[:, 1] - 0.6 * X[:, 10] + 0.4 * X[:, 50]
        eta = eta / eta.std() * 1.3
    elif name == "unbalanced":
        rng = np.random.default_rng(33)
        n, p = 300, 20
        X = _latent(rng, n, p, 5, 0.8)
        eta = 0.8 * X[:, 2] - 0.5 * X[:, 4]
        eta = eta / eta.std() * 1.0 - 2.3
    else:
        raise ValueError(name)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int)
    foldid = _stratified_foldid(y, 10, rng)
    return pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])]), y, foldid


NAMES = ("correlated", "wide", "unbalanced")

if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        X, y, foldid = dataset(name)
        frame = X.assign(y=y, foldid=foldid)
        frame.to_csv(out / f"{name}.csv", index=False, float_format="%.17g")
        print(name, X.shape, int(y.sum()), np.bincount(foldid)[1:])
