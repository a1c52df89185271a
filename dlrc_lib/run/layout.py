"""A run folder's layout and the names every part of :mod:`dlrc_lib.run` agrees on: which
parameters are paths, which notebook writes which frame, the runner's environment variables, the
folder a run works in, the notebooks and the command that produces a missing input."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.resources import packaged, work_root


class MissingInput(DlrcError, FileNotFoundError):
    """An input of a notebook that an earlier step has not produced (absolute path + command)."""


# Parameters (flattened names) that are paths.
PATH_KEYS = ("run_dir", "cache_dir", "study_manifest", "params_file", "radiomics_settings", "sweep_out",
             "published_values", "study_twin_dir", "study_flow")
# Inputs a notebook reads from another one's output, by frame name -> the notebook writing it.
FRAME_PRODUCERS = {
    "icc": "02_icc",
    "rad_score": "03_radiomics",
    "dl_scores": "04_deep_learning",
    "predictions": "05_dlrc",
    "decision_curves": "07_decision_curve",
    "decision_curve_bands": "07_decision_curve",
}
DEFAULT_PARAMS_FILE = "params/quick.yaml"
ENV_RUNNER = "DLRC_RUNNER"  # set by dlrc run for its kernels
ENV_PARAMS_FILE = "DLRC_PARAMS_FILE"  # the runner's parameter file (for messages)
ENV_RUN = "DLRC_RUN"  # the run dlrc lab opened the notebooks against
# set by dlrc run when the parameters cells it executes show the run's own values (a manifest
# study's pages): nothing is then "replaced" relative to what the page shows
ENV_CELLS_SHOW_RUN = "DLRC_CELLS_SHOW_RUN"
SWEEP_NOTEBOOK = "09"  # 09_sensitivity: runs when the parameters name a sweep grid, never inside a variant


def project_root() -> Path:
    """The folder a run works in (``reports/``, the kernels' working directory): the checkout
    that holds ``notebooks/`` and ``dlrc_lib/``; else, dlrc being installed, the working
    directory (a study folder)."""
    return work_root()


def notebooks_dir(root: Path | None = None) -> Path:
    """The folder of the notebooks a run executes: ``root/notebooks`` when a ``root`` is given,
    else the package's own (:func:`dlrc_lib.core.resources.data_root`)."""
    return Path(root) / "notebooks" if root is not None else packaged("notebooks")


def run_command(params_file: str | None, notebook: str | None = None) -> str:
    """The command that produces a run (or one notebook's outputs in it)."""
    params = params_file or DEFAULT_PARAMS_FILE
    try:
        shown = str(Path(params).resolve().relative_to(project_root()))
    except ValueError:
        # one of the package's own parameter files, installed: its name (dlrc run --params quick)
        shown = Path(params).stem if Path(params).resolve().parent == packaged("params").resolve() else str(params)
    only = f" --only {notebook[:2]}" if notebook else ""
    return f"dlrc run --params {shown}{only}"


def list_notebooks(root: Path | None = None, only: Iterable[str] | None = None) -> list[Path]:
    """The numbered notebooks of :func:`notebooks_dir` in order (``only``: these numbers)."""
    folder = notebooks_dir(root)
    notebooks = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = {str(o).zfill(2)[:2] for o in only}
        unknown = wanted - {nb.name[:2] for nb in notebooks}
        if unknown:
            raise DlrcError(f"--only: no notebook numbered {', '.join(sorted(unknown))} in {folder}")
        notebooks = [nb for nb in notebooks if nb.name[:2] in wanted]
    return notebooks


def notebook_parameters(path: Path) -> dict[str, dict[str, Any]]:
    """Names declared in a notebook's ``parameters`` cell (papermill's own parser)."""
    import papermill as pm

    return pm.inspect_notebook(str(path))
