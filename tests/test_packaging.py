"""The files that come with dlrc, found the same way in a checkout and in an installed wheel.

The wheel itself (built, installed into a new environment outside the checkout and run there)
is tested by `.ci/wheel_test.sh`, which `make test` runs before this suite. Here: the finder
(:mod:`dlrc_lib.core.resources`) in the checkout and in the wheel's layout (the package's
notebooks and parameter files under ``dlrc_lib/_data``, no checkout), the parameter files named
on the command line, ``dlrc --version``, and ``dlrc lab``'s writable copy of the notebooks.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dlrc_lib.core import resources as R
from dlrc_lib.core.config import ParamsError, load_params
from dlrc_lib.run.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_in_the_checkout_the_files_are_the_repositorys_own(tmp_path, monkeypatch):
    assert R.data_root() == ROOT and R.checkout() == ROOT and R.work_root() == ROOT
    monkeypatch.chdir(tmp_path)
    for spec in ("quick", "quick.yaml", "params/quick.yaml"):
        assert R.params_file(spec) == ROOT / "params" / "quick.yaml"
    assert R.params_file(ROOT / "params" / "teach.yaml") == ROOT / "params" / "teach.yaml"
    (tmp_path / "quick.yaml").write_text("run_name: mine\n")
    assert R.params_file("quick.yaml") == Path("quick.yaml")  # a file in the working directory comes first
    assert load_params("quick.yaml").run_name == "mine"
    assert load_params("quick").run_name == "quick"


def test_an_unknown_parameter_file_names_the_packages_own(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamsError, match=r"nope: parameter file not found .*quick, teach, paper"):
        load_params("nope")
    for argv in (["synth", "--params", "nope"], ["run", "--params", "nope"], ["extract", "--params", "nope"],
                 ["validate", "--params", "nope"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "parameter file not found" in err[0] and "quick, teach, paper" in err[0], err


def test_every_verb_takes_a_packaged_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["synth", "--params", "quick", "--clinical-only", "--out", str(tmp_path / "twin")]) == 0
    assert (tmp_path / "twin" / "manifest.csv").is_file()
    assert main(["weights", "status", "--params", "quick"]) == 0
    capsys.readouterr()


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    out = capsys.readouterr().out.strip()
    from dlrc_lib import __version__

    assert out.startswith(f"dlrc {__version__}")
    if (ROOT / ".git").exists():
        assert re.search(r"\(git [0-9a-f]{12}\+?, ", out), out


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """The wheel's layout: the notebooks and parameter files under dlrc_lib/_data, no checkout,
    a working folder of one's own."""
    data = tmp_path / "site-packages" / "dlrc_lib" / "_data"
    shutil.copytree(ROOT / "params", data / "params", ignore=shutil.ignore_patterns("bad.yaml"))
    shutil.copytree(ROOT / "notebooks", data / "notebooks")
    monkeypatch.setattr(R, "_INSTALLED", data)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return data, work


def test_installed_the_files_are_the_packages_and_runs_go_to_the_working_folder(installed):
    data, work = installed
    assert R.data_root() == data and R.checkout() is None and R.work_root() == work
    p = load_params("quick")
    assert p._source == data / "params" / "quick.yaml"
    assert p.radiomics.settings == str(data / "params" / "radiomics_quick.yaml")
    assert p.published_values == str(data / "params" / "published_values.yaml")
    assert p.cache_dir == str(work / ".dlrc_cache")  # never inside site-packages
    assert str(p.twin_dir) == str(work / "data" / "twin" / "quick")
    assert load_params("paper").sweep.grid is None or Path(load_params("paper").sweep.grid).is_relative_to(data)

    from dlrc_lib.run.layout import list_notebooks, run_command

    assert [nb.parent for nb in list_notebooks()] == [data / "notebooks"] * len(list_notebooks())
    assert run_command(str(data / "params" / "quick.yaml"), "05_dlrc") == "dlrc run --params quick --only 05"
    from dlrc_lib.reporting.claims import default_claims_file

    assert default_claims_file() == data / "params" / "claims.yaml"


def test_installed_a_study_of_ones_own_takes_the_packages_defaults(installed):
    data, work = installed
    assert main(["init", "mystudy"]) == 0
    (work / "mystudy" / "manifest.csv").write_text("patient_id\n")
    (work / "mystudy" / "p.yaml").write_text(
        "study: {source: manifest, manifest: manifest.csv}\nradiomics: {settings: params/radiomics_quick.yaml}\n")
    for name in ("params.yaml", "p.yaml"):
        p = load_params(work / "mystudy" / name)
        assert p.published_values == str(data / "params" / "published_values.yaml")
        assert p.cache_dir == str(work / "mystudy" / ".dlrc_cache")
    assert load_params(work / "mystudy" / "p.yaml").radiomics.settings == str(data / "params" / "radiomics_quick.yaml")


def test_installed_lab_opens_a_writable_copy_beside_the_run(installed, monkeypatch, capsys):
    import json

    from dlrc_lib.run import commands

    data, work = installed
    run = work / "reports" / "quick"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"status": "ok", "finished": "2026-01-01T00:00:00+00:00"}))
    (run / "lab-notebooks").mkdir()
    (run / "lab-notebooks" / "05_dlrc.ipynb").write_text("edited")
    calls = []
    monkeypatch.setattr(commands.subprocess, "call", lambda cmd, cwd, env: calls.append((cmd, cwd, env)) or 0)
    assert main(["lab", "--no-browser"]) == 0
    (cmd, cwd, env), = calls
    folder = run / "lab-notebooks"
    assert cwd == folder and f"--ServerApp.root_dir={folder}" in cmd and env["DLRC_RUN"] == str(run)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in (data / "notebooks").iterdir())
    assert (folder / "05_dlrc.ipynb").read_text() == "edited"  # one's edits are kept
    assert f"notebooks in {folder}" in capsys.readouterr().out


def test_installed_without_a_run_lab_says_how_to_make_one(installed, capsys):
    assert main(["lab"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dlrc run --params quick" in err[0], err


def test_the_test_command_runs_the_wheel_test_once():
    """`.ci/run` runs `make test`, whose recipe runs the wheel test and then pytest."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test$", ci, re.M)
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^test: .*\n((?:\t.*\n)+)", make, re.M).group(1)
    assert recipe.count("test-wheel") == 1 and "pytest" in recipe
    assert "wheel_test.sh" in re.search(r"^test-wheel: .*\n((?:\t.*\n)+)", make, re.M).group(1)
    # the pins the wheel test installs are the Makefile's own
    for var in ("NUMPY", "TORCH", "PYRADIOMICS"):
        assert f"$({var})" in make and f"{var}='$({var})'" in make


def test_a_run_of_the_installed_package_says_so_in_the_checklist(tmp_path):
    import json

    from dlrc_lib.reporting.checklist import RunFacts, _code

    (tmp_path / "run.json").write_text(json.dumps({"git_commit": None, "dlrc_installed": True,
                                                   "packages": {"dlrc": "0.1.0"}}))
    answer = _code(RunFacts(tmp_path), [])
    assert answer.status == "partly" and "installed package dlrc 0.1.0" in answer.answer
    (tmp_path / "run.json").write_text(json.dumps({"git_commit": None}))
    assert "outside a git checkout" in _code(RunFacts(tmp_path), []).answer
