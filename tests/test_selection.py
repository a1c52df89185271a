import numpy as np
import pandas as pd
import pytest

from dlrc_lib.core.config import SelectionParams
from dlrc_lib.scores.selection import spearman_prune
from dlrc_lib.stats.lasso import lasso_cv

from featuredata import make_features, make_study

from dlrc_lib.scores.selection import select_features  # noqa: E402


def _lasso_data():
    # The data set the R reference below was run on (written with pandas to CSV, read by R).
    rng = np.random.default_rng(7)
    n, p = 150, 12
    X = rng.normal(size=(n, p))
    eta = -0.7 + 0.9 * X[:, 0] - 0.6 * X[:, 1] + 0.4 * X[:, 2]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int)
    foldid = np.resize(np.arange(1, 11), n)
    rng.shuffle(foldid)
    return pd.DataFrame(X, columns=[f"x{j}" for j in range(p)]), y, foldid


def test_lasso_cv_matches_cv_glmnet():
    # R 4.2, glmnet 4.1-6:
    #   cv <- cv.glmnet(x, y, family="binomial", type.measure="deviance", foldid=foldid)
    #   length(cv$lambda) -> 62; cv$lambda[c(1,2,10,62)] -> 0.1972829185 0.1797568478 0.0853990659 0.0006767730
    #   cv$cvm[c(1,10,20,40)] -> 1.2570090033 1.0892509071 0.9917456486 1.0051417740
    #   cv$cvsd[c(1,10,20,40)] -> 0.0683338248 0.0550717132 0.0645010845 0.0823117903
    #   cv$lambda.min, cv$lambda.1se -> 0.0192747376 0.0588622635
    #   coef(cv, s="lambda.1se") -> (Intercept) -1.01783640, x0 0.32882578, x1 -0.75388261,
    #                               x2 0.09779903, others 0
    X, y, foldid = _lasso_data()
    r = lasso_cv(X, y, foldid=foldid)
    assert len(r.lambdas) == 62
    np.testing.assert_allclose(r.lambdas[[0, 1, 9, 61]], [0.1972829185, 0.1797568478, 0.0853990659, 0.0006767730],
                               rtol=1e-7)
    np.testing.assert_allclose(r.cvm[[0, 9, 19, 39]], [1.2570090033, 1.0892509071, 0.9917456486, 1.0051417740],
                               atol=2e-4)
    np.testing.assert_allclose(r.cvsd[[0, 9, 19, 39]], [0.0683338248, 0.0550717132, 0.0645010845, 0.0823117903],
                               atol=2e-4)
    assert r.lambda_min == pytest.approx(0.0192747376, rel=1e-8)
    assert r.lambda_1se == pytest.approx(0.0588622635, rel=1e-8)
    assert r.intercept == pytest.approx(-1.01783640, abs=1e-5)
    expect = np.zeros(12)
    expect[:3] = [0.32882578, -0.75388261, 0.09779903]
    np.testing.assert_allclose(r.coef.to_numpy(), expect, atol=1e-5)


def _correlated_lasso_data():
    # 40 features from 8 latent factors (pairwise |r| up to 0.89): the ill-conditioned case of
    # radiomics and deep features, where a loosely converged solver drifts along flat directions
    rng = np.random.default_rng(2024)
    n, p = 120, 40
    F = rng.normal(size=(n, 8))
    L = rng.normal(size=(8, p))
    X = F @ L * 0.8 + rng.normal(size=(n, p)) * 0.5
    eta = -0.5 + 0.6 * X[:, 0] - 0.5 * X[:, 5] + 0.3 * X[:, 11]
    eta = eta / eta.std() * 1.2
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int)
    foldid = np.resize(np.arange(1, 11), n)
    rng.shuffle(foldid)
    return pd.DataFrame(X, columns=[f"x{j}" for j in range(p)]), y, foldid


def test_lasso_cv_matches_cv_glmnet_on_correlated_features():
    # R 4.2, glmnet 4.1-6, converged tightly so that its answer is the exact optimum:
    #   cv <- cv.glmnet(x, y, family="binomial", type.measure="deviance", foldid=foldid,
    #                   thresh=1e-14, maxit=1e7)
    #   length(cv$lambda) -> 99; cv$lambda[c(1, 99)] -> 0.23463837016 2.57515321588e-05
    #   cv$cvm[c(1, 10)] -> 1.3616895298 1.19873560142
    #   cv$lambda.min, cv$lambda.1se -> 0.0529583428433 0.147359734804
    #   coef(cv, s="lambda.1se") -> (Intercept) -0.3663216203, x0 0.1255754446, others 0
    #   coef(cv, s="lambda.min") -> (Intercept) -0.3971182284, x0 0.2765565890,
    #                               x10 -0.0565537120, x11 0.0299839909, others 0
    # (with the default thresh=1e-7 glmnet's own lambda.min coefficients differ from these by
    # up to 2e-5, and the path has 100 lambdas)
    X, y, foldid = _correlated_lasso_data()
    r = lasso_cv(X, y, foldid=foldid)
    assert r.converged and len(r.lambdas) == 99
    np.testing.assert_allclose(r.lambdas[[0, 98]], [0.23463837016, 2.57515321588e-05], rtol=1e-9)
    np.testing.assert_allclose(r.cvm[[0, 9]], [1.3616895298, 1.19873560142], atol=2e-5)
    assert r.lambda_min == pytest.approx(0.0529583428433, rel=1e-9)
    assert r.lambda_1se == pytest.approx(0.147359734804, rel=1e-9)
    assert r.intercept == pytest.approx(-0.3663216203, abs=1e-8)
    assert r.coef[r.coef != 0].to_dict() == pytest.approx({"x0": 0.1255754446}, abs=1e-8)
    m = lasso_cv(X, y, foldid=foldid, rule="min")
    assert m.intercept == pytest.approx(-0.3971182284, abs=1e-8)
    assert m.coef[m.coef != 0].to_dict() == pytest.approx(
        {"x0": 0.2765565890, "x10": -0.0565537120, "x11": 0.0299839909}, abs=1e-8)


def test_a_path_with_given_lambdas_runs_every_lambda_as_in_glmnet():
    # glmnet ends a path with given lambdas only at saturation, never by the deviance rules of
    # its own sequence (cv.glmnet's folds, given no lambda, use their own sequences: see
    # tests/test_lasso_glmnet.py). R 4.2, glmnet 4.1-6 on these data (foldid as below):
    #   full <- glmnet(x, y, family="binomial", thresh=1e-14)
    #   sapply(1:10, function(f) length(glmnet(x[foldid != f, ], y[foldid != f],
    #          family="binomial", lambda=full$lambda, thresh=1e-14)$lambda)) -> 100 (all folds)
    #   cv.glmnet(x, y, family="binomial", type.measure="deviance", foldid=foldid, thresh=1e-14):
    #   lambda.min 0.05933023476, lambda.1se 0.1137900661, cvm[1] 1.4018550350
    from dlrc_lib.stats import lasso as S

    rng = np.random.default_rng(2)
    n, p = 80, 30
    X = rng.normal(size=(n, p))
    eta = 0.8 * X[:, 0] - 0.5 * X[:, 1]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int)
    foldid = np.resize(np.arange(1, 11), n)
    rng.shuffle(foldid)
    lambdas = S._lambda_path(X, y.astype(float), 100, None)
    assert len(S._fit_path(X, y.astype(float), lambdas, 1e-10, 20000, early_stop=True)[1]) == 100
    for f in range(1, 11):
        tr = foldid != f
        assert len(S._fit_path(X[tr], y[tr].astype(float), lambdas, 1e-10, 20000)[1]) == 100
    r = lasso_cv(pd.DataFrame(X), y, foldid=foldid)
    assert r.lambda_min == pytest.approx(0.05933023476, rel=1e-9)
    assert r.lambda_1se == pytest.approx(0.1137900661, rel=1e-9)
    assert r.cvm[0] == pytest.approx(1.4018550350, abs=1e-5)


def _kkt_violation(X, y, b0, beta, lam):
    """Largest violation of the L1 logistic optimality conditions on glmnet's scale."""
    from dlrc_lib.stats.lasso import _sigmoid

    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    bz = beta * X.std(axis=0)
    r = y - _sigmoid(b0 + X @ beta)
    g = Z.T @ r / len(y)
    act = bz != 0
    return max(np.max(np.abs(g[act] - lam * np.sign(bz[act])), initial=0.0),
               np.max(np.abs(g[~act]), initial=0.0) - lam, abs(r.mean()))


@pytest.mark.parametrize("duplicate", [False, True])
def test_lasso_path_is_optimal_at_every_lambda(duplicate, monkeypatch):
    # p > n with correlated features: the active-set Newton solver meets the KKT conditions to
    # rounding at every lambda. An exact duplicate column makes its Hessian singular; the
    # coordinate-descent solver then takes over (checked to be called) and still solves it.
    from dlrc_lib.stats import lasso as S

    X, y, _ = _correlated_lasso_data()
    X = np.hstack([X.to_numpy(), np.random.default_rng(5).normal(size=(120, 100))])
    if duplicate:
        X = np.hstack([X, X[:, [0]]])
    calls = []
    cd = S._irls_lasso
    monkeypatch.setattr(S, "_irls_lasso", lambda *a, **k: calls.append(1) or cd(*a, **k))
    lambdas = S._lambda_path(X, y.astype(float), 60, None)
    betas, b0s, ok = S._fit_path(X, y.astype(float), lambdas, 1e-10, 20000)
    assert ok
    worst = max(_kkt_violation(X, y, b0s[k], betas[k], lam) for k, lam in enumerate(lambdas))
    if duplicate:
        assert calls and worst < 1e-6
    else:
        assert not calls and worst < 1e-10


def test_lasso_folds_are_seeded_and_stratified():
    X, y, _ = _lasso_data()
    a = lasso_cv(X, y, folds=5, seed=11)
    b = lasso_cv(X, y, folds=5, seed=11)
    np.testing.assert_array_equal(a.foldid, b.foldid)
    np.testing.assert_array_equal(a.cvm, b.cvm)
    pos = pd.Series(y).groupby(a.foldid).sum()
    assert pos.max() - pos.min() <= 1


def test_spearman_prune_keeps_smaller_p():
    rng = np.random.default_rng(0)
    a = rng.normal(size=100)
    X = pd.DataFrame({"a": a, "a_copy": a + 0.05 * rng.normal(size=100), "b": rng.normal(size=100)})
    kept, dropped = spearman_prune(X, ["a_copy", "b", "a"], 0.8)  # a_copy has the smaller p
    assert kept == ["a_copy", "b"]
    assert dropped.iloc[0]["feature"] == "a" and dropped.iloc[0]["dropped_for"] == "a_copy"


@pytest.fixture(scope="module")
def signal():
    study = make_study(400, seed=5)
    X = make_features(study, n_noise=40, effect=1.0, scanner_effect=0.0, seed=6)
    tr = study["cohort"].to_numpy() == "train"
    return X[tr], study.loc[tr, "lnm"].to_numpy()


def test_selection_recovers_known_signal(signal):
    X, y = signal
    res = select_features(X, y, SelectionParams(), seed=1)
    assert res.ok, res.explanation
    # the three informative features pass Mann-Whitney; the near-copy is pruned
    mw = res.mann_whitney.set_index("feature")
    assert mw.loc[["CET1_sig0", "CET1_sig1", "T2FS_sig2"], "keep"].all()
    assert {"CET1_sig0", "CET1_sig0_copy"} & set(res.spearman_dropped["feature"])
    # the final model is made of informative features with the right signs
    assert set(res.selected) <= {"CET1_sig0", "CET1_sig0_copy", "CET1_sig1", "T2FS_sig2"}
    assert len(res.selected) >= 2
    coef = res.coef
    for f, sign in (("CET1_sig0", 1), ("CET1_sig0_copy", 1), ("CET1_sig1", -1), ("T2FS_sig2", 1)):
        if f in coef:
            assert np.sign(coef[f]) == sign
    f = res.funnel.set_index("step")["n_features"]
    assert list(f.index) == ["Usable (finite, non-constant)", "Mann-Whitney U", "Spearman pruning",
                             "LASSO", "Backward stepwise AIC"]
    assert (np.diff(f.to_numpy()) <= 0).all()
    # the score is the final model's linear predictor on training-standardised features
    lp = res.linear_predictor(X)
    Z = (X[res.selected] - X[res.selected].mean()) / X[res.selected].std(ddof=1)
    np.testing.assert_allclose(lp, res.intercept + Z.to_numpy() @ coef[res.selected].to_numpy())


def test_selection_is_deterministic(signal):
    X, y = signal
    a = select_features(X, y, SelectionParams(), seed=1)
    b = select_features(X, y, SelectionParams(), seed=1)
    pd.testing.assert_frame_equal(a.coefficients, b.coefficients)
    pd.testing.assert_frame_equal(a.funnel, b.funnel)


def test_empty_mann_whitney_step_explains(signal):
    X, y = signal
    noise = X[[c for c in X.columns if "noise" in c]]
    res = select_features(noise, y, SelectionParams(mw_p=1e-6), seed=1)
    assert not res.ok and res.empty_step == "mann_whitney"
    assert res.explanation.startswith("no feature passed Mann-Whitney p < 1e-06 in the training cohort (smallest p = ")
    assert res.funnel["n_features"].iloc[-1] == 0


def test_empty_lasso_step_explains():
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(120, 5)), columns=[f"f{i}" for i in range(5)])
    y = rng.integers(0, 2, size=120)
    res = select_features(X, y, SelectionParams(mw_p=1.0), seed=0)
    assert not res.ok and res.empty_step == "lasso"
    assert "LASSO" in res.explanation and "kept no feature" in res.explanation


def test_one_class_training_cohort_explains(signal):
    X, y = signal
    res = select_features(X, np.zeros_like(y), SelectionParams(), seed=0)
    assert not res.ok and "at least 2 of each" in res.explanation
