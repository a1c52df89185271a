import json

import numpy as np
import pandas as pd
import pytest

from dlrc_lib.core.config import HarmonisationParams, SelectionParams
from dlrc_lib.core.errors import DlrcError

from featuredata import make_features, make_study

from dlrc_lib.scores.pipeline import EmptySelectionError, FeatureScore  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    study = make_study(320, seed=8)
    X = make_features(study, n_noise=25, effect=1.0, scanner_effect=1.0, seed=9)
    res = FeatureScore(HarmonisationParams(mode="all"), SelectionParams(), seed=3).fit(X, study)
    return study, X, res


def test_score_covers_all_patients_and_is_linear_predictor(fitted):
    study, X, res = fitted
    assert list(res.score_.index) == list(study["patient_id"])
    assert res.score_.notna().all()
    # training AUC of the score is clearly above chance (known signal)
    tr = (study["cohort"] == "train").to_numpy()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(study.loc[tr, "lnm"], res.score_[tr]) > 0.75
    informative = {"CET1_sig0", "CET1_sig0_copy", "CET1_sig1", "T2FS_sig2"}
    chosen = set(res.selected_["feature"])
    assert len(chosen & informative) >= 2 and len(chosen - informative) <= 1
    assert res.funnel_["step"].iloc[0] == "Extracted"
    assert res.features_ == list(res.selected_["feature"])


def test_state_is_json_and_reproduces_scores(fitted):
    study, X, res = fitted
    state = json.loads(json.dumps(res.to_dict()))
    batches = study.set_index("patient_id")["scanner"]
    loaded = FeatureScore.from_dict(state)
    again = loaded.transform(X, batches)
    np.testing.assert_allclose(again.to_numpy(), res.score_.loc[X.index].to_numpy(), atol=1e-9)
    # only the selected features are needed for known scanners
    again2 = loaded.transform(X[list(res.selected_["feature"])], batches)
    np.testing.assert_allclose(again2.to_numpy(), again.to_numpy(), atol=1e-12)


def test_to_dict_from_dict_round_trip_gives_identical_scores(fitted):
    study, X, res = fitted
    batches = study.set_index("patient_id")["scanner"]
    state = res.to_dict()
    loaded = FeatureScore.from_dict(json.loads(json.dumps(state)))
    assert loaded.to_dict() == state  # the dict survives JSON and the round trip unchanged
    assert json.dumps(loaded.to_dict(), sort_keys=True) == json.dumps(state, sort_keys=True)
    # the loaded pipeline scores exactly as the fitted one, bit for bit
    pd.testing.assert_series_equal(loaded.transform(X, batches), res.transform(X, batches), check_exact=True)
    assert loaded.features_ == res.features_ and loaded.intercept_ == res.intercept_
    assert loaded.harmonisation == res.harmonisation and loaded.selection == res.selection and loaded.seed == 3
    assert not hasattr(loaded, "score_")  # the fit's tables are not part of the stored pipeline


def test_unfitted_or_unsupported_state_is_refused(fitted):
    *_, res = fitted
    with pytest.raises(DlrcError, match="not fitted"):
        FeatureScore(HarmonisationParams(), SelectionParams()).transform(pd.DataFrame(), pd.Series(dtype=str))
    with pytest.raises(DlrcError, match="state version 9 is not supported"):
        FeatureScore.from_dict({**res.to_dict(), "version": 9})
    # a state of version 1 (no own-data batches) still loads and round-trips as it was
    v1 = res.to_dict()
    v1["version"] = 1
    del v1["harmonisation"]["own_data"]
    assert FeatureScore.from_dict(v1).to_dict() == v1


def test_unseen_scanner_refused_or_estimated(fitted):
    study, X, res = fitted
    newX = X.iloc[:6].copy()
    newX.index = [f"N{i}" for i in range(6)]
    b = pd.Series("NEW-SCANNER", index=newX.index)
    with pytest.raises(DlrcError, match="NEW-SCANNER"):
        res.transform(newX, b)
    s = res.transform(newX, b, unseen="estimate")
    assert s.notna().all()


def test_train_reference_mode_and_icc_keep():
    study = make_study(320, seed=8)
    X = make_features(study, n_noise=25, seed=9)
    keep = [c for c in X.columns if c != "T2FS_sig2"]
    res = FeatureScore(HarmonisationParams(mode="train_reference"), SelectionParams(), seed=3).fit(
        X, study, keep=keep)
    f = res.funnel_.set_index("step")["n_features"]
    assert f["Extracted"] == X.shape[1] and f["ICC filter"] == X.shape[1] - 1
    assert "T2FS_sig2" not in set(res.selected_["feature"])
    assert res.score_.notna().all()
    train_scanners = set(study.loc[study["cohort"] == "train", "scanner"])
    assert set(res.estimates_.batches) == train_scanners
    assert set(res.to_dict()["harmonisation"]["estimates"]["batches"]) == train_scanners


def test_failed_patients_are_listed_not_dropped_silently():
    study = make_study(320, seed=8)
    X = make_features(study, n_noise=25, seed=9)
    X = X.drop(index="P0001")
    X.loc["P0002", [c for c in X.columns if c.startswith("DWI_")]] = np.nan
    res = FeatureScore(HarmonisationParams(mode="all"), SelectionParams(), seed=3).fit(X, study)
    ex = res.excluded_.set_index("patient_id")
    assert ex.loc["P0001", "reason"].startswith("no features")
    assert ex.loc["P0002", "reason"].startswith("no DWI features")
    assert np.isnan(res.score_["P0001"]) and np.isnan(res.score_["P0002"])
    assert res.score_.drop(["P0001", "P0002"]).notna().all()


def test_empty_selection_raises_with_funnel():
    study = make_study(200, seed=8)
    X = make_features(study, n_noise=10, effect=0.0, seed=9)
    with pytest.raises(EmptySelectionError, match="no feature passed Mann-Whitney p < 1e-08") as exc:
        FeatureScore(HarmonisationParams(mode="none"), SelectionParams(mw_p=1e-8), seed=3).fit(X, study)
    assert exc.value.estimator.funnel_["n_features"].iloc[-1] == 0
    assert exc.value.estimator.features_ == []


def test_lost_reasons_are_carried():
    study = make_study(200, seed=8)
    X = make_features(study, n_noise=10, seed=9).drop(index=["P0003"])
    lost = pd.DataFrame({"patient_id": ["P0003"], "reason": ["CET1: mask too small"]})
    res = FeatureScore(HarmonisationParams(mode="all"), SelectionParams(), seed=3).fit(X, study, lost=lost)
    assert res.excluded_.set_index("patient_id").loc["P0003", "reason"] == "no features: CET1: mask too small"
    from dlrc_lib.scores.pipeline import selected_table

    t = selected_table(res)
    assert list(t.columns) == ["Feature", "Coefficient", "SE", "OR (95% CI)", "p"]
    assert t["Feature"].iloc[-1] == "(Intercept)"


def test_deep_models_tables_from_fitted_pipelines():
    from dlrc_lib.scores import deep_models as DM

    study = make_study(200, seed=8)
    good = make_features(study, n_noise=10, seed=9)
    noise = make_features(study, n_noise=10, effect=0.0, seed=9)
    fitted = DM.fit_models({"ResNet50_2D": good, "ResNet50_3D": noise}, study,
                           harmonisation=HarmonisationParams(mode="all"), selection=SelectionParams(mw_p=1e-3),
                           seed=3, progress=False)
    assert list(fitted.results) == ["ResNet50_2D"] and "Mann-Whitney" in fitted.failed["ResNet50_3D"]
    fit = fitted.results["ResNet50_2D"]
    assert isinstance(fit, FeatureScore) and fitted.states() == {"ResNet50_2D": fit.to_dict()}
    scores = DM.dl_scores(fitted, study)
    assert list(scores.columns) == ["cohort", "lnm", "ResNet50_3D", "ResNet50_2D"]
    np.testing.assert_array_equal(scores["ResNet50_2D"].to_numpy(), fit.score_.to_numpy())
    assert scores["ResNet50_3D"].isna().all()
    assert list(DM.funnel_table(fitted)["ResNet50_2D"]) == list(fit.funnel_["n_features"])
    sel = DM.selected_features(fitted)
    assert list(sel.loc[sel["model"] == "ResNet50_2D", "feature"]) == fit.features_
    assert sel.loc[sel["model"] == "ResNet50_3D", "feature"].iloc[0].startswith("(none: no feature passed")
