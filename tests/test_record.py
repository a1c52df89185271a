"""The run record: what each notebook records, and a run folder read as one object."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from claimsdata import make_run
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.record import (RECORD_VERSION, RECORDS, VERSION_KEY, DeepRecord, DlrcRecord, NotRecorded,
                             RunRecord, parse_results, record_class)
from dlrc_lib.run.artifacts import Artifacts
from dlrc_lib.study import keys as K

ROOT = Path(__file__).resolve().parents[1]

# a value of each kind a record field holds
SAMPLES = {"int": 3, "float": 0.25, "str": "x", "bool": True, "dict": {"a": 1}, "list": [{"a": 1}]}


def _sample(annotation: str):
    for kind, value in SAMPLES.items():
        if kind in annotation.lower():
            return value
    return ["any"] if "Rows" in annotation else "any"


@pytest.mark.parametrize("stem", list(RECORDS))
def test_each_record_round_trips_through_its_results_file(tmp_path, stem):
    cls = RECORDS[stem]
    values = {f: _sample(str(cls.__dataclass_fields__[f].type)) for f in cls.field_names()
              if f not in ("reproduced", "warnings", "provenance")}
    art = Artifacts(tmp_path, notebook=stem)
    art.results(**values)
    art.reproduce([K.row("table1", 1, cohort="train")])
    art.provenance(seconds=1.0)
    data = json.loads((tmp_path / "results" / f"{stem}.json").read_text())
    assert data[VERSION_KEY] == RECORD_VERSION
    rec = RunRecord.load(tmp_path).notebook(stem)
    assert type(rec) is cls and rec.NOTEBOOK == stem
    assert {f: getattr(rec, f) for f in values} == values
    assert rec.reproduced == {"table1.n.train": 1} and rec.provenance == {"seconds": 1.0}
    assert cls.from_dict(rec.to_dict()) == rec
    assert rec.to_dict() == data
    other = tmp_path / "copy"
    Artifacts(other, notebook=stem).record(rec)
    assert RunRecord.load(other).notebook(stem) == rec


def test_a_file_without_a_version_is_read_and_an_unknown_version_refused_in_one_line(tmp_path):
    (tmp_path / "results").mkdir()
    old = tmp_path / "results" / "05_dlrc.json"
    old.write_text(json.dumps({"best_model": "ResNet50_2D", "terms": ["Rad_score"]}))
    rec = RunRecord.load(tmp_path)
    assert rec.dlrc.best_model == "ResNet50_2D" and rec.dlrc.dlrc_terms == ["Rad_score"]
    for version in (RECORD_VERSION + 1, "1", 0):
        old.write_text(json.dumps({VERSION_KEY: version, "best_model": "x"}))
        with pytest.raises(DlrcError) as err:
            RunRecord.load(tmp_path)
        msg = str(err.value)
        assert "\n" not in msg and str(old) in msg and f"record version {version!r}" in msg


def test_a_notebook_that_did_not_run_has_no_record(tmp_path):
    (tmp_path / "results").mkdir()
    Artifacts(tmp_path, notebook="00_study").results(n_patients=4)
    rec = RunRecord.load(tmp_path)
    assert rec.run is None and rec.study.n_patients == 4
    assert rec.dlrc is None and rec.deep is None and rec.sensitivity is None and rec.best_dl is None
    with pytest.raises(NotRecorded, match="notebook 05_dlrc has no results in this run"):
        rec.get("05_dlrc", "dlrc_terms")
    with pytest.raises(NotRecorded, match=r"results/00_study.json has no n_scanners"):
        rec.get("00_study", "n_scanners")
    with pytest.raises(DlrcError, match="no such run folder"):
        RunRecord.load(tmp_path / "nowhere")


def test_deep_learning_off_keeps_its_none_best_model():
    rec = DeepRecord.from_dict({"deep_learning": "off", "best_model": None})
    assert rec.off and rec.get("best_model", "missing") is None
    assert record_class("04") is DeepRecord and record_class("00_a").__name__ == "NotebookRecord"
    assert parse_results("00_a", {"mw": 1}, "x").extra == {"mw": 1}


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Read a run's results in your own notebook.*?```python\n(.*?)```", text, re.S)
    assert block, "README: the section 'Read a run's results in your own notebook' with a python block"
    return block.group(1)


def test_the_readme_example_runs_on_a_run_folder(tmp_path, monkeypatch):
    run = make_run(tmp_path / "reports" / "quick")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(readme_example(), ns)  # noqa: S102 - the README's own example
    r = ns["r"]
    assert isinstance(r, RunRecord) and r.run_dir == Path("reports/quick")
    assert r.run.status == "ok" and r.run.git_commit == "abc" and r.run.param("study.source") == "manifest"
    auc = r.reproduced["table2.external.DLRC.auc"]
    assert r.dlrc.auc["external"] == auc[0] and r.dlrc.auc_ci["external"] == tuple(auc[1:3])
    assert r.radiomics.selected and r.dlrc.dlrc_terms == ["c_LNM", "DL_score", "Rad_score"]
    assert r.best_dl == "ResNet152_2D" and r.calibration is not None and r.sensitivity is None
    assert run.is_dir()


def test_dlrc_auc_is_built_from_table2():
    rec = DlrcRecord(reproduced={"table2.train.DLRC.auc": [0.8, 0.7, 0.9], "table2.external.DLRC.acc": 70.0})
    assert rec.auc == {"train": 0.8} and rec.auc_ci == {"train": (0.7, 0.9)}
    assert rec.table2("DLRC", "acc") == {"external": 70.0}
