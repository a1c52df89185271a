"""Where the files that come with dlrc are: the notebooks and the parameter files.

The repository keeps them at its top, beside the package (``notebooks/``, ``params/``). A wheel
carries them inside the package, as ``dlrc_lib/_data/notebooks`` and ``dlrc_lib/_data/params``
(``setup.py`` maps the two folders there at build time). :func:`data_root` is the one place
that decides which of the two a running dlrc reads; everything else asks it (or
:func:`packaged`, :func:`params_file`), so a checkout, an editable install and an installed
wheel read the same files by the same relative names (``params/radiomics.yaml``).
"""
from __future__ import annotations

import os
from pathlib import Path

from dlrc_lib import __version__

_PACKAGE = Path(__file__).resolve().parents[1]  # dlrc_lib/
_SOURCE = _PACKAGE.parent  # the folder holding dlrc_lib/: a checkout, or site-packages
_INSTALLED = _PACKAGE / "_data"  # where a wheel puts notebooks/ and params/

#: the parameter files a run can be named by (``dlrc run --params quick``)
RUN_PARAMS = ("quick", "teach", "paper")


def data_root() -> Path:
    """The folder holding ``params/`` and ``notebooks/``: the package's own copy when dlrc is
    installed from a wheel, else the source tree dlrc_lib is imported from (a checkout, an
    editable install, or a checkout on ``PYTHONPATH``)."""
    if (_INSTALLED / "params").is_dir():
        return _INSTALLED
    return _SOURCE


def packaged(*parts: str) -> Path:
    """A file that comes with dlrc, e.g. ``packaged("params", "claims.yaml")``."""
    return data_root().joinpath(*parts)


def checkout() -> Path | None:
    """The source tree dlrc runs from (a git checkout or an unpacked source release), or None
    when dlrc is installed (the notebooks and parameter files are then the wheel's)."""
    root = data_root()
    return root if root == _SOURCE and (root / "notebooks").is_dir() else None


def work_root() -> Path:
    """Where the package's own parameter files put what a run creates (the twin, the caches,
    ``reports/``): the checkout, else the working directory."""
    return checkout() or Path.cwd()


def params_file(spec: str | os.PathLike) -> Path:
    """A parameter file named on the command line: a path, as given, when it exists; else one of
    the package's parameter files named ``quick``, ``quick.yaml`` or ``params/quick.yaml``.
    A name that is neither comes back as given (the caller says it is not there)."""
    given = Path(os.path.expanduser(str(spec)))
    if given.exists():
        return given
    text = str(spec).replace("\\", "/")
    name = text[len("params/"):] if text.startswith("params/") else text
    if name and "/" not in name:
        found = packaged("params", name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
        if found.is_file():
            return found
    return given


def version() -> str:
    """``dlrc <version>``, and in a git checkout the commit (``+`` when files were changed)."""
    import subprocess

    text = f"dlrc {__version__}"
    root = checkout()
    if root is not None and (root / ".git").exists():
        try:
            head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                                  text=True, timeout=10)
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                   capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return text
        if head.returncode == 0 and head.stdout.strip():
            text += f" (git {head.stdout.strip()}{'+' if dirty.stdout.strip() else ''}, {root})"
    else:
        text += f" (installed, {_PACKAGE})"
    return text
