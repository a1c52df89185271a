"""The cross-validated LASSO equals R ``cv.glmnet`` along the whole path: cvm and cvsd at every
lambda (to 2e-8 of R converged at thresh 1e-20), lambda.min, lambda.1se and the coefficients, on
correlated, p > n and unbalanced data (expected values: tests/r/glmnet_cv.R, R 4.2 with
glmnet 4.1; the data: tests/lassodata.py). Without a lambda sequence of its own, cv.glmnet fits
every fold on the fold's own sequence and predicts it at the full fit's lambdas by
interpolation; fitting the folds on the full fit's lambdas moves cvm by ~1e-3."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dlrc_lib.stats.lasso import lambda_interp, lasso_cv

from lassodata import NAMES, dataset

REFERENCE = json.loads((Path(__file__).parent / "data" / "glmnet_cv.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_cv_path_equals_cv_glmnet(name):
    want = REFERENCE[name]
    X, y, foldid = dataset(name)
    got = lasso_cv(X, y, foldid=foldid, tol=1e-12)
    assert len(got.lambdas) == len(want["lambda"])
    np.testing.assert_allclose(got.lambdas, want["lambda"], rtol=1e-9)
    # R's reference (thresh 1e-20) moved by at most ~5e-6 from thresh 1e-14, mostly by 1e-8
    # to 1e-7; this emulation is within 1e-8 of it at every lambda (1e-10 typically)
    assert max(want["r_cvm_change"]) < 1e-5
    np.testing.assert_allclose(got.cvm, want["cvm"], atol=2e-8, rtol=0)
    np.testing.assert_allclose(got.cvsd, want["cvsd"], atol=2e-8, rtol=0)
    np.testing.assert_array_equal(got.nzero, want["nzero"])
    assert got.lambda_min == pytest.approx(want["lambda_min"], rel=1e-9)
    assert got.lambda_1se == pytest.approx(want["lambda_1se"], rel=1e-9)
    for rule, coef in (("1se", want["coef_1se"]), ("min", want["coef_min"])):
        fit = got if rule == "1se" else lasso_cv(X, y, foldid=foldid, tol=1e-12, rule="min")
        assert fit.intercept == pytest.approx(coef["(Intercept)"], abs=1e-7)
        np.testing.assert_allclose(fit.coef.to_numpy(), [coef[c] for c in X.columns], atol=1e-7, rtol=0)


def test_lambda_interp_is_glmnets():
    # glmnet:::lambda.interp(c(1, 0.5, 0.25), c(2, 1, 0.75, 0.5, 0.3, 0.1)) -> left 1 1 1 2 2 3,
    # right 1 1 2 2 3 3, frac 1 1 0.5 1 0.2 1 (1-based)
    left, right, frac = lambda_interp(np.array([1.0, 0.5, 0.25]), np.array([2, 1, 0.75, 0.5, 0.3, 0.1]))
    assert (left + 1).tolist() == [1, 1, 1, 2, 2, 3] and (right + 1).tolist() == [1, 1, 2, 2, 3, 3]
    np.testing.assert_allclose(frac, [1, 1, 0.5, 1, 0.2, 1])
