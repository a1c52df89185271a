import numpy as np
import pandas as pd
import pytest

from featuredata import make_study

from dlrc_lib import stats
from dlrc_lib.evaluation.performance import evaluate_score, format_table, performance_rows  # noqa: E402
from dlrc_lib.study import keys as K  # noqa: E402


@pytest.fixture(scope="module")
def scored():
    study = make_study(300, seed=12)
    rng = np.random.default_rng(0)
    score = pd.Series(study["lnm"].to_numpy() * 1.0 + rng.normal(size=len(study)),
                      index=study["patient_id"].to_numpy())
    return study, score


def test_rows_per_cohort_with_training_cutoff(scored):
    study, score = scored
    perf = evaluate_score(score, study, model="radiomics")
    assert list(perf["cohort"]) == ["train", "internal", "external"]
    assert perf["cutoff"].nunique() == 1
    tr = study["cohort"] == "train"
    y, s = study.loc[tr, "lnm"].to_numpy(), score[tr.to_numpy()].to_numpy()
    assert perf["cutoff"].iloc[0] == pytest.approx(stats.youden_threshold(y, s))
    # counts at the cut-off give the percentages
    for _, r in perf.iterrows():
        assert r["tp"] + r["fp"] + r["tn"] + r["fn"] == r["n"]
        assert r["sen"] == pytest.approx(100 * r["tp"] / (r["tp"] + r["fn"]))
        assert r["acc"] == pytest.approx(100 * (r["tp"] + r["tn"]) / r["n"])
    assert perf.loc[0, "auc"] == pytest.approx(stats.auc_ci(y, s)[0])


def test_monotone_transform_invariance(scored):
    study, score = scored
    a = evaluate_score(score, study)
    b = evaluate_score(1 / (1 + np.exp(-score)), study)
    cols = ["auc", "auc_lower", "auc_upper", "acc", "sen", "spe", "ppv", "npv"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_missing_scores_are_counted(scored):
    study, score = scored
    s = score.copy()
    s.iloc[:3] = np.nan
    perf = evaluate_score(s, study)
    assert perf["n_missing"].sum() == 3


def test_reproduce_keys_and_format(scored):
    study, score = scored
    perf = evaluate_score(score, study)
    rep = K.values(performance_rows(perf, "table2", "radiomics"))
    assert set(rep) >= {"table2.train.radiomics.auc", "table2.external.radiomics.npv"}
    assert len(rep["table2.internal.radiomics.auc"]) == 3
    t = format_table(perf)
    assert list(t.columns) == ["Cohort", "AUC (95% CI)", "ACC", "SEN", "SPE", "PPV", "NPV"]
