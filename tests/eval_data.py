"""A simulated ``predictions`` frame (the hand-over of notebook 05) for the evaluation tests.

Outcome first (prevalence about 31 % as in the paper), then class-conditional node
measurements and normal scores, so that a logistic model on c_lnm, DL_score and Rad_score
is the correct form; the three probability columns are logistic fits on the training
cohort, applied unchanged to the validation cohorts (the external one slightly shifted).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from dlrc_lib.stats import logistic_glm

SIZES = {"train": 481, "internal": 204, "external": 410}


def make_predictions(scale: float = 1.0, seed: int = 7, prevalence: float = 0.31) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    k = 0
    for cohort, size in SIZES.items():
        n = max(12, int(round(size * scale)))
        lnm = (rng.random(n) < prevalence).astype(int)
        # largest node short axis (mm): positives larger; round off to 0.1 mm like a reading
        sd = np.where(lnm == 1, rng.lognormal(np.log(7.0), 0.45, n), rng.lognormal(np.log(5.0), 0.3, n))
        sd = np.round(np.clip(sd, 2.0, 30.0), 1)
        ratio = rng.uniform(0.45, 0.95, n)
        ld = np.round(np.maximum(sd / ratio, sd), 1)
        necrosis = ((rng.random(n) < np.where(lnm == 1, 0.04, 0.003)) & (sd >= 5)).astype(int)
        shift = 0.25 if cohort == "external" else 0.0
        rad = rng.normal(0.8 * lnm - 0.2 + shift, 1.0, n)
        dl = 0.3 * rad + rng.normal(0.9 * lnm, 0.95, n)
        for i in range(n):
            k += 1
            rows.append({"patient_id": f"P{k:04d}", "cohort": cohort, "lnm": int(lnm[i]),
                         "lnsd_mm": float(sd[i]), "lnld_mm": float(ld[i]), "node_necrosis": int(necrosis[i]),
                         "c_lnm": int(sd[i] >= 10), "Rad_score": float(rad[i]), "DL_score": float(dl[i])})
    df = pd.DataFrame(rows).set_index("patient_id")
    train = df["cohort"] == "train"
    for col, terms in (("prob_radiomics", ["Rad_score"]), ("prob_dl", ["DL_score"]),
                       ("prob_dlrc", ["c_lnm", "DL_score", "Rad_score"])):
        beta = logistic_glm(df.loc[train, terms].to_numpy(), df.loc[train, "lnm"].to_numpy()).coef
        df[col] = expit(beta[0] + df[terms].to_numpy() @ beta[1:])
    return df


def write_run(run_dir, predictions: pd.DataFrame, best_model: str = "ResNet152_2D") -> None:
    """Place the frame and the 05_dlrc results JSON in a run directory, as notebook 05 does."""
    from dlrc_lib.run.artifacts import Artifacts
    from dlrc_lib.stats import youden_threshold

    art = Artifacts(run_dir, notebook="05_dlrc")
    art.save_frame("predictions", predictions)
    tr = predictions[predictions["cohort"] == "train"]
    cut = {k: float(youden_threshold(tr["lnm"].to_numpy(), tr[c].to_numpy()))
           for k, c in (("radiomics", "prob_radiomics"), ("dl", "prob_dl"), ("dlrc", "prob_dlrc"))}
    art.results(best_model=best_model, cutoffs=cut, dlrc_terms=["c_LNM", "DL_score", "Rad_score"])

