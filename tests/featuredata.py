"""Synthetic study tables and feature matrices with known signal and scanner effects."""
from __future__ import annotations

import numpy as np
import pandas as pd

SCANNERS = {"A": ["A1", "A2"], "B": ["B1", "B2"], "C": ["C1"], "D": ["D1", "D2"], "E": ["E1"]}


def make_study(n: int = 240, seed: int = 1, lnm_rate: float = 0.3) -> pd.DataFrame:
    """Patients in centres A..E; A-C train (A also internal), D-E external."""
    rng = np.random.default_rng(seed)
    centres = rng.choice(list(SCANNERS), size=n, p=[0.35, 0.2, 0.15, 0.15, 0.15])
    scanners = [rng.choice(SCANNERS[c]) for c in centres]
    cohort = np.where(np.isin(centres, ["D", "E"]), "external", "train")
    internal = (centres == "A") & (rng.uniform(size=n) < 0.35)
    cohort[internal] = "internal"
    lnm = (rng.uniform(size=n) < lnm_rate).astype(int)
    return pd.DataFrame({
        "patient_id": [f"P{i:04d}" for i in range(n)], "centre": centres, "scanner": scanners,
        "cohort": cohort, "lnm": lnm,
    })


def make_features(study: pd.DataFrame, n_noise: int = 30, effect: float = 1.0,
                  scanner_effect: float = 1.0, seed: int = 2) -> pd.DataFrame:
    """Features: ``CET1_sig{0,1,2}`` shifted by LNM (+effect, -0.8 effect, +0.6 effect),
    ``CET1_sig0_copy`` (rho ~0.95 with sig0), ``DWI_noise{k}`` pure noise; every feature then
    gets a per-scanner shift and scale."""
    rng = np.random.default_rng(seed)
    n = len(study)
    y = study["lnm"].to_numpy()
    base = {
        "CET1_sig0": rng.normal(size=n) + effect * y,
        "CET1_sig1": rng.normal(size=n) - 0.8 * effect * y,
        "T2FS_sig2": rng.normal(size=n) + 0.6 * effect * y,
    }
    base["CET1_sig0_copy"] = base["CET1_sig0"] + 0.3 * rng.normal(size=n)
    for k in range(n_noise):
        base[f"DWI_noise{k:02d}"] = rng.normal(size=n)
    X = pd.DataFrame(base, index=study["patient_id"].to_numpy())
    level = rng.uniform(5, 50, size=X.shape[1])
    spread = rng.uniform(0.5, 3, size=X.shape[1])
    X = X * spread + level
    scanners = sorted(study["scanner"].unique())
    for s in scanners:
        rows = (study["scanner"] == s).to_numpy()
        shift = rng.normal(0, 2.0 * scanner_effect, size=X.shape[1]) * spread
        scale = np.exp(rng.normal(0, 0.3 * scanner_effect, size=X.shape[1]))
        X.loc[rows] = (X.loc[rows] - level) * scale + level + shift
    return X
