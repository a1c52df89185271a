"""Inter-reader agreement of the node measurements behind SRA (Supplementary Method S1).

Two radiologists measured, independently, the short and long axis of the largest pelvic
node on CE-T1WI and looked for central necrosis; a senior radiologist settled their
discrepancies, and the final (consensus) reading is what c_LNM and SRA use. In the study
table the final reading is ``lnsd_mm``, ``lnld_mm``, ``node_necrosis``; reader 2's own
reading is ``lnsd_mm_r2``, ``lnld_mm_r2``, ``node_necrosis_r2``; reader 1's own reading is
``lnsd_mm_r1``, ... when the manifest has it, else the final reading is taken as reader 1's
(the synthetic twin's case: its final reading is reader 1's).

* :func:`reader_calls` - both readers' measurements and calls per patient;
* :func:`agreement_table` - ICC(2,1) of the diameters (R ``psych::ICC``), Cohen's kappa of the
  necrosis, c_LNM and SRA calls (R ``psych::cohen.kappa``), with 95 % CIs, the share of
  agreement and the Bland-Altman mean difference;
* :func:`consensus_table` - per cohort, how many patients' calls differed and went to the
  senior reader, and whose call the final reading kept.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from dlrc_lib import stats
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.evaluation.sra import sra_predict
from dlrc_lib.study.manifest import by_patient
from dlrc_lib.study.schema import C_LNM_SHORT_AXIS_MM, COHORTS, READER1_COLUMNS, READER2_COLUMNS

FINAL_COLUMNS = ("lnsd_mm", "lnld_mm", "node_necrosis")
CONSENSUS_RULE = (
    "Readers 1 and 2 measured every patient independently. Where their c_LNM call (largest "
    "node's short axis >= {c:g} mm) or SRA call differed, a senior radiologist re-read the node "
    "and the consensus reading was final; where both calls agreed, reader 1's measurements were "
    "kept. Every analysis (c_LNM, SRA, Tables 1, 2 and 5) uses the final reading."
).format(c=C_LNM_SHORT_AXIS_MM)

__all__ = ["READER1_COLUMNS", "FINAL_COLUMNS", "CONSENSUS_RULE", "has_second_reader", "reader_calls",
           "agreement_table", "consensus_table"]


def has_second_reader(study: pd.DataFrame) -> bool:
    """Whether the study carries reader 2's node reading for at least two patients."""
    if not all(c in study.columns for c in READER2_COLUMNS):
        return False
    return int(study[list(READER2_COLUMNS)].notna().all(axis=1).sum()) >= 2


def _sra(sd, ld, nec, sra_params) -> np.ndarray:
    frame = pd.DataFrame({"lnsd_mm": sd, "lnld_mm": ld, "node_necrosis": nec})
    return sra_predict(frame, sra_params).to_numpy()


def reader_calls(study: pd.DataFrame, sra_params) -> pd.DataFrame:
    """Per patient read by both readers (index patient_id): cohort, both readers'
    ``lnsd``, ``lnld``, ``necrosis``, their c_LNM and SRA calls (``*_r1``, ``*_r2``), and the
    final reading's calls (``c_lnm_final``, ``sra_final``)."""
    missing = [c for c in ("patient_id", "cohort", *FINAL_COLUMNS, *READER2_COLUMNS) if c not in study.columns]
    if missing:
        raise DlrcError(f"reader agreement: study has no column(s) {', '.join(missing)}")
    df = by_patient(study)
    r1_cols = READER1_COLUMNS if all(c in df.columns for c in READER1_COLUMNS) else FINAL_COLUMNS
    both = df[list(r1_cols) + list(READER2_COLUMNS)].notna().all(axis=1).to_numpy()
    df = df[both]
    out = pd.DataFrame(index=pd.Index(df.index.astype(str), name="patient_id"))
    out["cohort"] = df["cohort"].astype(str).to_numpy()
    for tag, cols in (("r1", r1_cols), ("r2", READER2_COLUMNS), ("final", FINAL_COLUMNS)):
        sd = df[cols[0]].to_numpy(float)
        ld = df[cols[1]].to_numpy(float)
        nec = df[cols[2]].to_numpy(float)
        if tag != "final":
            out[f"lnsd_{tag}"], out[f"lnld_{tag}"], out[f"necrosis_{tag}"] = sd, ld, nec.astype(int)
        out[f"c_lnm_{tag}"] = (np.round(sd, 9) >= C_LNM_SHORT_AXIS_MM).astype(int)
        out[f"sra_{tag}"] = _sra(sd, ld, nec, sra_params)
    return out


def _icc_row(label: str, a: np.ndarray, b: np.ndarray, form: str, level: float) -> dict:
    r = stats.icc(np.column_stack([a, b]), form=form, level=level)
    d = b - a
    sd = float(np.std(d, ddof=1)) if len(d) > 1 else float("nan")
    return {"measure": label, "statistic": form, "n": int(len(a)), "estimate": r.icc,
            "lower": r.lower, "upper": r.upper, "agreement_pct": np.nan, "discordant": np.nan,
            "mean_difference": float(d.mean()), "loa_lower": float(d.mean() - 1.96 * sd),
            "loa_upper": float(d.mean() + 1.96 * sd)}


def _kappa_row(label: str, a: np.ndarray, b: np.ndarray, level: float) -> dict:
    k = stats.cohen_kappa(a, b, level=level, categories=(0, 1))
    return {"measure": label, "statistic": "Cohen's kappa", "n": k.n, "estimate": k.kappa,
            "lower": k.lower, "upper": k.upper, "agreement_pct": 100.0 * k.agreement,
            "discordant": int((np.asarray(a) != np.asarray(b)).sum()), "mean_difference": np.nan,
            "loa_lower": np.nan, "loa_upper": np.nan}


def agreement_table(calls: pd.DataFrame, *, form: str = "ICC(2,1)", level: float = 0.95) -> pd.DataFrame:
    """Reader 1 vs reader 2 on the patients both read (``calls`` from :func:`reader_calls`).

    Rows: LNSD and LNLD (``form`` ICC with its ``level`` CI as R ``psych::ICC``; mean
    difference reader 2 - reader 1 and Bland-Altman 95 % limits of agreement, mm), central
    necrosis, c_LNM call and SRA call (Cohen's kappa with its CI, as ``psych::cohen.kappa``;
    percentage of agreement; number of discordant patients).
    """
    if len(calls) < 2:
        raise DlrcError(f"reader agreement: {len(calls)} patient(s) read by both readers; at least 2 are needed")
    rows = [
        _icc_row("LNSD (mm)", calls["lnsd_r1"].to_numpy(float), calls["lnsd_r2"].to_numpy(float), form, level),
        _icc_row("LNLD (mm)", calls["lnld_r1"].to_numpy(float), calls["lnld_r2"].to_numpy(float), form, level),
        _kappa_row("Central necrosis", calls["necrosis_r1"].to_numpy(int), calls["necrosis_r2"].to_numpy(int), level),
        _kappa_row(f"c_LNM call (LNSD >= {C_LNM_SHORT_AXIS_MM:g} mm)", calls["c_lnm_r1"].to_numpy(int),
                   calls["c_lnm_r2"].to_numpy(int), level),
        _kappa_row("SRA call", calls["sra_r1"].to_numpy(int), calls["sra_r2"].to_numpy(int), level),
    ]
    out = pd.DataFrame(rows)
    out["discordant"] = out["discordant"].astype("Int64")  # a count; none for the diameters
    return out


def consensus_table(calls: pd.DataFrame) -> pd.DataFrame:
    """Per cohort (and in total): patients read by both, patients whose c_LNM or SRA calls
    differed (sent to the senior reader), and among those whose SRA calls differed, whose call
    the final reading kept (reader 1's or reader 2's)."""
    rows = []
    groups = [(c, calls[calls["cohort"] == c]) for c in COHORTS if (calls["cohort"] == c).any()]
    groups.append(("total", calls))
    for name, g in groups:
        c_diff = g["c_lnm_r1"] != g["c_lnm_r2"]
        s_diff = g["sra_r1"] != g["sra_r2"]
        disc = g[s_diff]
        rows.append({"cohort": name, "read_by_both": int(len(g)), "c_lnm_discordant": int(c_diff.sum()),
                     "sra_discordant": int(s_diff.sum()), "adjudicated": int((c_diff | s_diff).sum()),
                     "final_sra_as_reader1": int((disc["sra_final"] == disc["sra_r1"]).sum()),
                     "final_sra_as_reader2": int((disc["sra_final"] == disc["sra_r2"]).sum())})
    return pd.DataFrame(rows)
