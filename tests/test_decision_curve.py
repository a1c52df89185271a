"""Decision curves against the python dcurves package, bands and interventions avoided."""
import warnings

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.evaluation.calibration import model_columns
from dlrc_lib.core.config import DecisionCurveParams
from dlrc_lib.evaluation.decision_curve import (
    TREAT_ALL, TREAT_NONE, DecisionCurveDisplay, best_ranges, bootstrap_bands, decision_curves, interventions_avoided,
    true_runs,
    net_benefit_at, threshold_grid,
)
from tests.eval_data import make_predictions

def test_threshold_grid_as_dcurves():
    t = threshold_grid(DecisionCurveParams())
    assert len(t) == 100 and t[0] == 0.0 and t[-1] == 0.99 and t[37] == 0.37
    assert threshold_grid(DecisionCurveParams(threshold_max=0.5, threshold_step=0.05))[-1] == 0.5


def test_interventions_avoided_formula():
    ia = interventions_avoided(np.array([0.1, 0.2]), np.array([0.0, 0.1]), np.array([0.0, 0.2]))
    assert np.isnan(ia[0]) and ia[1] == pytest.approx((0.2 - 0.1) / 0.25 * 100)


def test_net_benefit_equals_python_dcurves():
    from dcurves import dca

    df = make_predictions(scale=0.5, seed=4)
    t = threshold_grid(DecisionCurveParams())
    models = model_columns("ResNet152_2D")
    ours = decision_curves(df, models, t)
    for coh in ("train", "internal", "external"):
        part = df[df.cohort == coh].reset_index()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = dca(data=part, outcome="lnm", modelnames=list(models.values()), thresholds=list(t), nper=100)
        for label, col in [*models.items(), (TREAT_ALL, "all"), (TREAT_NONE, "none")]:
            r = ref[ref.model == col].sort_values("threshold")
            o = ours[(ours.cohort == coh) & (ours.model == label)].sort_values("threshold")
            np.testing.assert_allclose(o["net_benefit"].to_numpy(), r["net_benefit"].to_numpy(), atol=1e-12)
            if col not in ("all", "none"):
                np.testing.assert_allclose(o["interventions_avoided"].to_numpy()[1:],
                                           r["net_intervention_avoided"].to_numpy()[1:], atol=1e-9)


def test_bands_deterministic_and_cover_estimate():
    df = make_predictions(scale=0.5, seed=4)
    t = threshold_grid(DecisionCurveParams())
    a = bootstrap_bands(df, "prob_dlrc", t, B=40, seed=9, progress=False)
    b = bootstrap_bands(df, "prob_dlrc", t, B=40, seed=9, progress=False)
    pd.testing.assert_frame_equal(a, b)
    curves = decision_curves(df, model_columns(), t)
    est = curves[(curves.model == "DLRC")].merge(a, on=["cohort", "threshold"])
    inside = (est.net_benefit >= est.nb_lower - 1e-12) & (est.net_benefit <= est.nb_upper + 1e-12)
    assert inside[est.threshold <= 0.6].mean() > 0.95


def test_figure6_panels_and_summaries():
    df = make_predictions(scale=0.3, seed=4)
    t = threshold_grid(DecisionCurveParams())
    curves = decision_curves(df, model_columns("ResNet152_2D"), t)
    bands = bootstrap_bands(df, "prob_dlrc", t, B=10, seed=1, progress=False)
    import matplotlib.pyplot as plt
    import plotnine as p9

    from dlrc_lib.core.figures import render

    gg = DecisionCurveDisplay.from_curves(curves, bands=bands).plot()
    assert isinstance(gg, p9.ggplot)
    fig = render(gg)
    axes = fig.axes[:3]
    texts = [t.get_text() for t in fig.findobj(__import__("matplotlib").text.Text)]
    assert sorted(t[0] for t in texts if t[1:3] == "  ") == ["a", "b", "c"]
    prev = df[df.cohort == "train"]["lnm"].mean()
    assert axes[0].get_ylim() == pytest.approx((-0.1 * prev, prev))  # as dcurves' plot.dca
    fig2 = render(DecisionCurveDisplay.from_curves(curves, bands=bands, kind="interventions_avoided").plot())
    assert fig2.axes[0].get_ylim() == pytest.approx((0, 100))
    plt.close("all")
    only = DecisionCurveDisplay.from_curves(curves, models=["DLRC"])
    assert set(only.curves["model"]) == {"DLRC", TREAT_ALL, TREAT_NONE}
    with pytest.raises(DlrcError, match="kind must be"):
        DecisionCurveDisplay.from_curves(curves, kind="net benefit")
    br = best_ranges(curves)
    assert list(br.cohort) == ["train", "internal", "external"]
    at = net_benefit_at(curves)
    assert "pt=0.30" in at.columns and len(at) == 15


def test_true_runs_finds_each_interval_including_a_trailing_one_and_single_points():
    idx = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07]
    mask = pd.Series([True, True, False, True, False, True, True], index=idx)
    assert true_runs(mask) == [(0.01, 0.02), (0.04, 0.04), (0.06, 0.07)]
    assert true_runs(pd.Series(False, index=idx)) == []
    assert true_runs(pd.Series(True, index=idx)) == [(0.01, 0.07)]
