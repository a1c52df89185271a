"""Shared test fixtures: a seeded RNG and the repository root."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

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
