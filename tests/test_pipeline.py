import json

import numpy as np
import pandas as pd
import pytest

from dlrc_lib.core.config import HarmonisationParams, SelectionParams
from dlrc_lib.core.errors import DlrcError

from featuredata import make_features, make_study

from dlrc_lib.scores.pipeline import EmptySelectionError, apply_feature_score, fit_feature_score  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    study = make_study(320, seed=8)
    X = make_features(study, n_noise=25, effect=1.0, scanner_effect=1.0, seed=9)
    res = fit_feature_score(X, study, harmonisation=HarmonisationParams(mode="all"),
                            selection=SelectionParams(), seed=3)
    return study, X, res


def test_score_covers_all_patients_and_is_linear_predictor(fitted):
    study, X, res = fitted
    assert list(res.score.index) == list(study["patient_id"])
    assert res.score.notna().all()
    # training AUC of the score is clearly above chance (known signal)
    tr = (study["cohort"] == "train").to_numpy()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(study.loc[tr, "lnm"], res.score[tr]) > 0.75
    informative = {"CET1_sig0", "CET1_sig0_copy", "CET1_sig1", "T2FS_sig2"}
    chosen = set(res.selected["feature"])
    assert len(chosen & informative) >= 2 and len(chosen - informative) <= 1
    assert res.funnel["step"].iloc[0] == "Extracted"


def test_state_is_json_and_reproduces_scores(fitted):
    study, X, res = fitted
    state = json.loads(json.dumps(res.state))
    batches = study.set_index("patient_id")["scanner"]
    again = apply_feature_score(state, X, batches)
    np.testing.assert_allclose(again.to_numpy(), res.score.loc[X.index].to_numpy(), atol=1e-9)
    # only the selected features are needed for known scanners
    again2 = apply_feature_score(state, X[list(res.selected["feature"])], batches)
    np.testing.assert_allclose(again2.to_numpy(), again.to_numpy(), atol=1e-12)


def test_unseen_scanner_refused_or_estimated(fitted):
    study, X, res = fitted
    newX = X.iloc[:6].copy()
    newX.index = [f"N{i}" for i in range(6)]
    b = pd.Series("NEW-SCANNER", index=newX.index)
    with pytest.raises(DlrcError, match="NEW-SCANNER"):
        apply_feature_score(res.state, newX, b)
    s = apply_feature_score(res.state, newX, b, unseen="estimate")
    assert s.notna().all()


def test_train_reference_mode_and_icc_keep():
    study = make_study(320, seed=8)
    X = make_features(study, n_noise=25, seed=9)
    keep = [c for c in X.columns if c != "T2FS_sig2"]
    res = fit_feature_score(X, study, keep=keep, harmonisation=HarmonisationParams(mode="train_reference"),
                            selection=SelectionParams(), seed=3)
    f = res.funnel.set_index("step")["n_features"]
    assert f["Extracted"] == X.shape[1] and f["ICC filter"] == X.shape[1] - 1
    assert "T2FS_sig2" not in set(res.selected["feature"])
    assert res.score.notna().all()
    train_scanners = set(study.loc[study["cohort"] == "train", "scanner"])
    assert set(res.state["harmonisation"]["estimates"]["batches"]) == train_scanners


def test_failed_patients_are_listed_not_dropped_silently():
    study = make_study(320, seed=8)
    X = make_features(study, n_noise=25, seed=9)
    X = X.drop(index="P0001")
    X.loc["P0002", [c for c in X.columns if c.startswith("DWI_")]] = np.nan
    res = fit_feature_score(X, study, harmonisation=HarmonisationParams(mode="all"),
                            selection=SelectionParams(), seed=3)
    ex = res.excluded.set_index("patient_id")
    assert ex.loc["P0001", "reason"].startswith("no features")
    assert ex.loc["P0002", "reason"].startswith("no DWI features")
    assert np.isnan(res.score["P0001"]) and np.isnan(res.score["P0002"])
    assert res.score.drop(["P0001", "P0002"]).notna().all()


def test_empty_selection_raises_with_funnel():
    study = make_study(200, seed=8)
    X = make_features(study, n_noise=10, effect=0.0, seed=9)
    with pytest.raises(EmptySelectionError, match="no feature passed Mann-Whitney p < 1e-08") as exc:
        fit_feature_score(X, study, harmonisation=HarmonisationParams(mode="none"),
                          selection=SelectionParams(mw_p=1e-8), seed=3)
    assert exc.value.result.funnel["n_features"].iloc[-1] == 0


def test_lost_reasons_are_carried():
    study = make_study(200, seed=8)
    X = make_features(study, n_noise=10, seed=9).drop(index=["P0003"])
    lost = pd.DataFrame({"patient_id": ["P0003"], "reason": ["CET1: mask too small"]})
    res = fit_feature_score(X, study, harmonisation=HarmonisationParams(mode="all"),
                            selection=SelectionParams(), seed=3, lost=lost)
    assert res.excluded.set_index("patient_id").loc["P0003", "reason"] == "no features: CET1: mask too small"
    from dlrc_lib.scores.pipeline import selected_table

    t = selected_table(res)
    assert list(t.columns) == ["Feature", "Coefficient", "SE", "OR (95% CI)", "p"]
    assert t["Feature"].iloc[-1] == "(Intercept)"
