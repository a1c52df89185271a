"""The twin's 12 simulated MRI scanners and how patients are spread over centres/scanners.

Each scanner has its own field strength, field of view (so voxel spacing follows from the
grid size), slice coverage, patient-table origin, image orientation, per-sequence intensity
scale/offset, noise level, bias-field strength and DWI b-value. The values are invented
but span what multi-centre pelvic MRI shows (1.5 T vs 3 T, b = 800 or 1000 s/mm^2, DWI on
a coarser grid than CE-T1WI); ``scanner_effect`` in the parameters multiplies how far each
scanner's intensities depart from the average one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from dlrc_lib.twin.clinical import apportion


@dataclass(frozen=True)
class Scanner:
    name: str  # e.g. "A1"
    centre: str
    field_t: float  # field strength (T)
    weight: float  # share of its centre's patients
    fov_mm: tuple[float, float, float]  # CE-T1WI / FS-T2WI field of view (x, y, z)
    # DWI grid = round(shape * factor) in-plane, through-plane: about 2.1-2.9 mm in-plane and
    # 5-7 mm slices at paper scale (a typical reconstructed DWI), coarser than CE-T1WI/FS-T2WI
    # yet fine enough that the smallest IB1 tumour (8 mm) still spans a few voxels each way
    dwi_factor: tuple[float, float]
    b_value: int  # DWI b-value (s/mm^2)
    rotation_deg: float = 0.0  # in-plane rotation of the image axes (oblique acquisition)
    flip_xy: bool = False  # image rows/columns stored in the opposite orientation
    table_offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # per-sequence (CET1, DWI, T2FS): stored value = scale * signal + offset
    scale: tuple[float, float, float] = (1000.0, 1000.0, 1000.0)
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    noise: float = 0.02  # noise SD relative to the signal range (Rician magnitude)
    bias: float = 0.15  # amplitude of the smooth multiplicative bias field (log scale)
    contrast: tuple[float, float, float] = (1.0, 1.0, 1.0)  # tissue-contrast gamma per sequence

    def to_dict(self) -> dict:
        return asdict(self)


SCANNERS: tuple[Scanner, ...] = (
    Scanner("A1", "A", 3.0, 0.34, (240, 240, 84), (0.8, 0.8), 1000, 0.0, False, (0, 0, 0),
            (1100, 820, 950), (0, 0, 0), 0.015, 0.10, (1.00, 1.00, 1.00)),
    Scanner("A2", "A", 3.0, 0.28, (250, 250, 90), (0.72, 0.75), 800, 4.0, False, (2, -5, 6),
            (1500, 1400, 1250), (20, 0, 10), 0.018, 0.14, (1.08, 0.95, 1.05)),
    Scanner("A3", "A", 1.5, 0.22, (260, 260, 96), (0.72, 0.7), 800, 0.0, True, (-3, 4, -8),
            (700, 520, 640), (0, 5, 0), 0.035, 0.20, (0.92, 1.05, 0.95)),
    Scanner("A4", "A", 1.5, 0.16, (270, 270, 90), (0.8, 0.75), 1000, -3.0, False, (0, 0, 12),
            (880, 610, 760), (40, 0, 20), 0.03, 0.22, (0.95, 1.10, 1.00)),
    Scanner("B1", "B", 3.0, 0.45, (230, 230, 80), (0.87, 0.8), 1000, 0.0, False, (5, 3, -4),
            (1800, 1200, 1600), (0, 10, 0), 0.012, 0.12, (1.10, 0.90, 1.10)),
    Scanner("B2", "B", 1.5, 0.35, (260, 260, 96), (0.72, 0.75), 800, 6.0, True, (0, 0, 0),
            (600, 700, 520), (10, 0, 5), 0.04, 0.25, (0.90, 1.00, 0.92)),
    Scanner("B3", "B", 3.0, 0.20, (245, 245, 88), (0.8, 0.8), 800, 0.0, False, (-4, 6, 3),
            (1250, 950, 1350), (0, 0, 0), 0.02, 0.18, (1.05, 1.08, 0.98)),
    Scanner("C1", "C", 3.0, 0.6, (240, 240, 80), (0.87, 0.8), 1000, -5.0, False, (0, -2, 0),
            (2100, 1650, 1900), (50, 20, 30), 0.016, 0.15, (1.12, 1.05, 1.08)),
    Scanner("C2", "C", 1.5, 0.4, (270, 270, 100), (0.72, 0.7), 800, 0.0, True, (3, 0, -6),
            (520, 450, 480), (0, 0, 0), 0.045, 0.28, (0.88, 0.92, 0.90)),
    Scanner("D1", "D", 3.0, 0.55, (235, 235, 84), (0.8, 0.8), 800, 3.0, False, (0, 4, 4),
            (1350, 1050, 1150), (0, 0, 15), 0.02, 0.16, (1.02, 0.97, 1.03)),
    Scanner("D2", "D", 1.5, 0.45, (255, 255, 92), (0.72, 0.75), 1000, 0.0, False, (-2, 0, 0),
            (760, 560, 700), (15, 0, 0), 0.038, 0.24, (0.94, 1.06, 0.97)),
    Scanner("E1", "E", 3.0, 1.0, (250, 250, 88), (0.87, 0.8), 1000, 8.0, True, (0, 0, -10),
            (1650, 1500, 1450), (0, 30, 0), 0.022, 0.20, (1.06, 1.12, 1.02)),
)

SCANNER_BY_NAME: dict[str, Scanner] = {s.name: s for s in SCANNERS}


def assign_centres(df: pd.DataFrame, published: Mapping, *, scale: float, seed: int,
                   min_batch_size: int = 2) -> pd.DataFrame:
    """Add ``centre`` and ``scanner``: training/internal patients come from centre A, the
    external cohort from centres B-E in the published proportions.

    At ``scale < 1`` every centre keeps at least ``min_batch_size`` patients (when the
    external cohort is too small for all four, the smallest centres drop out), and a scanner
    whose share would fall below ``min_batch_size`` hands its patients to its centre's
    largest scanner (so every scanner that appears can be harmonised). Within the external
    cohort the centres are drawn stratified by LNM class.
    """
    rng = np.random.default_rng([seed, 3])
    out = df.copy()
    centre = np.empty(len(df), dtype=object)
    a_mask = out["cohort"].isin(["train", "internal"]).to_numpy()
    centre[a_mask] = "A"
    ext = np.flatnonzero(~a_mask)
    sizes = dict(published["study"]["centres"])
    ext_names = [c for c in sizes if c != "A"]
    weights = [sizes[c] for c in ext_names]
    if len(ext) == sum(weights):
        counts = np.array(weights)
    else:  # scaled: the largest centres that can each keep min_batch_size patients
        n_keep = max(1, min(len(ext_names), len(ext) // max(1, min_batch_size)))
        keep = sorted(np.argsort(-np.asarray(weights), kind="stable")[:n_keep])
        counts = np.zeros(len(ext_names), dtype=int)
        counts[keep] = _with_minimum(apportion(len(ext), [weights[i] for i in keep]), min_batch_size)
    # stratified by LNM: order external patients by class, deal centres round-robin in blocks
    lnm = out["lnm"].to_numpy()[ext]
    labels = np.repeat(np.array(ext_names, dtype=object), counts)
    order = np.concatenate([rng.permutation(ext[lnm == 0]), rng.permutation(ext[lnm == 1])])
    # interleave centre labels so each centre gets both classes in proportion
    lab_order = np.argsort(_spread(counts), kind="stable")
    centre[order] = labels[lab_order]
    out["centre"] = centre
    scanner = np.empty(len(df), dtype=object)
    for c in sorted(set(centre)):
        members = rng.permutation(np.flatnonzero(centre == c))
        scs = [s for s in SCANNERS if s.centre == c]
        k = apportion(len(members), [s.weight for s in scs]) if scale < 1 else _exact_share(len(members), scs)
        k = _merge_small(k, min_batch_size)
        scanner[members] = np.repeat(np.array([s.name for s in scs], dtype=object), k)
    out["scanner"] = scanner
    return out


def _exact_share(n: int, scs) -> np.ndarray:
    return apportion(n, [s.weight for s in scs])


def _spread(counts: np.ndarray) -> np.ndarray:
    """Sort keys that interleave labels: the j-th member of a group of size n sits at (j+.5)/n."""
    keys = [(np.arange(n) + 0.5) / n for n in counts if n > 0]
    return np.concatenate(keys) if keys else np.array([])


def _with_minimum(counts: np.ndarray, minimum: int) -> np.ndarray:
    counts = counts.copy()
    for i in range(len(counts)):
        while counts[i] < minimum:
            j = int(np.argmax(counts))
            if counts[j] <= minimum:
                break
            counts[j] -= 1
            counts[i] += 1
    return counts


def _merge_small(counts: np.ndarray, minimum: int) -> np.ndarray:
    counts = counts.copy()
    while True:
        small = [i for i, v in enumerate(counts) if 0 < v < minimum]
        if not small or (counts > 0).sum() <= 1:
            return counts
        i = min(small, key=lambda t: (counts[t], t))
        j = max((t for t in range(len(counts)) if t != i), key=lambda t: (counts[t], -t))
        counts[j] += counts[i]
        counts[i] = 0
