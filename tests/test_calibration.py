"""Calibration table (HL vs the statistics core), Fig. 5 and the rms-style bootstrap."""

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from dlrc_lib.evaluation.calibration import (
    CalibrationDisplay, _cal_error, _error_summary, calibration_table, grouped_calibration, lowess_curve, model_columns,
    optimism_calibration, plot_optimism_calibration, refit_logistic, resolve_terms,
)
from dlrc_lib.core.errors import DlrcError
from tests.eval_data import make_predictions

def _r_data():
    """The data of the R calls below (same integer recipes in R)."""
    i = np.arange(1, 61)
    x1 = ((i * 7919) % 101) / 101
    x2 = ((i * 31) % 17) / 17
    cc = (i % 5 == 0).astype(int)
    u = ((i * 13) % 23) / 23
    y = (u < expit(-1.5 + 2.5 * x1 + 1.2 * cc + 0.8 * x2)).astype(int)
    return np.column_stack([cc, x1, x2]), y


def test_logistic_lowess_and_calibrate_grid_match_r():
    # R: i <- 1:60; x1 <- ((i*7919) %% 101)/101; x2 <- ((i*31) %% 17)/17; cc <- as.integer(i %% 5 == 0)
    #    u <- ((i*13) %% 23)/23; y <- as.integer(u < plogis(-1.5 + 2.5*x1 + 1.2*cc + 0.8*x2))
    #    coef(glm(y ~ cc + x1 + x2, family=binomial))
    X, y = _r_data()
    beta = refit_logistic(X, y)
    np.testing.assert_allclose(beta, [-2.45882885174260, 1.51979245747991, 3.87304475666809, 1.26948760773616],
                               rtol=1e-9)
    p = expit(np.column_stack([np.ones(len(y)), X]) @ beta)
    # R: lw <- lowess(fitted(f), y, iter=0); lw$y[c(1,10,30,60)]
    lw = lowess_curve(y, p)
    np.testing.assert_allclose(lw["fitted"].to_numpy()[[0, 9, 29, 59]],
                               [-0.0855079816520936, 0.3346146208266886, 0.6100492542108004, 0.9183501517353247],
                               atol=1e-10)
    # R: cal <- rms::calibrate(lrm(y ~ cc + x1 + x2, x=TRUE, y=TRUE), B=20)
    #    cal[c(1,25,50), c("predy", "calibrated.orig")]
    ps = np.sort(p)
    predy = np.linspace(ps[4], ps[55], 50)
    np.testing.assert_allclose(predy[[0, 24, 49]], [0.270605694217532, 0.552513073280136, 0.846166593137014],
                               atol=1e-10)
    cal_orig = predy + _cal_error(p, y, predy)
    np.testing.assert_allclose(cal_orig[[0, 24, 49]],
                               [0.198772801740948, 0.644500105195707, 0.849654459856912], atol=1e-8)
    # R (print.calibrate's error summary, on the apparent curve):
    #    pr <- attr(cal, "predicted")
    #    err <- pr - approx(cal[, "predy"], cal[, "calibrated.orig"], xout=pr, ties=mean)$y
    #    c(mean(abs(err), na.rm=TRUE), mean(err^2, na.rm=TRUE), quantile(abs(err), .9, na.rm=TRUE))
    e = _error_summary(p, predy, cal_orig)
    np.testing.assert_allclose([e["mean_abs"], e["mean_sq"], e["q90_abs"]],
                               [0.05350043441085692, 0.00410908414444554, 0.11052055138678901], rtol=1e-7)


def test_refit_flags_separation():
    x = np.arange(20, dtype=float)[:, None]
    assert refit_logistic(x, (x[:, 0] > 9).astype(int)) is None


def test_resolve_terms_maps_model_names_to_columns():
    cols = ["cohort", "c_lnm", "DL_score", "Rad_score"]
    assert resolve_terms(["c_LNM", "DL_score", "Rad_score"], cols) == (
        ["c_lnm", "DL_score", "Rad_score"], [])
    assert resolve_terms(None, cols) == resolve_terms([], cols) == (["c_lnm", "DL_score", "Rad_score"], [])
    assert resolve_terms(["Rad_score", "FIGO_IIA2"], cols) == (["Rad_score"], ["FIGO_IIA2"])


def test_optimism_calibration_is_deterministic_and_corrects_downwards():
    df = make_predictions(scale=0.5, seed=11)
    a = optimism_calibration(df, B=30, seed=5, progress=False)
    b = optimism_calibration(df, B=30, seed=5, progress=False)
    pd.testing.assert_frame_equal(a.curve, b.curve)
    assert a.auc_optimism > 0 and a.auc_corrected < a.auc_apparent
    assert a.max_abs_diff_to_predictions < 1e-8  # refit reproduces the frame's prob_dlrc
    assert list(a.curve.columns) == ["predy", "calibrated_orig", "calibrated_corrected", "optimism", "n_boot"]
    assert len(a.curve) == 50 and a.n_failed == 0
    import plotnine as p9

    from dlrc_lib.core.figures import render

    gg = plot_optimism_calibration(a)
    assert isinstance(gg, p9.ggplot)
    fig = render(gg)
    assert fig.axes[0].get_xlim() == (0, 1)
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_optimism_calibration_refuses_bad_input():
    df = make_predictions(scale=0.5, seed=11)
    with pytest.raises(DlrcError, match="term column"):
        optimism_calibration(df, terms=["c_lnm", "nope"], B=2, progress=False)
    tiny = df[df.cohort != "train"].copy()
    tiny = pd.concat([tiny, df[df.cohort == "train"].iloc[:8]])
    with pytest.raises(DlrcError, match="more than 10"):
        optimism_calibration(tiny, B=2, progress=False)


def test_hosmer_lemeshow_table_equals_stats_core():
    from dlrc_lib import stats

    df = make_predictions(scale=0.5, seed=2)
    models = model_columns("ResNet152_2D")
    tab = calibration_table(df, models, groups=10)
    assert len(tab) == 9 and list(tab["cohort"].unique()) == ["train", "internal", "external"]
    for _, r in tab.iterrows():
        part = df[df.cohort == r["cohort"]]
        hl = stats.hosmer_lemeshow(part["lnm"].to_numpy(), part[models[r["model"]]].to_numpy(), groups=10)
        assert (r["hl_statistic"], r["hl_df"], r["hl_p"]) == (float(hl.statistic), int(hl.df), float(hl.pvalue))
        cc = stats.calibration_curve(part["lnm"].to_numpy(), part[models[r["model"]]].to_numpy(), groups=10)
        assert r["brier"] == pytest.approx(np.mean((part[models[r["model"]]] - part["lnm"]) ** 2))
        assert r["slope"] == float(cc.slope)


def test_figure5_three_panels_and_groups():
    df = make_predictions(scale=0.3, seed=2)
    models = model_columns("ResNet152_2D")
    disp = CalibrationDisplay.from_predictions(df, models)
    import plotnine as p9

    from dlrc_lib.core.figures import render

    gg = disp.plot()
    assert isinstance(gg, p9.ggplot)
    fig = render(gg)
    texts = [t.get_text() for t in fig.findobj(__import__("matplotlib").text.Text)]
    strips = sorted(t for t in texts if t[:3] in ("a  ", "b  ", "c  "))
    assert [s[0] for s in strips] == ["a", "b", "c"]
    g = grouped_calibration(df, models)
    assert {"model", "cohort", "group", "predicted", "observed"} <= set(g.columns)
    # the display holds what it draws: the same groups as the table, the calibration statistics
    # of calibration_table, and every patient of hist_model's histogram
    cols = ["model", "cohort", "group", "n", "predicted", "observed", "lower", "upper"]
    pd.testing.assert_frame_equal(disp.groups[cols].reset_index(drop=True), g[cols].reset_index(drop=True))
    tab = calibration_table(df, models).set_index(["model", "cohort"])
    for _, r in disp.summary.iterrows():
        assert r["slope"] == tab.loc[(r["model"], r["cohort"]), "slope"]
    h = disp.histogram.groupby("cohort")[["events", "non_events"]].sum()
    assert (h.sum(axis=1) == df.groupby("cohort").size().loc[h.index]).all()
    # one cohort: one panel, titled without a letter
    import matplotlib.pyplot as plt
    plt.close(fig)
    one = CalibrationDisplay.from_predictions(df, models, cohorts=["external"])
    fig = render(one.plot())
    assert len(fig.axes) == 1
    assert "External validation" in [t.get_text() for t in fig.findobj(__import__("matplotlib").text.Text)]
    plt.close("all")


def test_bad_probabilities_are_refused():
    df = make_predictions(scale=0.1, seed=2)
    df.loc[df.index[3], "prob_dlrc"] = 1.5
    with pytest.raises(DlrcError, match=f"prob_dlrc: missing or outside \\[0, 1\\] for patient\\(s\\) {df.index[3]}"):
        calibration_table(df, model_columns())
