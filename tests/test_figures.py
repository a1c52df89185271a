"""Every chart of data is a Display whose plot() is a plotnine ggplot: it draws on small data
without plotnine warnings, takes another layer or theme, and saves; the theme module gives
plotnine and matplotlib the same fonts, sizes and colours."""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

p9 = pytest.importorskip("plotnine")

from dlrc_lib.core import theme as T  # noqa: E402
from dlrc_lib.core.figures import GgplotDisplay, render  # noqa: E402
from eval_data import make_predictions  # noqa: E402


def _displays():
    from dlrc_lib.core.config import DecisionCurveParams
    from dlrc_lib.evaluation.calibration import CalibrationDisplay, model_columns, optimism_calibration
    from dlrc_lib.evaluation.decision_curve import DecisionCurveDisplay, bootstrap_bands, decision_curves, threshold_grid
    from dlrc_lib.evaluation.roc import RocDisplay
    from dlrc_lib.features.reproducibility import IccDisplay
    from dlrc_lib.reporting.sensitivity import SpecificationCurveDisplay
    from dlrc_lib.scores import diagnostics as D

    rng = np.random.default_rng(0)
    pred = make_predictions(scale=0.3, seed=2)
    models = model_columns("ResNet152_2D")
    t = threshold_grid(DecisionCurveParams())
    curves = decision_curves(pred, models, t)
    bands = bootstrap_bands(pred, "prob_dlrc", t, B=5, seed=1, progress=False)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["f_a", "f_b", "f_c"], index=[f"P{i}" for i in range(40)])
    y = pd.Series(rng.integers(0, 2, 40), index=X.index)
    study = pd.DataFrame({"patient_id": X.index, "centre": rng.choice(list("AB"), 40)})
    pca = D.pca_frame(X, X * 0.5, study)
    funnel = pd.DataFrame({"step": ["Extracted", "LASSO"], "n_features": [100, 0]})
    path = pd.DataFrame({"log_lambda": np.linspace(-5, -1, 8)})
    path["cvm"] = 1 + (path["log_lambda"] + 3) ** 2 / 20
    path["cvlo"], path["cvup"] = path["cvm"] - 0.05, path["cvm"] + 0.05
    names = [f"{s}_original_firstorder_F{i}" for s in ("CET1", "DWI") for i in range(6)]
    icc = pd.DataFrame({"icc_inter": rng.uniform(0.3, 1, 12), "icc_intra": rng.uniform(0.3, 1, 12)}, index=names)
    icc.iloc[0, 0] = np.nan
    rows = []
    for i, (a, b) in enumerate(itertools.product(["1se", "min"], ["scanner", "none"])):
        auc = 0.7 + 0.05 * i
        rows.append({"variant": "base" if i == 0 else f"v{i}", "status": "ok", "rule": a, "batch": b,
                     "dlrc_external_auc": auc, "dlrc_external_auc_lo": auc - 0.1, "dlrc_external_auc_hi": auc + 0.1})
    sweep = pd.DataFrame(rows)
    return {
        "roc": RocDisplay.from_scores(pred, models, ci=True),
        "calibration": CalibrationDisplay.from_predictions(pred, models),
        "optimism": optimism_calibration(pred, B=5, seed=1, progress=False),
        "decision_curve": DecisionCurveDisplay.from_curves(curves, bands=bands),
        "interventions": DecisionCurveDisplay.from_curves(curves, bands=bands, kind="interventions_avoided"),
        "pca": D.PcaDisplay.from_frame(pca),
        "funnel": D.FunnelDisplay.from_funnel(funnel),
        "lasso": D.LassoCvDisplay.from_path(path, np.exp(-3), np.exp(-2)),
        "violins": D.FeatureViolinDisplay.from_features(X, y),
        "heatmap": D.CorrelationDisplay.from_features(X),
        "icc_violin": IccDisplay.from_icc(icc, 0.75),
        "icc_histogram": IccDisplay.from_icc(icc, 0.75, "histogram"),
        "specification": SpecificationCurveDisplay.from_sweep(sweep, ["rule", "batch"],
                                                              base_choices={"rule": "1se", "batch": "scanner"},
                                                              published=[0.8, 0.7, 0.9]),
    }


@pytest.fixture(scope="module")
def displays():
    return _displays()


NAMES = ["roc", "calibration", "optimism", "decision_curve", "interventions", "pca", "funnel", "lasso", "violins",
         "heatmap", "icc_violin", "icc_histogram", "specification"]


@pytest.mark.parametrize("name", NAMES)
def test_display_plot_is_a_ggplot_that_draws_quietly_extends_and_saves(displays, name, tmp_path):
    import matplotlib.pyplot as plt
    from plotnine.exceptions import PlotnineWarning

    disp = displays[name]
    assert isinstance(disp, GgplotDisplay)
    gg = disp.plot()
    assert isinstance(gg, p9.ggplot)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlotnineWarning)  # no removed rows, no size or save notes
        warnings.simplefilter("error", FutureWarning)
        fig = render(gg)  # draws a copy: gg can still be extended
    assert fig.axes
    plt.close(fig)
    extended = gg + p9.geom_hline(yintercept=0.5, colour="red") + p9.theme(figure_size=(5, 4))
    fig = render(extended)
    assert tuple(fig.get_size_inches()) == pytest.approx((5, 4))
    plt.close(fig)
    out = disp.save(tmp_path / f"{name}.png", width=6, height=4, dpi=60)
    assert out.stat().st_size > 1000
    assert disp.save(tmp_path / f"{name}.pdf").read_bytes()[:4] == b"%PDF"


def test_rendering_is_deterministic(displays, tmp_path):
    a = displays["roc"].save(tmp_path / "a.png", dpi=60).read_bytes()
    b = displays["roc"].save(tmp_path / "b.png", dpi=60).read_bytes()
    assert a == b


def test_the_theme_is_one_for_both_libraries():
    th = T.theme_dlrc()
    assert isinstance(th, p9.theme)
    assert T.STYLE["font.size"] == T.BASE_SIZE and T.STYLE["axes.titlesize"] == T.TITLE_SIZE
    assert T.STYLE["font.sans-serif"] == [T.FONT_FAMILY] and T.STYLE["grid.color"] == T.GRID_COLOUR
    # Figs. 4-6 give radiomics, the best DL model and DLRC the same colours
    c = T.colours_for(["Radiomics", "ResNet152_2D", "DLRC"])
    assert c == {"Radiomics": T.ROLE_COLOURS["radiomics"], "ResNet152_2D": T.ROLE_COLOURS["dl"],
                 "DLRC": T.ROLE_COLOURS["dlrc"]}
    assert T.colours_for(["a", "b"]) == {"a": T.MODEL_COLOURS[0], "b": T.MODEL_COLOURS[1]}


def test_decision_curve_lines_are_clipped_at_the_panel_edges():
    from dlrc_lib.evaluation.decision_curve import clip_lines

    f = pd.DataFrame({"cohort": "train", "model": "m", "threshold": [0.0, 1.0, 2.0, 3.0], "nb": [0.5, 2.0, 0.5, -1.0]})
    out = clip_lines(f, "threshold", "nb", ["cohort", "model"], {"train": (0.0, 1.0)})
    assert out["nb"].between(0, 1).all()
    assert out["piece"].nunique() == 2  # leaves at the top, comes back, leaves at the bottom
    first = out[out["piece"] == 0]
    assert list(first["threshold"]) == pytest.approx([0.0, 1 / 3])
    second = out[out["piece"] == 1]
    assert list(second["nb"]) == pytest.approx([1.0, 0.5, 0.0])
