"""A "hospital export" built from a twin study: the layout a new user brings.

Per-patient folders named by the hospital's own IDs; CE-T1WI as a DICOM series folder (int16
with rescale slope/intercept and the tags a scanner writes) with its masks as NIfTI on the
series' grid (ITK-SNAP's output); DWI as NRRD images and masks; FS-T2WI as NIfTI; the clinical
sheet in its own column order. Used by tests/test_own_study.py.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

SEQ_LAYOUT = {  # sequence -> (image name, mask suffix, kind)
    "CET1": ("ax_t1_vibe_post", "_mask.nii.gz", "dicom"),
    "DWI": ("dwi_b800.nrrd", "_mask.nrrd", "nrrd"),
    "T2FS": ("t2_tse_fs.nii.gz", "_mask.nii.gz", "nifti"),
}


def write_dicom_series(img: sitk.Image, folder: Path, *, description: str, patient: str,
                       study_uid: str, series_uid: str) -> sitk.Image:
    """``img`` as a DICOM MR series (one file per slice, int16 with rescale); returns the
    image read back from the series (the grid its masks must be on)."""
    folder.mkdir(parents=True, exist_ok=True)
    arr = sitk.GetArrayFromImage(img).astype(np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    slope = max(hi - lo, 1e-6) / 30000.0
    # GDCM stores a float image as integers with these rescale tags (the scanners' own way)
    vol = sitk.GetImageFromArray(lo + np.round((arr - lo) / slope) * slope)
    vol.CopyInformation(img)
    direction = img.GetDirection()
    stamp = time.strftime("%Y%m%d")
    common = {
        "0008|0060": "MR", "0008|0070": "SIEMENS", "0008|1090": "MAGNETOM Skyra",
        "0008|103e": description, "0010|0010": f"ANON^{patient}", "0010|0020": patient,
        "0020|000d": study_uid, "0020|000e": series_uid, "0020|0011": "7",
        "0008|0020": stamp, "0008|0021": stamp, "0008|0008": "ORIGINAL\\PRIMARY\\M\\ND",
        "0018|0050": f"{img.GetSpacing()[2]:.6f}", "0018|0087": "3", "0018|0080": "4.2", "0018|0081": "1.9",
        "0020|0037": "\\".join(f"{v:.6f}" for v in (direction[0], direction[3], direction[6],
                                                        direction[1], direction[4], direction[7])),
        "0028|0100": "16", "0028|0101": "16", "0028|0102": "15", "0028|0103": "1",
        "0028|1052": f"{lo:.6f}", "0028|1053": f"{slope:.10f}", "0028|1054": "US",
    }
    import locale

    saved = locale.setlocale(locale.LC_ALL)  # GDCM's writer leaves LC_CTYPE at "C"
    try:
        _write_slices(vol, folder, common, series_uid)
    finally:
        locale.setlocale(locale.LC_ALL, saved)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _write_slices(vol: sitk.Image, folder: Path, common: dict, series_uid: str) -> None:
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(vol.GetDepth()):
        sl = vol[:, :, k]
        for tag, value in common.items():
            sl.SetMetaData(tag, value)
        pos = vol.TransformIndexToPhysicalPoint((0, 0, k))
        sl.SetMetaData("0020|0032", "\\".join(f"{v:.6f}" for v in pos))
        sl.SetMetaData("0020|0013", str(k + 1))
        sl.SetMetaData("0008|0018", f"{series_uid}.{k + 1}")
        writer.SetFileName(str(folder / f"IM{k + 1:04d}.dcm"))
        writer.Execute(sl)


def hospital_export(twin_manifest: Path, out: Path, *, icc: bool = True, seed: int = 0) -> Path:
    """Re-lay a twin study (its ``manifest.csv``) out as a hospital export in ``out``; returns
    the new manifest (``out/clinical_and_images.csv``)."""
    twin_manifest = Path(twin_manifest)
    base = twin_manifest.parent
    study = pd.read_csv(twin_manifest, dtype=str, keep_default_na=False)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rows = []
    for n, rec in enumerate(study.to_dict("records")):
        pid = f"H{1000 + n}"
        folder = out / pid
        row = {k: v for k, v in rec.items() if not k.startswith(("image_", "mask_", "sha256_"))}
        row["patient_id"] = pid
        for seq, (name, msuffix, kind) in SEQ_LAYOUT.items():
            img = sitk.ReadImage(str(base / rec[f"image_{seq}"]))
            stem = name.split(".")[0]
            if kind == "dicom":
                grid = write_dicom_series(img, folder / name, description=name, patient=pid,
                                          study_uid=f"1.2.826.0.1.3680043.8.498.{seed}.{n + 1}",
                                          series_uid=f"1.2.826.0.1.3680043.8.498.{seed}.{n + 1}.7")
            else:
                folder.mkdir(parents=True, exist_ok=True)
                sitk.WriteImage(img, str(folder / name), True)
                grid = img
            row[f"image_{seq}"] = f"{pid}/{name}"
            for prefix, tag in (("mask_", ""), ("mask_r2_", "_r2"), ("mask_rep_", "_rep")):
                src = rec.get(f"{prefix}{seq}", "")
                if not src or (prefix != "mask_" and not icc):
                    row[f"{prefix}{seq}"] = ""
                    continue
                m = sitk.ReadImage(str(base / src))
                arr = sitk.GetArrayFromImage(m).astype(np.uint8)
                mask = sitk.GetImageFromArray(arr)
                mask.CopyInformation(grid)
                target = f"{pid}/{stem}{tag}{msuffix}"
                sitk.WriteImage(mask, str(out / target), True)
                row[f"{prefix}{seq}"] = target
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not icc:
        frame = frame.drop(columns=[c for c in frame.columns if c.startswith(("mask_r2_", "mask_rep_"))])
    # the hospital's own column order: paths first, then the clinical sheet in reverse
    cols = [c for c in frame.columns if c.startswith(("image_", "mask_"))]
    others = [c for c in frame.columns if c not in cols]
    frame = frame[cols[::-1] + others[::-1]]
    target = out / "clinical_and_images.csv"
    frame.to_csv(target, index=False)
    return target
