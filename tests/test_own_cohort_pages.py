"""A user's own cohort, piece by piece: DLRC without deep learning (``deep.models: []``), Fig. 1's
flow table, Table 1 and the paper tables without an external cohort, the paper's own notes only on
the twin's pages, and the run record of a manifest study. (End to end: tests/test_own_study.py.)"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlrc_lib.core.config import Params, ParamsError, load_params
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.evaluation import cohort_table as CT
from dlrc_lib.evaluation import comparison as CMP
from dlrc_lib.evaluation.calibration import model_columns
from dlrc_lib.model import dlrc as M
from dlrc_lib.model.export import build_model_document
from dlrc_lib.model.predict import score_from_scores
from dlrc_lib.reporting import claims as C
from dlrc_lib.reporting.index_page import write_comparison_csv
from dlrc_lib.reporting.paper_tables import paper_tables, run_cohorts
from dlrc_lib.reporting.report import load_published
from dlrc_lib.run.runner import recorded_params, study_cells
from dlrc_lib.scores.deep_models import switched_off_results
from dlrc_lib.study.flow import flow_exclusions, read_flow
from dlrc_lib.study.plan import plan_problems
from dlrc_lib.study.validate import validate_manifest
from dlrc_lib.study import keys as K
from dlrc_lib.study.schema import DLRC, RADIOMICS
from model_synthetic import make_study
from test_cohort_table import study_from_published

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ DLRC without deep learning
@pytest.fixture(scope="module")
def no_deep():
    study = make_study()
    inputs = M.score_inputs(study[["cohort", "lnm", "Rad_score"]], None, study)
    fit = M.fit_dlrc(inputs.scores, study)
    pred = M.predictions_frame(study, inputs.scores["Rad_score"], inputs.scores.get("DL_score"), fit.prob)
    return study, inputs, fit, pred


def test_without_deep_models_dlrc_is_radiomics_and_clinical(no_deep):
    study, inputs, fit, pred = no_deep
    assert inputs.best_model is None and "DL_score" not in inputs.scores
    assert inputs.summary.startswith("deep learning switched off (deep.models: [])")
    assert "DL_score" not in fit.model.candidates_ and "Rad_score" in fit.model.terms_
    assert not {"DL_score", "prob_dl"} & set(pred.columns)
    cut = M.youden_cutoffs(pred)
    assert set(cut) == {"radiomics", "dlrc"}
    table2, rep2 = CMP.performance_table(pred, cut, None)
    assert set(table2["model"]) == {RADIOMICS, DLRC}
    table4, rep4 = CMP.delong_table(pred, None)
    assert list(table4["comparison"]) == ["DLRC vs radiomics"] and all("DLRC_vs_radiomics" in k for k in K.values(rep4))
    assert M.roc_display(pred, None).models == [RADIOMICS, DLRC]
    assert M.best_model_note(None) is None
    assert "deep learning switched off" in CMP.table2_caption(None) and "best DL model" in CMP.table2_caption("ResNet50_2D")
    assert model_columns(None, available=pred.columns) == {"Radiomics": "prob_radiomics", "DLRC": "prob_dlrc"}
    assert switched_off_results()["deep_learning"] == "off" and switched_off_results()["best_model"] is None


def test_a_model_file_without_deep_learning_scores_new_patients(no_deep):
    study, inputs, fit, pred = no_deep
    nomogram = M.nomogram_for(fit, inputs.scores)
    doc = build_model_document(
        run_name="r", seed=1, sequences=["CET1"], radiomics_settings_file="r.yaml", radiomics_settings_text="",
        radiomics_state={}, deep_model=None, deep_preprocessing={}, deep_weights=None, deep_state=None,
        best_model_rule=None, harmonisation={"mode": "none", "batch": "scanner"}, dlrc=fit.model.to_dict(),
        clinical=fit.clinical, cutoffs=M.youden_cutoffs(pred), nomogram=nomogram.to_dict())
    assert doc["deep"]["model"] is None and "dl" not in doc["probability"]
    out = score_from_scores(doc, study.assign(scanner="S1"), study["Rad_score"], None)
    assert "DL_score" not in out and np.allclose(out["prob_dlrc"], pred["prob_dlrc"].loc[out.index])


def test_no_deep_models_needs_no_external_cohort_for_the_best_model_rule():
    raw = pd.DataFrame({"patient_id": [f"P{i}" for i in range(30)], "lnm": [i % 3 == 0 for i in range(30)]})
    cohorts = pd.Series(["train"] * 20 + ["internal"] * 10)
    params = Params()
    assert any(w == "deep.best_model_rule" for _, w, _ in plan_problems(raw, cohorts, params))
    params.deep.models = []
    assert not any(w == "deep.best_model_rule" for _, w, _ in plan_problems(raw, cohorts, params))


def test_the_run_keeps_the_deep_cells_its_parameters_call_for():
    nb = ROOT / "notebooks" / "04_deep_learning.ipynb"
    on = study_cells(nb, "twin", deep=True).cells
    off = study_cells(nb, "twin", deep=False).cells
    tags = lambda cells: {t for c in cells for t in c.get("metadata", {}).get("tags", [])}  # noqa: E731
    assert "deep-off" not in tags(on) and "deep-learning" in tags(on)
    assert "deep-learning" not in tags(off) and any("switched_off_results" in c.source for c in off)
    assert not any("extract_study" in c.source for c in off)


# ------------------------------------------------------------------ the run record of a manifest study
def test_run_json_of_a_manifest_study_has_no_twin_keys(tmp_path):
    (tmp_path / "m.csv").write_text("patient_id\n")
    (tmp_path / "p.yaml").write_text("study: {source: manifest, manifest: m.csv}\ndeep: {models: []}\n")
    record = recorded_params(load_params(tmp_path / "p.yaml"))
    assert not {"twin_dir", "scale", "exclusions", "signal"} & set(record["study"])
    assert record["deep"]["models"] == [] and record["study"]["source"] == "manifest"
    Params.model_validate(record)  # what lab and checklist read back
    assert "twin_dir" in recorded_params(load_params(ROOT / "params" / "quick.yaml"))["study"]


# ------------------------------------------------------------------ Fig. 1's flow table
def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_flow_table_gives_fig1_its_exclusions(tmp_path):
    flow = _write(tmp_path / "flow.csv", "step,n\nenrolled,40\nPresurgical treatment,6\nPoor-quality MRI,4\n")
    f = read_flow(flow)
    assert f.enrolled == 40 and f.exclusions == {"Presurgical treatment": 6, "Poor-quality MRI": 4} and f.included == 30
    assert flow_exclusions(str(flow), {"ignored": 1}, 30) == f.exclusions
    assert flow_exclusions(None, {"twin": 3}, 30) == {"twin": 3}


@pytest.mark.parametrize("text, message", [
    ("reason,count\nenrolled,40\n", "must have the columns step,n"),
    ("step,n\nPresurgical treatment,6\n", "first row must be 'enrolled'"),
    ("step,n\nenrolled,40\nPoor MRI,four\n", "row 3 (Poor MRI): n must be a whole number of patients, got 'four'"),
    ("step,n\nenrolled,40\nPoor MRI,-2\n", "row 3 (Poor MRI): n must not be negative"),
    ("step,n\nenrolled,40\nPoor MRI,2\nPoor MRI,3\n", "row 4 (Poor MRI): this step is listed more than once"),
])
def test_a_wrong_flow_table_is_one_line(tmp_path, text, message):
    flow = _write(tmp_path / "flow.csv", text)
    with pytest.raises(DlrcError) as err:
        read_flow(flow)
    assert message in str(err.value) and str(flow) in str(err.value) and "\n" not in str(err.value)


def test_flow_counts_must_add_up_to_the_manifest(tmp_path):
    with pytest.raises(DlrcError, match=r"enrolled 40 minus 10 excluded is 30, but the manifest has 29 patients"):
        flow_exclusions(str(_write(tmp_path / "f.csv", "step,n\nenrolled,40\nx,10\n")), {}, 29)
    manifest = _write(tmp_path / "manifest.csv", "patient_id,lnm\n" + "".join(f"P{i},{i % 2}\n" for i in range(3)))
    _write(tmp_path / "flow.csv", "step,n\nenrolled,5\nOther malignancy,1\n")
    (tmp_path / "p.yaml").write_text("study: {source: manifest, manifest: manifest.csv}\n")
    params = load_params(tmp_path / "p.yaml")
    assert params.study.flow == str(tmp_path / "flow.csv")  # found beside the manifest
    problems = [str(p) for p in validate_manifest(manifest, params, check_images=False, cache=False)]
    flow_lines = [p for p in problems if "study.flow" in p]
    assert len(flow_lines) == 1 and "enrolled 5 minus 1 excluded is 4, but the manifest has 3 patients" in flow_lines[0]
    (tmp_path / "twin.yaml").write_text(f"study: {{flow: {tmp_path / 'flow.csv'}}}\n")
    with pytest.raises(ParamsError, match="study.flow is a manifest study's flow table"):
        load_params(tmp_path / "twin.yaml")


def test_fig1_orders_centres_by_their_cohorts_and_wraps_long_names():
    links = {("Zeta General Hospital", "train"): 5, ("Zeta General Hospital", "internal"): 2,
             ("Alpha University Hospital", "external"): 3, ("B", "external"): 1}
    assert CT.centre_order(["Alpha University Hospital", "B", "Zeta General Hospital"], links) == \
        ["Zeta General Hospital", "Alpha University Hospital", "B"]
    label = CT.centre_label("The Second Affiliated Hospital of Guangzhou Medical University", 9, 16)
    assert all(len(line) <= 16 for line in label.splitlines()) and label.endswith("(n = 9)")
    assert CT.centre_label("B", 4, 16) == "Centre B\n(n = 4)"


# ------------------------------------------------------------------ one centre, no external cohort
@pytest.fixture(scope="module")
def no_external():
    study = study_from_published()
    return study[study["cohort"] != "external"].reset_index(drop=True)


def test_table1_of_a_study_without_an_external_cohort_has_no_external_columns(no_external):
    t1 = CT.compute_table1(no_external)
    assert t1.cohorts == ["train", "internal"]
    table = CT.build_table1(no_external, t1)
    assert not [c for c in table.columns if c.startswith("External")]
    assert len(CT.lnm_rate_table(no_external, t1)) == 2
    assert "External" not in CT.styled_table1_html(table)
    fig = CT.flow_diagram(no_external)
    assert not any("External" in t.get_text() for t in fig.axes[0].texts)


def _view(tmp_path: Path, source: str, reproduced: dict) -> C.RunView:
    published = load_published(ROOT / "params" / "published_values.yaml")
    run = {"params": {"study": {"source": source}}}
    return C.RunView(run_dir=tmp_path, run=run, published=published, reproduced=reproduced,
                     settings={}, study_source=source, best_dl=None, weights_problem=None)


def test_paper_tables_of_a_study_without_an_external_cohort(tmp_path, no_external):
    reproduced = K.values(CT.table1_rows(CT.compute_table1(no_external)))
    view = _view(tmp_path, "manifest", reproduced)
    assert list(run_cohorts(view)) == ["train", "internal"]
    for table in paper_tables(view):
        assert not any("External" in g for g in table.groups), table.key
        assert not any("External" in label for label, _ in table.supergroups), table.key
        assert not any(r.label.startswith("External") for r in table.rows), table.key
    assert list(run_cohorts(_view(tmp_path, "twin", {}))) == ["train", "internal", "external"]


def test_the_papers_own_inconsistency_is_noted_on_twin_runs_only(tmp_path):
    published = ROOT / "params" / "published_values.yaml"
    for source, noted in (("twin", True), ("manifest", False)):
        run_dir = tmp_path / source
        (run_dir / "tables").mkdir(parents=True)
        table = write_comparison_csv(run_dir, _view(run_dir, source, {}), published)
        notes = table.loc[table["note"].astype(str) != "", "note"]
        assert bool(len(notes)) == noted, (source, list(notes))
        assert ("0.542" in (run_dir / "tables" / "paper_vs_reproduction.csv").read_text()) == noted
