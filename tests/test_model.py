"""The DLRC model: screening, stepwise fit against R, Tables 2 and 4, Fig. 4."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlrc_lib.study.schema import CLINICAL, COHORTS


from dlrc_lib.evaluation import comparison as CMP
from dlrc_lib.model import dlrc as M
from dlrc_lib.study import keys as K
from dlrc_lib.core.errors import DlrcError
from model_synthetic import make_study


@pytest.fixture(scope="module")
def study():
    return make_study()


@pytest.fixture(scope="module")
def fitted(study):
    fit = M.fit_dlrc(study[["cohort", "lnm", "Rad_score", "DL_score"]], study)
    pred = M.predictions_frame(study, study["Rad_score"], study["DL_score"], fit.prob)
    return fit, pred


def _r_design(study):
    X = M.design_matrix(study, ["c_lnm", "age"])
    X["noise"] = np.random.default_rng(3).normal(size=len(X))
    train = (study["cohort"] == "train").to_numpy()
    return X.loc[train], study.loc[train, "lnm"]


def test_stepwise_fit_matches_r_stepaic(study):
    # R 4.2 (glm converged fully; the default epsilon = 1e-8 moves the CIs by < 1e-4):
    #   d <- read.csv("train.csv")   # _r_design(make_study()) with the lnm column
    #   ctl <- glm.control(epsilon = 1e-14, maxit = 100)
    #   s <- MASS::stepAIC(glm(lnm ~ ., family = binomial, data = d, control = ctl),
    #                      direction = "backward")
    #   formula(s); coef(s); confint.default(s); AIC(s); s$anova
    X, y = _r_design(study)
    m = M.DlrcModel().fit(X, y)
    assert m.candidates_ == ["Rad_score", "DL_score", "c_LNM", "age", "noise"]
    assert m.terms_ == ["Rad_score", "DL_score", "c_LNM"]
    assert list(m.step_path_["removed"]) == ["", "noise", "age"]  # R: noise, then age
    expected = {"(Intercept)": 0.189313646391, "Rad_score": 1.470099743519,
                "DL_score": 1.102492994559, "c_LNM": 3.667571689164}
    for k, v in expected.items():
        assert m.coef_[k] == pytest.approx(v, abs=1e-8)
    assert m.aic_ == pytest.approx(94.6181522969, abs=1e-8)
    tab = m.coef_table().set_index("term")
    ci = {"(Intercept)": (-0.547071239302, 0.925698532085), "Rad_score": (0.826443811701, 2.113755675338),
          "DL_score": (0.470276534226, 1.734709454893), "c_LNM": (1.891555245899, 5.443588132429)}
    for k, (lo, hi) in ci.items():
        assert tab.loc[k, "coef_lower"] == pytest.approx(lo, abs=1e-7)
        assert tab.loc[k, "coef_upper"] == pytest.approx(hi, abs=1e-7)
        if k != "(Intercept)":
            assert tab.loc[k, "OR"] == pytest.approx(np.exp(m.coef_[k]))
            assert tab.loc[k, "OR_lower"] == pytest.approx(np.exp(lo), rel=1e-6)
    assert np.isnan(tab.loc["(Intercept)", "OR"])


def test_screening_excludes_figo_with_reason(study):
    scr = M.screen_clinical(study, 0.05, ["figo_stage"]).set_index("variable")
    assert list(scr.index) == list(CLINICAL)
    assert scr.loc["c_lnm", "candidate"] and scr.loc["c_lnm", "p"] < 0.05
    assert scr.loc["figo_stage", "p"] < 0.05 and not scr.loc["figo_stage", "candidate"]
    assert "excluded" in scr.loc["figo_stage", "note"]
    assert not scr.loc["age_at_menopause", "candidate"]
    # without the exclusion FIGO stage becomes a candidate, entered as dummies
    scr2 = M.screen_clinical(study, 0.05, []).set_index("variable")
    assert scr2.loc["figo_stage", "candidate"]
    X = M.design_matrix(study, ["figo_stage"])
    assert [c for c in X.columns if c.startswith("figo")] == [
        "figo_stage[IB2]", "figo_stage[IB3]", "figo_stage[IIA1]", "figo_stage[IIA2]"]


def test_screening_rejects_unknown_exclusion(study):
    with pytest.raises(DlrcError, match="unknown clinical variable"):
        M.screen_clinical(study, 0.05, ["figo"])


def test_missing_values_named(study):
    bad = study.copy()
    bad.loc["P0003", "Rad_score"] = np.nan
    with pytest.raises(DlrcError, match="patient P0003 \\(Rad_score\\)"):
        M.design_matrix(bad, ["c_lnm"])


def test_fit_dlrc_and_predictions_frame(fitted):
    fit, pred = fitted
    assert fit.clinical == ["c_lnm"]
    assert set(fit.model.terms_) <= {"Rad_score", "DL_score", "c_LNM"}
    assert "Rad_score" in fit.model.terms_ and "DL_score" in fit.model.terms_
    assert list(pred.columns) == ["cohort", "lnm", "c_lnm", "lnsd_mm", "lnld_mm", "node_necrosis",
                                  "Rad_score", "DL_score", "prob_radiomics", "prob_dl", "prob_dlrc"]
    assert pred.index.name == "patient_id"
    assert np.allclose(pred["prob_radiomics"], 1 / (1 + np.exp(-pred["Rad_score"])))
    lp = fit.model.linear_predictor(fit.design)
    assert np.allclose(pred["prob_dlrc"], 1 / (1 + np.exp(-lp)))
    # the model round-trips through its JSON form
    m2 = M.DlrcModel.from_dict(fit.model.to_dict())
    assert np.allclose(m2.predict_proba(fit.design), fit.prob, atol=0, rtol=1e-15)


def test_table2_at_training_cutoff(fitted, study):
    fit, pred = fitted
    cut = M.youden_cutoffs(pred)
    assert set(cut) == {"radiomics", "dl", "dlrc"}
    sra = (study["lnsd_mm"] >= 10).astype(int)
    table, rows = CMP.performance_table(pred, cut, "ResNet152_2D", sra)
    rep = K.values(rows)
    assert len(table) == 12
    assert list(table["model"].unique()) == ["radiomics", "ResNet152_2D", "DLRC", "SRA"]
    for cohort in COHORTS:
        for name in ("radiomics", "ResNet152_2D", "DLRC"):
            auc = rep[f"table2.{cohort}.{name}.auc"]
            assert len(auc) == 3 and auc[1] <= auc[0] <= auc[2]
            for k in ("acc", "sen", "spe", "ppv", "npv"):
                assert 0 <= rep[f"table2.{cohort}.{name}.{k}"] <= 100
        assert f"table2.{cohort}.SRA.auc" not in rep
        assert f"table2.{cohort}.SRA.sen" in rep
    # the training cut-off is applied unchanged to the external cohort
    ext = pred[pred["cohort"] == "external"]
    called = ext["prob_dlrc"] >= cut["dlrc"]
    tp = int((called & (ext["lnm"] == 1)).sum())
    fn = int((~called & (ext["lnm"] == 1)).sum())
    row = table[(table["cohort"] == "external") & (table["model"] == "DLRC")].iloc[0]
    assert (row["TP"], row["FN"]) == (tp, fn)
    assert rep["table2.external.DLRC.sen"] == round(100 * tp / (tp + fn), 1)
    shown = CMP.table2_display(table)
    assert shown.loc[3, "AUC (95% CI)"] == "/" and shown.loc[0, "Cohort"] == "Training"


def test_table4_keys_and_format(fitted):
    _, pred = fitted
    table, rows = CMP.delong_table(pred, "ResNet152_2D")
    rep = K.values(rows)
    assert set(rep) == {f"table4.{p}.{c}" for p in
                        ("DLRC_vs_radiomics", "DLRC_vs_ResNet152_2D", "radiomics_vs_ResNet152_2D")
                        for c in COHORTS}
    for v in rep.values():
        assert v == "<0.001" or (isinstance(v, float) and 0 <= v <= 1)
    assert list(table["comparison"]) == ["DLRC vs radiomics", "DLRC vs ResNet152_2D",
                                         "radiomics vs ResNet152_2D"]
    # a best model other than ResNet152_2D is recorded under its own name
    _, rows2 = CMP.delong_table(pred, "ResNet50_3D")
    assert "table4.DLRC_vs_ResNet50_3D.train" in K.values(rows2)


def test_format_p():
    assert CMP.format_p(0.0004) == "<0.001"
    assert CMP.format_p(0.31249) == 0.312
    assert np.isnan(CMP.format_p(float("nan")))


def test_roc_plot_draws(fitted):
    _, pred = fitted
    d = M.roc_display(pred, "ResNet152_2D")
    curves, labels = d.curves, d.labels
    assert len(labels) == 9 and labels["label"].str.contains(r"\d\.\d{3} \(\d\.\d{3}-\d\.\d{3}\)").all()
    for (cohort, model), c in curves.groupby(["cohort", "model"], observed=True):
        assert c["fpr"].iloc[0] == 0 and c["tpr"].iloc[-1] == 1 and c["fpr"].is_monotonic_increasing
    from dlrc_lib.core.figures import render

    fig = render(d.plot())
    assert len(fig.axes) >= 3
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_best_model_note():
    assert M.best_model_note("ResNet152_2D") is None
    assert "table2.<cohort>.ResNet50_2D" in M.best_model_note("ResNet50_2D")


def test_table4_undefined_when_auc_has_no_variance(fitted):
    _, pred = fitted
    perfect = pred.copy()
    perfect["prob_dlrc"] = perfect["lnm"].astype(float)  # AUC 1 in every cohort
    perfect["prob_radiomics"] = perfect["lnm"] * 0.9 + 0.05
    table, rows = CMP.delong_table(perfect, "ResNet152_2D")
    rep = K.values(rows)
    shown = CMP.table4_display(table)
    assert shown.loc[0, "Training"] == "undefined"
    assert table.loc[0, "train_note"] != ""
    assert rep["table4.DLRC_vs_radiomics.train"] != rep["table4.DLRC_vs_radiomics.train"]  # NaN


def test_separation_is_recorded_not_printed(recwarn):
    X = pd.DataFrame({"Rad_score": [-3.0, -2, -1, -0.5, 0.5, 1, 2, 3], "DL_score": [0.1, -0.2, 0.3, 0, 0.2, -0.1, 0.4, 0]})
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    m = M.DlrcModel(stepwise=False).fit(X, y)
    assert any("separation" in w for w in m.warnings_)
    assert not [w for w in recwarn if "separation" in str(w.message).lower()]
    tab = m.coef_table()
    assert np.isfinite(tab["coef"]).all()


def test_sra_rows_cover_the_whole_cohort(fitted, study):
    _, pred = fitted
    cut = M.youden_cutoffs(pred)
    sra = (study["lnsd_mm"] >= 10).astype(int)
    fewer = pred.drop(index=pred.index[:10])  # patients without scores
    table, rep = CMP.performance_table(fewer, cut, "ResNet152_2D", sra, study=study)
    tr = table[table["cohort"] == "train"].set_index("model")
    n_train = int((study["cohort"] == "train").sum())
    assert tr.loc["SRA", "n"] == n_train and tr.loc["DLRC", "n"] < n_train
    called = sra[study["cohort"] == "train"] == 1
    y = study.loc[study["cohort"] == "train", "lnm"] == 1
    assert tr.loc["SRA", "TP"] == int((called & y).sum())
