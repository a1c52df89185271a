"""Figures of the deep-learning inputs (what the networks actually see)."""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from dlrc_lib.features.deep.extract import SEQUENCES, study_cases
from dlrc_lib.features.deep.preprocess import prepare


def example_patients(study: pd.DataFrame, n: int = 3) -> list[str]:
    """``n`` training patients in manifest order, alternating LNM(-) and LNM(+)."""
    df = study.reset_index(drop=True) if "patient_id" in study.columns else study.reset_index()
    train = df[df["cohort"].astype(str) == "train"] if (df["cohort"].astype(str) == "train").any() else df
    neg = list(train.loc[train["lnm"] == 0, "patient_id"].astype(str))
    pos = list(train.loc[train["lnm"] == 1, "patient_id"].astype(str))
    out: list[str] = []
    while len(out) < n and (neg or pos):
        for group in (neg, pos):
            if group and len(out) < n:
                out.append(group.pop(0))
    return out


def plot_network_inputs(study: pd.DataFrame, deep_params, patients: Sequence[str] | int = 3,
                        sequences: Sequence[str] = SEQUENCES):
    """Grid of the network inputs: per patient (rows) and sequence, the 2D crop of the
    largest-tumour slice and the middle depth of the 3D crop, after percentile clipping,
    with the tumour outline. Returns a matplotlib Figure (not saved, not shown)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if isinstance(patients, int):
        patients = example_patients(study, patients)
    cases = [c for c in study_cases(study, sequences) if c.patient_id in set(patients)]
    lookup = {(c.patient_id, c.sequence): c for c in cases}
    ncol = 2 * len(sequences)
    fig, axes = plt.subplots(len(patients), ncol, figsize=(1.9 * ncol, 2.1 * len(patients)), squeeze=False)
    lnm = (study.set_index(study["patient_id"].astype(str)) if "patient_id" in study.columns else study)["lnm"]
    kw = dict(input_size=deep_params.input_size, shape_3d=tuple(deep_params.shape_3d),
              margin=deep_params.margin, clip=tuple(deep_params.clip_percentiles))
    for r, pid in enumerate(patients):
        for s, seq in enumerate(sequences):
            case = lookup[(pid, seq)]
            for k, dim in enumerate(("2D", "3D")):
                crop = prepare(case.image, case.mask, dim, patient=pid, **kw)
                img, msk = crop.image, crop.mask
                if dim == "3D":
                    img, msk = img[img.shape[0] // 2], msk[msk.shape[0] // 2]
                ax = axes[r, 2 * s + k]
                ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                if msk.any() and msk.min() == 0:
                    ax.contour(msk.astype(float), levels=[0.5], colors="#ff7f0e", linewidths=0.7)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    shape = "x".join(map(str, crop.image.shape))
                    ax.set_title(f"{seq} {dim}\n{shape}", fontsize=8)
                if 2 * s + k == 0:
                    ax.set_ylabel(f"{pid}\nLNM {'+' if int(lnm.get(pid, 0)) else '-'}", fontsize=8)
    fig.suptitle("Network inputs (after cropping, resampling and percentile clipping; "
                 "3D: middle depth)", fontsize=9)
    fig.tight_layout()
    return fig
