"""Nomogram calculator and cut-off explorer: static under papermill, widgets otherwise."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


from dlrc_lib.model import dlrc as M
from dlrc_lib.reporting import widgets as W
from dlrc_lib.model.nomogram import Nomogram
from model_synthetic import make_study


@pytest.fixture(scope="module")
def fitted():
    study = make_study()
    fit = M.fit_dlrc(study[["cohort", "lnm", "Rad_score", "DL_score"]], study)
    pred = M.predictions_frame(study, study["Rad_score"], study["DL_score"], fit.prob)
    nom = Nomogram.from_model(fit.model.coef_, fit.design[study["cohort"] == "train"])
    return fit, pred, nom, M.youden_cutoffs(pred)


def test_headless_flag(monkeypatch):
    monkeypatch.setenv("DLRC_HEADLESS", "1")
    assert W.headless()
    monkeypatch.delenv("DLRC_HEADLESS")
    assert W.headless()  # plain pytest: no IPython kernel, hence no frontend


def test_static_calculator(monkeypatch, fitted):
    fit, _, nom, _ = fitted
    monkeypatch.setenv("DLRC_HEADLESS", "1")
    tab = W.nomogram_calculator(nom)
    assert isinstance(tab, pd.DataFrame) and len(tab) == 2 * 3 * 3
    assert set(tab["c_LNM"]) == {0.0, 1.0}
    # the risk shown is the model's probability for the same values
    row = tab.iloc[5]
    X = pd.DataFrame([{t: row[t] for t in nom.terms}])
    assert row["risk"] == pytest.approx(float(fit.model.predict_proba(X).iloc[0]), abs=5e-4)


def test_static_cutoff_explorer(monkeypatch, fitted):
    _, pred, _, cut = fitted
    monkeypatch.setenv("DLRC_HEADLESS", "1")
    tab = W.cutoff_explorer(pred, cut)
    assert isinstance(tab, pd.DataFrame)
    assert list(tab["model"].unique()) == ["Radiomics", "Deep learning", "DLRC"]
    tr = pred[pred["cohort"] == "train"]
    row = tab[(tab["model"] == "DLRC") & (tab["cohort"] == "Training")].iloc[0]
    assert row["TP"] + row["FN"] == int(tr["lnm"].sum())
    assert row["TP"] == int(((tr["prob_dlrc"] >= cut["dlrc"]) & (tr["lnm"] == 1)).sum())
    # threshold 0: everyone positive, NPV undefined (0/0), never an error
    t0 = W.cutoff_table(pred, "dlrc", 0.0)
    assert (t0["SEN"] == 100).all() and t0["NPV"].isna().all()


def test_widgets_build(fitted):
    pytest.importorskip("ipywidgets")
    _, pred, nom, cut = fitted
    calc = W.nomogram_calculator(nom, force_static=False)
    html = calc.children[-1]
    before = html.value
    calc.children[-2].value = 1.0  # c_LNM -> Yes
    assert html.value != before and "Total points" in html.value
    exp = W.cutoff_explorer(pred, cut, force_static=False)
    exp.children[1].value = 0.5
    assert "<table" in exp.children[2].value
