"""Shared test fixtures: a seeded RNG, the repository root and one finished quick run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _locale_restored():
    """GDCM's DICOM writer (SimpleITK) leaves LC_CTYPE at "C": a test writing a series would make
    every later test of the session read UTF-8 files as ASCII. Each test gets the locale back."""
    import locale

    saved = locale.setlocale(locale.LC_ALL)
    yield
    if locale.setlocale(locale.LC_ALL) != saved:
        locale.setlocale(locale.LC_ALL, saved)


ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DLRC_HEADLESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# Nothing is downloaded inside the tests (ImageNet weights come from the local cache or not at all).
os.environ["DLRC_OFFLINE"] = "1"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def quick_params(tmp_path_factory):
    """params/quick.yaml with its own, initially empty, feature cache."""
    import yaml

    base = tmp_path_factory.mktemp("params")
    params = yaml.safe_load((ROOT / "params" / "quick.yaml").read_text())
    params["cache_dir"] = str(base / "cache")
    params["radiomics"]["settings"] = str(ROOT / params["radiomics"]["settings"])
    path = base / "quick.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory, quick_params):
    out = tmp_path_factory.mktemp("quick") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "dlrc_lib.run.cli", "run", "--params", str(quick_params), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return out, proc


@pytest.fixture(scope="session")
def finished_quick_run(request) -> Path:
    """A finished quick run to read: ``$DLRC_TEST_QUICK_RUN`` when set (e.g. reports/quick after
    `make quick`, to iterate on a test), else the session's :func:`quick_run`."""
    given = os.environ.get("DLRC_TEST_QUICK_RUN")
    if given:
        path = Path(given).resolve()
        assert (path / "run.json").is_file(), f"DLRC_TEST_QUICK_RUN={given}: no run.json there"
        return path
    out, _ = request.getfixturevalue("quick_run")
    return out
