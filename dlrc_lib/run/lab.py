"""``dlrc lab``: JupyterLab from this environment on a finished run.

In a checkout it opens at the repository root (the notebooks in ``notebooks/``). Installed from
a wheel, the package's notebooks are read-only material of the installation, so it opens a
writable copy beside the run instead (``<run>/lab-notebooks/``, see :func:`lab_notebooks`).
The notebooks opened there read the run named on the command line, else the run under
``reports/`` that finished last (see :func:`dlrc_lib.run.paths.open_run`): the server
passes it to every kernel as ``DLRC_RUN``. With no finished run it says, in one line, to make
one first.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.resources import checkout
from dlrc_lib.run.layout import list_notebooks
from dlrc_lib.run.paths import ENV_PARAMS_FILE, ENV_RUN, ENV_RUNNER, last_finished_run

LAB_NOTEBOOKS = "lab-notebooks"  # the writable copy of an installed package's notebooks, in the run folder


def lab_notebooks(run: Path) -> Path:
    """``<run>/lab-notebooks/`` with the package's notebooks: a notebook already there is kept
    (it may hold one's edits), a missing one is copied."""
    folder = Path(run) / LAB_NOTEBOOKS
    folder.mkdir(parents=True, exist_ok=True)
    for nb in list_notebooks():
        if not (folder / nb.name).exists():
            shutil.copyfile(nb, folder / nb.name)
    return folder


def make_a_run_hint() -> str:
    return "run `make quick` first" if checkout() else "run `dlrc run --params quick` first"


def lab_environment(run: Path, root: Path | None) -> dict[str, str]:
    """The server's (and so the kernels') environment: the run, this checkout's dlrc_lib
    (``root``; None for an installed package), widgets on (no headless flag left over from a
    runner)."""
    env = dict(os.environ)
    for key in ("DLRC_HEADLESS", ENV_RUNNER, ENV_PARAMS_FILE):
        env.pop(key, None)
    env[ENV_RUN] = str(run)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root is not None and str(root) not in paths:
        env["PYTHONPATH"] = os.pathsep.join([str(root), *paths])
    return env


def choose_run(run: str | None, root: Path) -> Path:
    if run:
        path = Path(run)
        path = path if path.is_absolute() else (root / path)
        if not (path / "run.json").is_file():
            raise DlrcError(f"{path.resolve()}: not a finished run (no run.json); {make_a_run_hint()}")
        return path.resolve()
    found = last_finished_run(root)
    if found is None:
        raise DlrcError(f"no finished run under {root / 'reports'}: {make_a_run_hint()}")
    return found.resolve()


def lab_command(root: Path, extra: list[str]) -> list[str]:
    """``python -m jupyterlab`` of this environment at ``root`` (``--allow-root`` for root, as in
    containers and CI, where jupyter refuses to start otherwise)."""
    as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", *as_root, *extra]
