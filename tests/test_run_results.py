"""The run folder's results as typed objects (dlrc_lib.run.run_results)."""
import json

import numpy as np
import pandas as pd
import pytest

from dlrc_lib.core.config import HarmonisationParams, SelectionParams
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.model import dlrc as M
from dlrc_lib.run import run_results as R
from dlrc_lib.run.artifacts import Artifacts
from dlrc_lib.scores.deep_models import BestDeepModel
from dlrc_lib.scores.pipeline import FeatureScore, score_frame

from featuredata import make_features, make_study


@pytest.fixture(scope="module")
def fitted():
    study = make_study(200, seed=8)
    X = make_features(study, n_noise=10, seed=9)
    fit = FeatureScore(HarmonisationParams(mode="all"), SelectionParams(), seed=3).fit(X, study)
    return study, X, fit


def _write_run(run_dir, study, fit, best="ResNet50_2D"):
    """What notebooks 03 and 04 hand on: the score frames and the fitted pipelines."""
    rad = Artifacts(run_dir, notebook="03_radiomics")
    rad.save_frame("rad_score", score_frame(fit, study, name="Rad_score"))
    rad.results(state=fit.to_dict())
    deep = Artifacts(run_dir, notebook="04_deep_learning")
    dls = score_frame(fit, study, name=best).assign(ResNet50_3D=np.nan)
    dls.loc[dls.index[0], best] = np.nan  # one patient without a DL_score
    deep.save_frame("dl_scores", dls)
    deep.results(best_model=best, best_model_rule="train_auc", states={best: fit.to_dict()},
                 weights={best: {"source": "random", "identity": "random:seed=1"}})
    return dls


def test_score_pipelines_and_best_model_are_read_back(fitted, tmp_path):
    study, X, fit = fitted
    dls = _write_run(tmp_path, study, fit)
    art = Artifacts(tmp_path, notebook="05_dlrc")
    loaded = R.radiomics_score(art)
    assert isinstance(loaded, FeatureScore) and loaded.to_dict() == fit.to_dict()
    batches = study.set_index("patient_id")["scanner"]
    pd.testing.assert_series_equal(loaded.transform(X, batches), fit.transform(X, batches), check_exact=True)
    best = R.best_deep_model(art, with_estimator=True)
    assert isinstance(best, BestDeepModel) and best.name == "ResNet50_2D" and best.rule == "train_auc"
    assert best.weights == {"source": "random", "identity": "random:seed=1"}
    assert best.estimator.to_dict() == fit.to_dict()
    assert R.best_deep_model(art).estimator is None  # the pipeline only when asked for
    pd.testing.assert_series_equal(best.score, dls["ResNet50_2D"])
    # the DLRC model's inputs: both scores, the patient without a DL_score listed, not dropped silently
    inputs = R.load_score_inputs(art, study)
    first = study["patient_id"].iloc[0]
    assert inputs.best_model == "ResNet50_2D" and first not in inputs.scores.index
    assert inputs.lost.set_index("patient_id").loc[first, "reason"] == "no DL_score (ResNet50_2D)"
    assert len(inputs.scores) == len(study) - 1
    direct = M.score_inputs(score_frame(fit, study, name="Rad_score"), best, study)
    pd.testing.assert_frame_equal(direct.scores, inputs.scores)


def test_missing_or_old_results_name_the_file(fitted, tmp_path):
    study, _, fit = fitted
    _write_run(tmp_path, study, fit)
    art = Artifacts(tmp_path, notebook="05_dlrc")
    old = fit.to_dict()
    old["version"] = 1
    Artifacts(tmp_path, notebook="03_radiomics").results(state=old)
    with pytest.raises(DlrcError, match=r"results/03_radiomics.json: score state version 1, not 2"):
        R.radiomics_score(art)
    Artifacts(tmp_path, notebook="04_deep_learning").results(best_model="ResNet101_2D")
    with pytest.raises(DlrcError, match="dl_scores.parquet: no column for the best model 'ResNet101_2D'"):
        R.best_deep_model(art)
    with pytest.raises(DlrcError, match="no column for the best model 'ResNet101_2D'"):
        M.score_inputs(score_frame(fit, study), BestDeepModel("ResNet101_2D", pd.DataFrame()), study)


def test_dlrc_results_for_the_evaluation_notebooks(tmp_path):
    from tests.eval_data import make_predictions, write_run

    pred = make_predictions(scale=0.05, seed=3)
    write_run(tmp_path, pred)
    res = R.dlrc_results(Artifacts(tmp_path, notebook="06_calibration"))
    assert isinstance(res, R.DlrcResults)
    assert res.best_model == "ResNet152_2D" and res.terms == ["c_LNM", "DL_score", "Rad_score"]
    assert set(res.cutoffs) == {"radiomics", "dl", "dlrc"}
    pd.testing.assert_frame_equal(res.predictions, pred)
    saved = json.loads((tmp_path / "results" / "05_dlrc.json").read_text())
    assert res.cutoffs["dlrc"] == saved["cutoffs"]["dlrc"]
