import numpy as np
import pandas as pd
import pytest

from dlrc_lib.core.config import SelectionParams
from dlrc_lib.scores.selection import lasso_cv, spearman_prune

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
