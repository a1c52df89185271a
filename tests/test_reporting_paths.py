"""One way to resolve a notebook's paths, under `dlrc run` and in JupyterLab; exploring a
finished run writes nothing and creates no folder; missing inputs name the path and command."""
from __future__ import annotations

import json
import os

import nbformat
import pandas as pd
import pytest

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.run import paths as P
from dlrc_lib.study import keys as K

PARAMS_CELL = '''run_dir: str = "reports/quick"  # run
seed: int = 20240601  # seed
study_manifest: str = "data/twin/quick/manifest.csv"  # study
dlrc_clinical_p: float = 0.05  # screening
write_artifacts: bool = False  # write'''


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A checkout-like folder: notebooks/05_dlrc.ipynb and a finished run reports/quick."""
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(PARAMS_CELL)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# 05"), cell]
    nbformat.write(nb, str(tmp_path / "notebooks" / "05_dlrc.ipynb"))
    run = tmp_path / "reports" / "quick"
    run.mkdir(parents=True)
    (run / "study_manifest.csv").write_text("patient_id\nP1\n")
    (run / "run.json").write_text(json.dumps({
        "status": "ok", "finished": "2026-01-01T00:00:00+00:00", "params_file": "params/quick.yaml",
        "params": {"run_name": "quick", "seed": 7, "dlrc": {"clinical_p": 0.1}}}))
    for key in (P.ENV_RUNNER, P.ENV_RUN, P.ENV_PARAMS_FILE, P.ENV_CELLS_SHOW_RUN):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def defaults() -> dict:
    ns: dict = {}
    exec(PARAMS_CELL, ns)  # what running the parameters cell does
    ns.pop("__builtins__")
    return ns


def test_resolve_path(tmp_path):
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "only_here.yaml").write_text("x")
    assert P.resolve_path("/abs/x", tmp_path) == "/abs/x"
    assert P.resolve_path("data/m.csv", tmp_path) == str(tmp_path / "data" / "m.csv")
    got = P.resolve_path("only_here.yaml", tmp_path, params_file=tmp_path / "params" / "p.yaml")
    assert got == str(tmp_path / "params" / "only_here.yaml")


def test_interactive_takes_the_run_values_and_keeps_edits(checkout, capsys, monkeypatch):
    monkeypatch.chdir(checkout / "notebooks")  # where a kernel opened from the file browser starts
    ns = defaults()
    ns["dlrc_clinical_p"] = 0.2  # edited in the parameters cell
    art = P.open_run(ns, "05_dlrc", root=checkout)
    assert ns["run_dir"] == str(checkout / "reports" / "quick")
    assert ns["study_manifest"] == str(checkout / "reports" / "quick" / "study_manifest.csv")
    assert ns["seed"] == 7  # from the run
    assert ns["dlrc_clinical_p"] == 0.2  # the user's value is kept ...
    said = capsys.readouterr().out
    assert "dlrc_clinical_p = 0.2 (the run used 0.1)" in said  # ... and reported
    assert "nothing is written" in said
    assert art.write is False and art.run_dir == checkout / "reports" / "quick"
    # the replaced parameters as a table: default, value used, where it came from
    table = art.run.replaced.set_index("parameter")
    assert table.loc["seed"].tolist() == ["20240601", "7", "the run's run.json"]
    assert table.loc["dlrc_clinical_p"].tolist() == ["0.05", "0.2", "edited in this notebook"]
    assert table.loc["study_manifest", "value used"] == "reports/quick/study_manifest.csv"
    assert "run_dir" not in table.index  # the same folder, relative or absolute


def test_exploring_writes_nothing(checkout):
    ns = defaults()
    art = P.open_run(ns, "05_dlrc", root=checkout)
    before = sorted(p.relative_to(checkout) for p in checkout.rglob("*"))
    df = pd.DataFrame({"a": [1.0, 2.0]})
    art.table("t", df)
    art.results(model_file="x")
    art.reproduce([K.row("table2", 1.0, cohort="train", model="DLRC", metric="acc")])
    art.save_frame("predictions", df)
    import matplotlib.pyplot as plt

    fig = art.figure("f", plt.figure())
    assert fig._repr_png_()[:4] == b"\x89PNG"
    art.write_text("model", "m.json", "{}")
    assert sorted(p.relative_to(checkout) for p in checkout.rglob("*")) == before
    pd.testing.assert_frame_equal(art.load_frame("predictions"), df)
    assert art.load_record("05_dlrc").model_file == "x"


def test_write_artifacts_true_writes(checkout):
    ns = defaults()
    ns["write_artifacts"] = True
    art = P.open_run(ns, "05_dlrc", root=checkout)
    art.table("t", pd.DataFrame({"a": [1]}))
    assert (checkout / "reports" / "quick" / "tables" / "t.csv").is_file()


def test_missing_inputs_name_absolute_path_and_command(checkout):
    art = P.open_run(defaults(), "05_dlrc", root=checkout)
    with pytest.raises(P.MissingInput) as err:
        art.load_frame("rad_score")
    msg = str(err.value)
    assert str(checkout / "reports" / "quick" / "data" / "rad_score.parquet") in msg
    assert "notebook 03_radiomics" in msg and "dlrc run --params params/quick.yaml --only 03" in msg
    with pytest.raises(FileNotFoundError, match="--only 04"):
        art.load_record("04_deep_learning")
    (checkout / "reports" / "quick" / "study_manifest.csv").unlink()
    (checkout / "reports" / "quick" / "run.json").unlink()
    with pytest.raises(DlrcError, match="study manifest not found; produce it with `dlrc run --params"):
        P.open_run(defaults(), "05_dlrc", root=checkout)
    ns = defaults()
    ns["run_dir"] = "reports/nowhere"
    with pytest.raises(DlrcError, match=str(checkout / "reports" / "nowhere")):
        P.open_run(ns, "05_dlrc", root=checkout)
    assert not (checkout / "reports" / "nowhere").exists()


def test_dlrc_run_env_selects_the_run(checkout, monkeypatch):
    other = checkout / "reports" / "other"
    other.mkdir()
    (other / "run.json").write_text(json.dumps({"status": "ok", "params": {"seed": 9}}))
    (other / "study_manifest.csv").write_text("patient_id\n")
    monkeypatch.setenv(P.ENV_RUN, str(other))
    ns = defaults()
    P.open_run(ns, "05_dlrc", root=checkout)
    assert ns["run_dir"] == str(other) and ns["seed"] == 9


def test_runner_values_are_used_as_given(checkout, monkeypatch):
    monkeypatch.setenv(P.ENV_RUNNER, "1")
    ns = defaults()
    ns.update(run_dir=str(checkout / "reports" / "new"), seed=3, write_artifacts=True,
              study_manifest=str(checkout / "reports" / "quick" / "study_manifest.csv"))
    art = P.open_run(ns, "05_dlrc", root=checkout)
    assert ns["seed"] == 3 and art.write and art.run_dir == checkout / "reports" / "new"
    table = art.run.replaced.set_index("parameter")
    assert set(table.index) == {"run_dir", "seed", "study_manifest"}
    assert table.loc["seed", "from"] == "dlrc run (the runner)" and table.loc["run_dir", "value used"] == "reports/new"
    # a manifest study's cells show the run's values already (the runner says so): nothing listed
    monkeypatch.setenv(P.ENV_CELLS_SHOW_RUN, "1")
    assert P.open_run(dict(ns), "05_dlrc", root=checkout).run.replaced.empty
    assert not (checkout / "reports" / "new").exists()  # no folder until something is written


def test_runner_injects_resolved_paths(tmp_path):
    from dlrc_lib.core.config import Params
    from dlrc_lib.run.runner import notebook_inputs

    inputs = notebook_inputs(Params(), tmp_path / "p.yaml", tmp_path / "run", tmp_path / "m.csv", root=tmp_path)
    assert inputs["write_artifacts"] is True
    assert inputs["cache_dir"] == str(tmp_path / ".dlrc_cache")
    # a file that is not under root resolves to the package's own (params/ of the checkout or the wheel)
    from dlrc_lib.core.resources import packaged

    assert inputs["radiomics_settings"] == str(packaged("params", "radiomics.yaml"))
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "radiomics.yaml").write_text("{}\n")
    inputs = notebook_inputs(Params(), tmp_path / "p.yaml", tmp_path / "run", tmp_path / "m.csv", root=tmp_path)
    assert inputs["radiomics_settings"] == str(tmp_path / "params" / "radiomics.yaml")


def test_last_finished_run(checkout):
    failed = checkout / "reports" / "broken"
    failed.mkdir()
    (failed / "run.json").write_text(json.dumps({"status": "failed", "finished": "2027-01-01"}))
    assert P.last_finished_run(checkout) == checkout / "reports" / "quick"
    newer = checkout / "reports" / "paper"
    newer.mkdir()
    (newer / "run.json").write_text(json.dumps({"status": "ok", "finished": "2026-06-01T00:00:00+00:00"}))
    assert P.last_finished_run(checkout) == newer


def test_lab_without_a_run_says_one_line(tmp_path, monkeypatch, capsys):
    from dlrc_lib.run.cli import main
    from dlrc_lib.run import commands

    monkeypatch.setattr(commands, "project_root", lambda: tmp_path)
    assert main(["lab"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dlrc lab: error: no finished run under {tmp_path / 'reports'}: run `make quick` first"]


def test_lab_environment(tmp_path, monkeypatch):
    from dlrc_lib.run.lab import lab_environment

    monkeypatch.setenv("DLRC_HEADLESS", "1")
    monkeypatch.setenv(P.ENV_RUNNER, "1")
    env = lab_environment(tmp_path / "run", tmp_path)
    assert env[P.ENV_RUN] == str(tmp_path / "run") and "DLRC_HEADLESS" not in env and P.ENV_RUNNER not in env
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path)


def test_people_numbers():
    from dlrc_lib.reporting.display import people_number

    assert people_number(5.551115e-17) == "0" and people_number(0.0) == "0"
    assert people_number(0.12345) == "0.123" and people_number(2.3e-5) == "2.3e-05"
    assert people_number(100.0) == "100"
