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
    # each score also as the risk its own model gives
    assert np.allclose(tab["Radiomics model's risk (%)"], 100 / (1 + np.exp(-tab["Rad_score"])), atol=0.051)
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
    assert list(W.cutoff_summary(pred, cut, "ResNet50_2D")["model"].unique()) == ["Radiomics", "ResNet50_2D", "DLRC"]
    tr = pred[pred["cohort"] == "train"]
    row = tab[(tab["model"] == "DLRC") & (tab["cohort"] == "Training")].iloc[0]
    assert row["TP"] + row["FN"] == int(tr["lnm"].sum())
    assert row["TP"] == int(((tr["prob_dlrc"] >= cut["dlrc"]) & (tr["lnm"] == 1)).sum())
    # threshold 0: everyone positive, NPV undefined (0/0), never an error
    t0 = W.cutoff_table(pred, "dlrc", 0.0)
    assert (t0["SEN"] == 100).all() and t0["NPV"].isna().all()


def _by_class(box, css):
    """The widget under ``box`` carrying the CSS class ``css``."""
    stack = [box]
    while stack:
        w = stack.pop()
        if css in getattr(w, "_dom_classes", ()):
            return w
        stack.extend(getattr(w, "children", ()))
    raise AssertionError(f"no widget with class {css}")


def test_calculator_widget_shows_points_and_the_library_risk(fitted):
    pytest.importorskip("ipywidgets")
    fit, _, nom, _ = fitted
    calc = W.nomogram_calculator(nom, force_static=False)
    out = _by_class(calc, "dlrc-calc-out")
    assert "<th>Points</th>" in out.value and "Input value" in out.value
    # one control per fitted term; a binary term is a toggle
    for t in nom.terms:
        control = _by_class(calc, f"dlrc-term-{t}")
        assert (type(control).__name__ == "ToggleButtons") == (t in nom.binary)
    # a score's slider is its own model's risk in percent, over the scores' drawn range
    dl = _by_class(calc, "dlrc-term-DL_score")
    lo, hi = nom.ranges["DL_score"]
    assert dl.min == pytest.approx(100 / (1 + np.exp(-lo))) and dl.max == pytest.approx(100 / (1 + np.exp(-hi)))
    assert "risk (%)" in dl.description
    before = out.value
    _by_class(calc, "dlrc-term-c_LNM").value = 1.0
    dl.value = dl.max
    assert out.value != before
    patient = {t: float(_by_class(calc, f"dlrc-term-{t}").value) for t in nom.terms}
    for t in ("Rad_score", "DL_score"):  # back from percent to the score the model takes
        patient[t] = float(np.log(patient[t] / (100 - patient[t])))
    assert patient["DL_score"] == pytest.approx(hi)
    X = pd.DataFrame([patient])
    risk = float(fit.model.predict_proba(X).iloc[0])
    assert f"data-field='risk'>{100 * risk:.1f} %<" in out.value


def test_absent_clinical_term_is_explained(fitted):
    fit, _, nom, _ = fitted
    assert W.absent_term_note(nom, fit.screening) is None  # c_LNM is in this model
    without = Nomogram(coef={k: v for k, v in nom.coef.items() if k != "c_LNM"},
                       ranges=nom.ranges)
    screening = pd.DataFrame([{"variable": "c_lnm", "term": "c_LNM", "p": 0.2, "p_shown": "0.200",
                               "candidate": False, "note": "p >= 0.05"}])
    note = W.absent_term_note(without, screening)
    assert "p = 0.200" in note and "not in this fitted model" in note
    screening.loc[0, "candidate"] = True
    assert "stepwise" in W.absent_term_note(without, screening)


def test_cutoff_explorer_starts_exactly_at_the_training_cutoff(fitted):
    pytest.importorskip("ipywidgets")
    _, pred, _, cut = fitted
    exp = W.cutoff_explorer(pred, cut, best_model="ResNet50_2D", force_static=False)
    thr = _by_class(exp, "dlrc-threshold")
    out = _by_class(exp, "dlrc-cutoff-out")
    assert thr.value == cut["dlrc"] and not thr.readout
    assert "the training cut-off" in out.value and out.value.count(f"{cut['dlrc']:.4f}") == 1
    assert " %<" in out.value
    # the slider's grid passes through the cut-off
    k = (cut["dlrc"] - thr.min) / thr.step
    assert abs(k - round(k)) < 1e-6
    model = exp.children[0].children[0]
    assert ("ResNet50_2D", "dl") in model.options
    model.value = "dl"
    assert thr.value == cut["dl"] and "ResNet50_2D" in out.value
    thr.value = thr.value + thr.step
    tab = W.cutoff_table(pred, "dl", thr.value).set_index("cohort")
    assert f'data-field="TP">{tab.loc["Training", "TP"]}<' in out.value
    roc = _by_class(exp, "dlrc-roc-out").value
    assert roc.count('class="dlrc-roc-point"') == 3


def test_roc_points_are_the_confusion_rates(fitted):
    _, pred, _, cut = fitted
    pts = W.roc_points(pred, "dlrc", "train")
    assert pts.iloc[0][["fpr", "tpr"]].tolist() == [0, 0] and pts.iloc[-1][["fpr", "tpr"]].tolist() == [1, 1]
    row = W.cutoff_table(pred, "dlrc", cut["dlrc"]).iloc[0]
    svg = W.roc_svg(pred, "dlrc", cut["dlrc"])
    assert f'data-tpr="{row["TP"] / (row["TP"] + row["FN"]):.6f}"' in svg


def test_snapped_range_contains_the_cut():
    lo, hi = W.snapped_range(0.31234567)
    assert 0 <= lo < W.THRESHOLD_STEP and 1 - W.THRESHOLD_STEP < hi <= 1
    k = (0.31234567 - lo) / W.THRESHOLD_STEP
    assert abs(k - round(k)) < 1e-9


def test_decision_curve_window(fitted):
    from dlrc_lib.evaluation.decision_curve import decision_curves

    _, pred, _, _ = fitted
    models = {"Radiomics": "prob_radiomics", "DL": "prob_dl", "DLRC": "prob_dlrc"}
    curves = decision_curves(pred, models, np.round(np.arange(0, 100) / 100, 10))
    win = W.decision_curve_window(curves, 0.1, 0.4, ["DLRC", "Treat all", "Treat none"])
    assert set(win["strategy"]) - {"DLRC", "Treat all", "Treat none"} <= {s for s in win["strategy"]
                                                                         if s.startswith(W.TIED)}
    for cohort, part in win.groupby("cohort"):  # ties counted once: the shares add up to the range
        assert part["highest in (% of range)"].sum() == pytest.approx(100.0, abs=0.2)
    # a range where treat-none and a model calling nobody positive tie at 0: one row, named
    # (the radiomics model gives no internal patient more than 0.71)
    high = W.decision_curve_window(curves, 0.8, 0.95, ["Radiomics", "Treat none"])
    tie = high[high["strategy"].str.startswith(W.TIED)].set_index("cohort")
    assert tie.loc["Internal validation", "strategy"] == f"{W.TIED} (Radiomics, Treat none)"
    assert tie.loc["Internal validation", "highest in (% of range)"] == 100.0
    for cohort, part in high.groupby("cohort"):
        assert part["highest in (% of range)"].sum() == pytest.approx(100.0, abs=0.2)
    want = curves[(curves["cohort"] == "train") & (curves["model"] == "DLRC") & np.isclose(curves["threshold"], 0.4)]
    got = win[(win["cohort"] == "Training") & (win["strategy"] == "DLRC")]["net benefit at 40%"].iloc[0]
    assert got == pytest.approx(float(want["net_benefit"].iloc[0]))
    monkey = W.decision_curve_explorer(curves, force_static=True)
    assert "net benefit at 5%" in monkey.columns and "net benefit at 60%" in monkey.columns


def test_decision_curve_widget_follows_the_range(fitted):
    pytest.importorskip("ipywidgets")
    from dlrc_lib.evaluation.decision_curve import decision_curves

    _, pred, _, _ = fitted
    curves = decision_curves(pred, {"DLRC": "prob_dlrc"}, np.round(np.arange(0, 100) / 100, 10))
    view = W.decision_curve_explorer(curves, force_static=False)
    rng, out = _by_class(view, "dlrc-dca-range"), _by_class(view, "dlrc-dca-out")
    rng.value = (0.2, 0.3)
    assert "net benefit at 20%" in out.value and "net benefit at 30%" in out.value
    assert _by_class(view, "dlrc-dca-model-0").description == "DLRC"


def test_calibration_explorer(fitted):
    pytest.importorskip("ipywidgets")
    from dlrc_lib.evaluation.calibration import calibration_table

    _, pred, _, _ = fitted
    models = {"DLRC": "prob_dlrc"}
    view = W.calibration_explorer(pred, models, groups=10, force_static=False)
    g, out = _by_class(view, "dlrc-hl-groups"), _by_class(view, "dlrc-hl-out")
    g.value = 5
    want = calibration_table(pred, models, groups=5)
    assert f'data-field="p">{want["hl_p_text"].iloc[0]}<' in out.value


def test_rates_for_people():
    tab = pd.DataFrame({"cohort": ["Training"], "TP": [3], "SEN": [85.71], "NPV": [np.nan]})
    shown = W.for_people(tab)
    assert shown.loc[0, "SEN"] == "85.7 %" and shown.loc[0, "NPV"] == "n/a"
