"""Seeded synthetic study rows with Rad_score / DL_score for the model, nomogram and
predict tests: the clinical columns of the study table plus two scores that carry signal."""
from __future__ import annotations

import numpy as np
import pandas as pd


def make_study(n: int = 300, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lnm = rng.binomial(1, 0.31, n)
    cohort = np.array(["train", "internal", "external"])[rng.choice(3, n, p=[0.45, 0.2, 0.35])]
    lnsd = np.where(lnm == 1, rng.gamma(6.0, 1.45, n), rng.gamma(5.0, 1.1, n)).round(1)
    menopause = np.where(rng.random(n) < 0.55, "Yes", "No")
    figo_pos = np.array(["IB3", "IIA2", "IIA1", "IB2"])[rng.choice(4, n, p=[0.3, 0.4, 0.15, 0.15])]
    figo_neg = np.array(["IB1", "IB2", "IB3", "IIA1", "IIA2"])[rng.choice(5, n)]
    study = pd.DataFrame({
        "patient_id": [f"P{i:04d}" for i in range(n)],
        "centre": np.where(cohort == "external", "B", "A"),
        "scanner": np.where(cohort == "external", "S2", "S1"),
        "cohort": cohort,
        "lnm": lnm,
        "age": rng.normal(53, 9, n).round(0),
        "parity": rng.choice([0, 1, 2, 3, 4, 5], n, p=[0.04, 0.4, 0.4, 0.1, 0.03, 0.03]),
        "menopause": menopause,
        "age_at_menopause": np.where(menopause == "Yes", rng.normal(50, 3, n).round(0), np.nan),
        "family_history": np.where(rng.random(n) < 0.13, "Yes", "No"),
        "figo_stage": np.where(lnm == 1, figo_pos, figo_neg),
        "histology": np.array(["SCC", "AC", "ASC", "Other"])[rng.choice(4, n, p=[0.77, 0.1, 0.12, 0.01])],
        "lnsd_mm": lnsd,
        "lnld_mm": (lnsd * rng.uniform(1.05, 1.8, n)).round(1),
        "node_necrosis": rng.binomial(1, np.where(lnm == 1, 0.08, 0.01)),
    }).set_index("patient_id")
    study["c_lnm"] = (study["lnsd_mm"] >= 10).astype(int)
    study["Rad_score"] = -0.85 + 1.0 * (lnm - 0.31) + rng.normal(0, 0.9, n)
    study["DL_score"] = -0.85 + 0.8 * (lnm - 0.31) + rng.normal(0, 0.9, n)
    return study
