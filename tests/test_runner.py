from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest

from dlrc_lib.run import runner
from dlrc_lib.core.errors import DlrcError

ROOT = Path(__file__).resolve().parents[1]


def make_nb(path: Path, params_src: str, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params_src)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# demo"), p, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setattr(runner, "resolve_study", lambda params: tmp_path / "manifest.csv")
    monkeypatch.chdir(ROOT)
    return tmp_path


def test_run_injects_params_and_records_provenance(project):
    make_nb(project / "notebooks/00_a.ipynb",
            'run_dir: str = "x"  # run directory\nselection_mw_p: float = 0.5  # threshold',
            "from dlrc_lib.run.artifacts import Artifacts\n"
            "Artifacts(run_dir, notebook='00_a').results(mw=selection_mw_p)")
    out = project / "out"
    rc = runner.run(ROOT / "params/quick.yaml", out=out, root=project, quiet=True)
    assert rc == 0
    assert json.loads((out / "results/00_a.json").read_text())["mw"] == 0.01
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "ok" and run["notebooks"]["00_a"]["status"] == "ok"
    assert run["seed"] == 20240601 and "numpy" in run["packages"]
    assert (out / "html/00_a.html").exists() and (out / "index.html").exists()
    assert (out / "notebooks/00_a.ipynb").exists()
    # the reporting checklist is written and linked; with almost nothing run, almost nothing is claimed
    assert "href='checklist.html'" in (out / "index.html").read_text()
    import pandas as pd

    checklist = pd.read_csv(out / "checklist.csv", dtype=str, keep_default_na=False)
    assert len(checklist[checklist["checklist"] == "CLEAR"]) == 58
    claimed = checklist[checklist["status"].isin(["yes", "partly"])]
    for row in claimed.itertuples():  # only what run.json itself shows: data source, settings, code
        assert set(row.evidence.split("; ")) <= {"run.json", "notebooks"}, row
    assert "31" not in set(claimed[claimed["checklist"] == "CLEAR"]["number"])


def test_failing_notebook_stops_run_and_names_cell(project, capsys):
    make_nb(project / "notebooks/00_ok.ipynb", 'run_dir: str = "x"  # run directory',
            "open(run_dir + '/ok.txt', 'w').write('ok')")
    make_nb(project / "notebooks/01_bad.ipynb", 'run_dir: str = "x"  # run directory',
            "raise ValueError('broken step')")
    make_nb(project / "notebooks/02_never.ipynb", 'run_dir: str = "x"  # run directory',
            "open(run_dir + '/never.txt', 'w').write('x')")
    out = project / "out"
    rc = runner.run(ROOT / "params/quick.yaml", out=out, root=project, quiet=True)
    assert rc == 1
    err = capsys.readouterr().err
    assert "01_bad.ipynb" in err and "ValueError: broken step" in err and "cell" in err
    assert (out / "ok.txt").read_text() == "ok"
    assert not (out / "never.txt").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and "01_bad" in run["failure"]


def test_a_notebook_stopped_by_the_data_lets_the_run_finish_its_report(project, capsys):
    """A DlrcError (the data or the parameters, said in words) stops that notebook only: one line,
    no traceback; notebooks that need its results say so in one line; the report is written and
    the run's status is incomplete (exit 1)."""
    make_nb(project / "notebooks/00_stop.ipynb", 'run_dir: str = "x"  # run directory',
            "from dlrc_lib.core.errors import DlrcError\n"
            "raise DlrcError('LASSO kept no feature; set selection.lasso_rule: min')")
    make_nb(project / "notebooks/01_alone.ipynb", 'run_dir: str = "x"  # run directory',
            "open(run_dir + '/alone.txt', 'w').write('ran')")
    make_nb(project / "notebooks/02_needs.ipynb", 'run_dir: str = "x"  # run directory',
            "from dlrc_lib.run.paths import MissingInput\n"
            "raise MissingInput('results of notebook 00_stop not found')")
    out = project / "out"
    rc = runner.run(ROOT / "params/quick.yaml", out=out, root=project, quiet=True)
    assert rc == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("dlrc run:")]
    assert err[0] == ("dlrc run: warning: notebook 00_stop.ipynb stopped in cell [3]: LASSO kept no feature; set "
                      "selection.lasso_rule: min (the executed notebook is in the run's notebooks/)")
    assert err[1] == "dlrc run: warning: notebook 02_needs.ipynb skipped: results of notebook 00_stop not found"
    assert (out / "alone.txt").read_text() == "ran" and (out / "index.html").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "incomplete" and "Traceback" not in run["failure"]
    assert [run["notebooks"][n]["status"] for n in ("00_stop", "01_alone", "02_needs")] == ["stopped", "ok", "stopped"]


def test_unknown_notebook_parameter_is_refused(project):
    make_nb(project / "notebooks/00_a.ipynb", 'bogus_key: int = 1  # nothing', "pass")
    with pytest.raises(DlrcError, match="bogus_key"):
        runner.run(ROOT / "params/quick.yaml", out=project / "out", root=project, quiet=True)


def test_only_selects_notebooks(project):
    for n in ("00_a", "01_b"):
        make_nb(project / f"notebooks/{n}.ipynb", 'run_dir: str = "x"  # run directory', "pass")
    assert [p.stem for p in runner.list_notebooks(project, ["1"])] == ["01_b"]
    with pytest.raises(DlrcError, match="07"):
        runner.list_notebooks(project, ["07"])


def test_console_echo_shows_progress_bars_only():
    import io

    from dlrc_lib.core.progress import ConsoleEcho

    out = io.StringIO()
    echo = ConsoleEcho(out, prefix="> ", interval_s=3600)
    echo.write("a warning that stays in the notebook\n")
    echo.write("\rradiomics:  10%|#         | 10/100 patients [00:05<00:45]")
    echo.write("\rradiomics:  20%|##        | 20/100 patients [00:10<00:40]")  # within the interval
    echo.write("\rdeep features:   5%|5         | 5/100 img [00:01<00:19]")  # another bar
    echo.write("\rradiomics: 100%|##########| 100/100 patients [00:50<00:00]\n")  # finished: always shown
    echo.close()
    assert out.getvalue().splitlines() == [
        "> radiomics:  10%|#         | 10/100 patients [00:05<00:45]",
        "> deep features:   5%|5         | 5/100 img [00:01<00:19]",
        "> radiomics: 100%|##########| 100/100 patients [00:50<00:00]",
    ]


def test_console_echo_never_fails_the_notebook():
    from dlrc_lib.core.progress import ConsoleEcho

    class Broken:
        def write(self, s):
            raise BrokenPipeError

        def flush(self):
            raise BrokenPipeError

    echo = ConsoleEcho(Broken(), interval_s=0)
    assert echo.write("\rbar:  50%|#####     | 5/10") == len("\rbar:  50%|#####     | 5/10")
    echo.close()


def test_a_notebook_ends_without_an_interrupt_of_its_kernel(tmp_path, capfd):
    """The runner shuts each kernel down without interrupting it: jupyter_client's shutdown would
    first send SIGINT to the kernel's process group, and ipykernel logs "KeyboardInterrupt caught
    in kernel" on the console when it lands while a message is being handled. A process the
    notebook starts in the kernel's process group records any SIGINT it receives."""
    nb = tmp_path / "quiet.ipynb"
    marker = tmp_path / "sigint"
    watcher = ("import os, signal, sys, time\n"
               f"def got(*_):\n    open({str(marker)!r}, 'w').write('SIGINT')\n    sys.exit(0)\n"
               "signal.signal(signal.SIGINT, got)\nparent = os.getppid()\n"
               "for _ in range(300):\n    time.sleep(0.05)\n    if os.getppid() != parent:\n        sys.exit(0)\n")
    make_nb(nb, 'run_dir: str = ""', "import subprocess, sys, time\n"
            f"watcher = subprocess.Popen([sys.executable, '-c', {watcher!r}])\n"
            "time.sleep(1.0)  # the watcher's handler is installed\n"
            "print('cell ran')")
    runner.execute_notebook(nb, tmp_path / "out.ipynb", {"run_dir": str(tmp_path)}, tmp_path)
    out = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4)
    assert "cell ran" in out.cells[-1].outputs[0]["text"]
    time.sleep(1.0)
    assert not marker.exists(), "the kernel's process group was sent SIGINT at shutdown"
    captured = capfd.readouterr()
    assert "KeyboardInterrupt caught in kernel" not in captured.out + captured.err
