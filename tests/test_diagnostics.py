import numpy as np
import pandas as pd
import pytest

from dlrc_lib.scores import diagnostics as D
from dlrc_lib.scores.combat import harmonise
from dlrc_lib.core.config import HarmonisationParams

from featuredata import make_features, make_study


@pytest.fixture(scope="module")
def before_after():
    study = make_study(200, seed=21)
    X = make_features(study, n_noise=15, scanner_effect=2.0, seed=22)
    after = harmonise(X, study, HarmonisationParams(mode="all")).features
    return study, X, after


def test_scanner_fingerprint_disappears(before_after):
    study, X, after = before_after
    s = D.harmonisation_summary(X, after, study, seed=0).set_index("predict")
    assert s.loc["scanner", "auc_before"] > 0.8
    assert s.loc["scanner", "auc_after"] < 0.6
    assert s.loc["scanner", "share_assoc_before"] > 0.8
    assert s.loc["scanner", "share_assoc_after"] < 0.15


def test_pca_frame_and_plots_build(before_after):
    study, X, after = before_after
    f = D.pca_frame(X, after, study)
    assert set(f["stage"].astype(str)) == {"Before ComBat", "After ComBat"}
    assert len(f) == 2 * len(X)
    Z = (X.iloc[:, :4] - X.iloc[:, :4].mean()) / X.iloc[:, :4].std()
    y = study.set_index("patient_id").loc[X.index, "lnm"]
    funnel = pd.DataFrame({"step": ["Extracted", "Mann-Whitney U", "LASSO"], "n_features": [100, 10, 0],
                           "rule": ["", "", ""]})
    import matplotlib.pyplot as plt
    import plotnine as p9

    from dlrc_lib.core.figures import render

    for gg in (D.plot_pca(f), D.plot_funnel(funnel), D.plot_feature_violins(Z, y),
               D.plot_correlation_heatmap(Z)):
        assert isinstance(gg, p9.ggplot)
        for _ in range(2):  # renders, and renders again (saved, then displayed)
            g = render(gg)
            assert [a for a in g.axes if a.get_visible()]
            plt.close(g)


def test_correlation_frame_is_spearman():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=50)})
    X["b"] = np.exp(X["a"])  # monotone: Spearman 1
    c = D.correlation_frame(X).set_index(["feature_x", "feature_y"])["r"]
    assert c[("a", "b")] == pytest.approx(1.0)


def test_randomized_pca_gives_the_full_svd_auc():
    study = make_study(240, seed=23)
    X = make_features(study, n_noise=150, scanner_effect=1.0, seed=24)
    g = study.set_index("patient_id")["scanner"]
    full = D.batch_predictability(X, g, seed=3, svd_solver="full")
    fast = D.batch_predictability(X, g, seed=3)
    assert abs(full - fast) < 0.01, (full, fast)
