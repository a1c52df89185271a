"""A tiny multi-sequence study on disk (SimpleITK volumes) for the radiomics tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

SEQS = ("CET1", "DWI", "T2FS")


def write_case(folder: Path, name: str, *, seed: int, shape=(24, 24, 8), spacing=(4.0, 4.0, 8.0),
               radius=(5.0, 4.0, 2.0), contrast=300.0, mask_shift=(0, 0, 0)) -> tuple[Path, Path, np.ndarray]:
    """An image with a noisy ellipsoidal 'tumour' and its mask; returns paths and the mask array."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[: shape[2], : shape[1], : shape[0]]
    c = np.array(shape[::-1]) / 2 - 0.5
    r = ((z - c[0]) / radius[2]) ** 2 + ((y - c[1]) / radius[1]) ** 2 + ((x - c[2]) / radius[0]) ** 2
    img = 200 + 40 * rng.normal(size=r.shape) + contrast * (r < 1) * (1 + 0.3 * rng.normal(size=r.shape))
    im = sitk.GetImageFromArray(img.astype(np.int16))
    im.SetSpacing(spacing)
    m_arr = (r < 1 + 0.3 * rng.random()).astype(np.uint8)
    m_arr = np.roll(m_arr, mask_shift, axis=(0, 1, 2))
    m = sitk.GetImageFromArray(m_arr)
    m.CopyInformation(im)
    folder.mkdir(parents=True, exist_ok=True)
    ip, mp = folder / f"{name}.nii.gz", folder / f"{name}_mask.nii.gz"
    sitk.WriteImage(im, str(ip))
    sitk.WriteImage(m, str(mp))
    return ip, mp, m_arr


def write_mask(path: Path, like: Path, arr: np.ndarray) -> Path:
    ref = sitk.ReadImage(str(like))
    m = sitk.GetImageFromArray(arr.astype(np.uint8))
    m.CopyInformation(ref)
    sitk.WriteImage(m, str(path))
    return path


def make_study(root: Path, n: int = 4, icc: int = 0, seed: int = 0) -> pd.DataFrame:
    """n patients x 3 sequences; the first ``icc`` also get reader-2 and repeat masks
    (the reader-1 mask eroded/dilated by one voxel in places)."""
    rows = []
    for i in range(n):
        pid = f"P{i:03d}"
        row = {"patient_id": pid, "centre": "A", "scanner": "A1", "cohort": "train", "lnm": i % 2}
        for k, seq in enumerate(SEQS):
            ip, mp, arr = write_case(root / pid, seq, seed=seed * 1000 + i * 10 + k,
                                     contrast=250.0 + 60 * (i % 3) + 20 * k)
            row[f"image_{seq}"] = str(ip)
            row[f"mask_{seq}"] = str(mp)
            if i < icc:
                rng = np.random.default_rng(seed * 7 + i * 10 + k)
                from scipy import ndimage

                grown = ndimage.binary_dilation(arr, iterations=1)
                r2 = np.where(rng.random(arr.shape) < 0.3, grown, arr)
                rep = np.where(rng.random(arr.shape) < 0.15, grown, arr)
                row[f"mask_r2_{seq}"] = str(write_mask(root / pid / f"{seq}_mask_r2.nii.gz", ip, r2))
                row[f"mask_rep_{seq}"] = str(write_mask(root / pid / f"{seq}_mask_rep.nii.gz", ip, rep))
            else:
                row[f"mask_r2_{seq}"] = np.nan
                row[f"mask_rep_{seq}"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows)
