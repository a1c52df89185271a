"""Views of a study table: counts per centre/scanner/cohort, acquisition summary, example images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dlrc_lib.study import keys as K
from dlrc_lib.study.images import read_image, read_mask
from dlrc_lib.study.manifest import by_patient
from dlrc_lib.study.schema import COHORTS, SEQUENCES
from dlrc_lib.study.validate import _missing


def study_counts(study: pd.DataFrame) -> pd.DataFrame:
    """Patients per centre, scanner and cohort, with the LNM-positive count and rate."""
    g = study.groupby(["centre", "scanner", "cohort"], sort=True)["lnm"]
    out = pd.DataFrame({"patients": g.size(), "lnm_positive": g.sum()}).reset_index()
    out["cohort"] = pd.Categorical(out["cohort"], COHORTS, ordered=True)
    out = out.sort_values(["centre", "scanner", "cohort"]).reset_index(drop=True)
    out["lnm_rate_pct"] = (100 * out["lnm_positive"] / out["patients"]).round(1)
    out["cohort"] = out["cohort"].astype(str)
    return out


def cohort_counts(study: pd.DataFrame) -> pd.DataFrame:
    """LNM-negative / LNM-positive patients per cohort (rows train, internal, external, total)."""
    t = pd.crosstab(study["cohort"], study["lnm"]).reindex(list(COHORTS)).fillna(0).astype(int)
    t = t.reindex(columns=[0, 1], fill_value=0)
    t.columns = ["lnm_negative", "lnm_positive"]
    t.loc["total"] = t.sum()
    t["patients"] = t.sum(axis=1)
    return t.rename_axis("cohort").reset_index()


def acquisition_summary(study: pd.DataFrame) -> pd.DataFrame:
    """Per scanner: patients and the median voxel spacing / grid size of each sequence
    (read from the image headers only)."""
    import SimpleITK as sitk

    rows = []
    for _, r in study.iterrows():
        rec = {"scanner": r["scanner"], "centre": r["centre"]}
        for seq in SEQUENCES:
            p = r.get(f"image_{seq}")
            if _missing(p):
                continue
            if Path(p).is_dir():
                img = read_image(p)
                size, spacing = img.GetSize(), img.GetSpacing()
            else:
                reader = sitk.ImageFileReader()
                reader.SetFileName(str(p))
                reader.ReadImageInformation()
                size, spacing = reader.GetSize(), reader.GetSpacing()
            rec[f"{seq}_spacing_mm"] = "x".join(f"{v:.2f}" for v in spacing)
            rec[f"{seq}_size"] = "x".join(str(v) for v in size)
        rows.append(rec)
    df = pd.DataFrame(rows)
    agg = {c: (lambda s: s.mode().iat[0] if len(s.dropna()) else "") for c in df.columns if c not in ("scanner", "centre")}
    out = df.groupby(["centre", "scanner"]).agg(agg)
    out.insert(0, "patients", df.groupby(["centre", "scanner"]).size())
    return out.reset_index()


def resegmented_patients(study: pd.DataFrame) -> list[str]:
    """Patients with a reader-2 mask (the reproducibility subset)."""
    if "mask_r2_CET1" not in study:
        return []
    has = study["mask_r2_CET1"].map(lambda v: not _missing(v))
    return study.loc[has, "patient_id"].astype(str).tolist()


def example_patients(study: pd.DataFrame, n: int = 3, seed: int = 0, include_resegmented: bool = False) -> list[str]:
    """A few patients to show: alternately LNM-negative and LNM-positive, different centres;
    with ``include_resegmented`` one more patient of the reproducibility subset (if any)."""
    rng = np.random.default_rng([seed, 8])
    picked: list[str] = []
    centres_used: set = set()
    for k in range(n):
        lnm = k % 2
        pool = study[(study["lnm"] == lnm) & ~study["patient_id"].isin(picked)]
        fresh = pool[~pool["centre"].isin(centres_used)]
        pool = fresh if len(fresh) else pool
        if pool.empty:
            continue
        row = pool.iloc[int(rng.integers(len(pool)))]
        picked.append(str(row["patient_id"]))
        centres_used.add(row["centre"])
    if include_resegmented:
        extra = [p for p in resegmented_patients(study) if p not in picked]
        picked += extra[:1]
    return picked


def _display_slice(image_path: str, mask_path: str):
    """The axial slice with the largest mask area, both reoriented to LPS for display."""
    import SimpleITK as sitk

    raw = read_image(image_path)
    img = sitk.DICOMOrient(raw, "LPS")
    msk = sitk.DICOMOrient(read_mask(mask_path, raw), "LPS")
    a, m = sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(msk)
    k = int(np.argmax((m > 0).sum(axis=(1, 2))))
    sp = img.GetSpacing()
    return a[k], m[k] > 0, (sp[0], sp[1])


def plot_sequences(study: pd.DataFrame, patient_ids: list[str], *, readers: tuple[str, ...] = ("mask",)):
    """Fig. S1 analogue: for each patient, the three sequences on the slice with the largest
    tumour area, with the outline of the tumour mask (reader 1; add ``"mask_r2"`` to overlay
    reader 2). Returns a matplotlib Figure; images shown in radiological orientation."""
    import matplotlib.pyplot as plt

    colours = {"mask": "#ff3b30", "mask_r2": "#34c759", "mask_rep": "#0a84ff"}
    names = {"CET1": "CE-T1WI", "DWI": "DWI", "T2FS": "FS-T2WI"}
    rows = by_patient(study).loc[[str(p) for p in patient_ids]]
    fig, axes = plt.subplots(len(rows), len(SEQUENCES), figsize=(3.0 * len(SEQUENCES), 3.1 * len(rows)),
                             squeeze=False)
    for i, (pid, r) in enumerate(rows.iterrows()):
        for j, seq in enumerate(SEQUENCES):
            ax = axes[i, j]
            arr, m, sp = _display_slice(r[f"image_{seq}"], r[f"mask_{seq}"])
            lo, hi = np.percentile(arr, [0.5, 99.5])
            ext = (0, arr.shape[1] * sp[0], arr.shape[0] * sp[1], 0)
            ax.imshow(arr, cmap="gray", vmin=lo, vmax=hi, extent=ext, interpolation="nearest")
            for reader in readers:
                col = f"{reader}_{seq}"
                if col in r and not _missing(r[col]):
                    _, mr, _ = _display_slice(r[f"image_{seq}"], r[col]) if reader != "mask" else (None, m, None)
                    ax.contour(np.linspace(0, ext[1], mr.shape[1]), np.linspace(0, ext[2], mr.shape[0]),
                               mr.astype(float), levels=[0.5], colors=colours.get(reader, "y"), linewidths=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(names[seq], fontsize=10)
            if j == 0:
                ax.set_ylabel(f"{pid}\ncentre {r['centre']}, {r['scanner']}\nLNM {'+' if r['lnm'] else '-'}, {r['figo_stage']}",
                              fontsize=8)
    fig.tight_layout()
    return fig


def published_counts(study: pd.DataFrame) -> list[K.Row]:
    """The study's counts as reproduced values keyed like ``published_values.yaml`` (for
    ``Artifacts.reproduce``)."""
    out = [K.row("study", int(len(study)), name="included"),
           K.row("study", int(study["scanner"].nunique()), name="scanners")]
    out += [K.row("study", int(n), centre=K.centre_part(centre))
            for centre, n in study["centre"].value_counts().sort_index().items()]
    for cohort in COHORTS:
        y = study.loc[study["cohort"] == cohort, "lnm"]
        out.append(K.row("table1", [int((y == 0).sum()), int((y == 1).sum())], cohort=cohort))
    if "mask_r2_CET1" in study:
        out.append(K.row("study", int(study["mask_r2_CET1"].notna().sum()), name="icc_cases"))
    return out


def study_notes(source: str) -> list[str]:
    """What the report must say first about the kind of study (notebook 00's warnings)."""
    if source == "twin":
        return ["The study is the synthetic twin: simulated patients matching the paper's published summaries, "
                "not real data."]
    return []
