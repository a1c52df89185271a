"""Validation of a study manifest: every problem with its clinical values and its files, at once."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.study.manifest import read_manifest, split_cohorts
from dlrc_lib.study.schema import (
    CLINICAL_REQUIRED,
    COHORTS,
    MANIFEST_LEVELS,
    path_columns,
)


@dataclass(frozen=True)
class Problem:
    """One finding of :func:`validate_manifest`; ``str()`` gives its one-line report."""

    severity: str  # "error" | "warning"
    patient: Optional[str]  # None for study-wide findings
    where: str  # column or file
    message: str

    def __str__(self) -> str:
        who = f"patient {self.patient}, " if self.patient is not None else ""
        return f"{self.severity}: {who}{self.where}: {self.message}"


def read_image(path: str | Path):
    """Read a NIfTI/NRRD/... file, or a DICOM series folder, with SimpleITK."""
    import SimpleITK as sitk

    p = Path(path)
    if p.is_dir():
        reader = sitk.ImageSeriesReader()
        ids = reader.GetGDCMSeriesIDs(str(p))
        if not ids:
            raise ValueError("folder holds no DICOM series")
        if len(ids) > 1:
            raise ValueError(f"folder holds {len(ids)} DICOM series, expected one")
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(p), ids[0]))
        return reader.Execute()
    return sitk.ReadImage(str(p))


def _geometry_problems(img, mask) -> list[str]:
    out = []
    if tuple(img.GetSize()) != tuple(mask.GetSize()):
        out.append(f"mask size {_fmt(mask.GetSize())} != image size {_fmt(img.GetSize())}")
        return out
    if not np.allclose(img.GetSpacing(), mask.GetSpacing(), rtol=1e-4, atol=1e-5):
        out.append(f"mask spacing {_fmt(mask.GetSpacing())} != image spacing {_fmt(img.GetSpacing())}")
    if not np.allclose(img.GetOrigin(), mask.GetOrigin(), rtol=0, atol=1e-3):
        out.append(f"mask origin {_fmt(mask.GetOrigin())} != image origin {_fmt(img.GetOrigin())}")
    if not np.allclose(img.GetDirection(), mask.GetDirection(), rtol=0, atol=1e-4):
        out.append(f"mask direction {_fmt(mask.GetDirection())} != image direction {_fmt(img.GetDirection())}")
    return out


def _itk_reason(exc: Exception) -> str:
    """The informative part of an ITK exception (the text after ``ERROR:``), on one line."""
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "ERROR:" in ln:
            return ln.split("ERROR:", 1)[1].strip()[:200]
    return (lines[-1] if lines else exc.__class__.__name__)[:200]


def _fmt(values) -> str:
    return "(" + ",".join(f"{v:g}" for v in values) + ")"


def _check_patient_files(job: tuple) -> list[Problem]:
    """Files of one patient: exist, readable, masks on the image grid, non-empty, labels."""
    import SimpleITK as sitk

    pid, base, entries, label = job
    problems: list[Problem] = []
    images: dict[str, Any] = {}
    for col, value in entries:  # images first (entries are ordered so)
        if value is None:
            continue
        p = Path(value) if Path(value).is_absolute() else Path(base) / value
        where = f"{col} ({value})"
        if not p.exists():
            problems.append(Problem("error", pid, where, "file not found"))
            continue
        try:
            img = read_image(p)
        except Exception as exc:  # noqa: BLE001 - ITK raises RuntimeError with a long text
            problems.append(Problem("error", pid, where, f"unreadable or corrupt image ({_itk_reason(exc)})"))
            continue
        if col.startswith("image_"):
            images[col[len("image_"):]] = img
            continue
        seq = col.split("_")[-1]
        ref = images.get(seq)
        if ref is not None:
            for msg in _geometry_problems(ref, img):
                problems.append(Problem("error", pid, where, msg))
        arr = sitk.GetArrayViewFromImage(img)
        values = np.unique(arr)
        extra = [v for v in values.tolist() if v not in (0, label)]
        if extra:
            shown = ", ".join(f"{v:g}" for v in extra[:5]) + (" ..." if len(extra) > 5 else "")
            problems.append(Problem("error", pid, where, f"mask has labels other than 0/{label}: {shown}"))
        elif label not in values.tolist():
            problems.append(Problem("error", pid, where, f"empty mask (no voxel labelled {label})"))
    return problems


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and v.strip() == "") or v is pd.NA


def validate_manifest(manifest_path: str | Path, params=None, *, check_images: bool = True,
                      n_jobs: int | None = None, progress: bool = False) -> list[Problem]:
    """Every problem with a study manifest, its clinical values and its files.

    Errors: missing required columns or values, duplicate patient IDs, LNM not 0/1, unknown
    categorical levels, a cohort with a single LNM class, a harmonisation batch (scanner or
    centre, per ``harmonisation.batch``) smaller than ``study.min_batch_size``, missing or
    unreadable files, masks whose size/spacing/origin/direction differ from their image's,
    empty masks, masks with labels other than 0 and ``study.mask_label``. Warnings (which do
    not fail): the other batch kind too small, age at menopause inconsistent with menopause.
    """
    from dlrc_lib.core.config import Params

    params = params or Params()
    st = params.study
    label = int(st.mask_label)
    path = Path(manifest_path)
    try:
        raw = read_manifest(path)
    except DlrcError as exc:
        return [Problem("error", None, str(path), str(exc).split(": ", 1)[-1])]
    problems: list[Problem] = []
    err = lambda pid, where, msg: problems.append(Problem("error", pid, where, msg))  # noqa: E731
    warn = lambda pid, where, msg: problems.append(Problem("warning", pid, where, msg))  # noqa: E731
    if raw.empty:
        err(None, str(path), "manifest has no patients")
        return problems
    required = list(CLINICAL_REQUIRED) + path_columns("image") + path_columns("mask")
    for col in required:
        if col not in raw:
            err(None, f"column {col}", "required column missing from the manifest")
    ids = raw["patient_id"].astype(str).str.strip() if "patient_id" in raw else pd.Series(
        [f"row {i + 2}" for i in range(len(raw))])
    ids = ids.where(~raw.get("patient_id", pd.Series([None] * len(raw))).isna(), [f"row {i + 2}" for i in range(len(raw))])
    for pid, n in ids.value_counts().items():
        if n > 1:
            err(pid, "patient_id", f"duplicate patient ID ({n} rows)")
    for i, pid in enumerate(ids):
        row = raw.iloc[i]
        for col in CLINICAL_REQUIRED:
            if col in raw and _missing(row[col]):
                err(pid, col, "missing required value")
        if "lnm" in raw and not _missing(row["lnm"]) and str(row["lnm"]).strip() not in ("0", "1", "0.0", "1.0"):
            err(pid, "lnm", f"LNM must be 0 or 1, got {str(row['lnm']).strip()!r}")
        if "node_necrosis" in raw and not _missing(row["node_necrosis"]) and str(row["node_necrosis"]).strip() not in ("0", "1", "0.0", "1.0"):
            err(pid, "node_necrosis", f"must be 0 or 1, got {str(row['node_necrosis']).strip()!r}")
        for col, levels in MANIFEST_LEVELS.items():
            if col in raw and not _missing(row[col]) and str(row[col]).strip() not in levels:
                err(pid, col, f"unknown level {str(row[col]).strip()!r} (expected one of {', '.join(levels)})")
        for col in ("age", "parity", "lnsd_mm", "lnld_mm", "age_at_menopause"):
            if col in raw and not _missing(row[col]):
                try:
                    v = float(row[col])
                except (TypeError, ValueError):
                    err(pid, col, f"not a number: {row[col]!r}")
                    continue
                if v < 0 or (col == "parity" and v != int(v)):
                    err(pid, col, f"must be a non-negative {'integer' if col == 'parity' else 'number'}, got {row[col]!r}")
        try:
            s, lg = float(row.get("lnsd_mm")), float(row.get("lnld_mm"))
            if s > lg:
                err(pid, "lnsd_mm", f"short axis {s:g} mm exceeds long axis {lg:g} mm")
        except (TypeError, ValueError):
            pass
        if "menopause" in raw and "age_at_menopause" in raw:
            post, am = row["menopause"], row["age_at_menopause"]
            if post == "Yes" and _missing(am):
                warn(pid, "age_at_menopause", "missing for a postmenopausal patient")
            if post == "No" and not _missing(am):
                warn(pid, "age_at_menopause", "given for a premenopausal patient")
        if "cohort" in raw and not raw["cohort"].isna().all():
            c = row["cohort"]
            if _missing(c):
                err(pid, "cohort", "missing cohort (leave the whole column empty to split by the parameters)")
            elif str(c).strip() not in COHORTS:
                err(pid, "cohort", f"unknown level {c!r} (expected one of {', '.join(COHORTS)})")
    # study-wide: cohorts with one class, batches too small to harmonise
    if {"lnm", "centre"} <= set(raw.columns):
        df = raw.copy()
        df["lnm"] = pd.to_numeric(df["lnm"], errors="coerce")
        if "cohort" not in df or df["cohort"].isna().all():
            df["cohort"] = split_cohorts(df, internal_centres=st.internal_centres,
                                         train_fraction=st.train_fraction, seed=params.seed)
        for cohort in COHORTS:
            y = df.loc[df["cohort"] == cohort, "lnm"].dropna()
            if len(y) == 0:
                warn(None, "cohort", f"no patients in the {cohort} cohort")
            elif y.nunique() < 2:
                err(None, "cohort", f"the {cohort} cohort has a single LNM class ({int(y.iloc[0])}: {len(y)} patients)")
    batch = params.harmonisation.batch if params.harmonisation.mode != "none" else None
    for col in ("scanner", "centre"):
        if col not in raw:
            continue
        for name, n in raw[col].dropna().astype(str).value_counts().sort_index().items():
            if n < st.min_batch_size:
                msg = (f"{col} {name} has {n} patient(s), fewer than min_batch_size={st.min_batch_size}: "
                       f"too small to harmonise")
                (err if col == batch else warn)(None, col, msg)
    if check_images:
        base = path.resolve().parent
        cols = [c for c in path_columns("image") + path_columns("mask") + path_columns("icc") if c in raw]
        jobs = []
        for i, pid in enumerate(ids):
            entries = []
            for col in cols:
                v = raw.iloc[i][col]
                if _missing(v):
                    if not col.startswith(("mask_r2_", "mask_rep_")):
                        err(pid, col, "missing file path")
                    continue
                entries.append((col, str(v).strip()))
            jobs.append((pid, str(base), entries, label))
        problems += _run_jobs(_check_patient_files, jobs, n_jobs if n_jobs is not None else st.n_jobs, progress)
    return problems


def _run_jobs(func, jobs: list, n_jobs: int, progress: bool) -> list[Problem]:
    from tqdm.auto import tqdm

    n_jobs = n_jobs or os.cpu_count() or 1
    out: list[Problem] = []
    bar = tqdm(total=len(jobs), desc="validate: patients", unit="patient", disable=not progress)
    if n_jobs == 1 or len(jobs) < 16:
        for job in jobs:
            out += func(job)
            bar.update()
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=n_jobs) as ex:
            for res in ex.map(func, jobs, chunksize=8):
                out += res
                bar.update()
    bar.close()
    return out


def cli_validate(args) -> int:
    """``dlrc validate MANIFEST [--params P]``: print every problem, one per line.

    Exit status 1 when there is at least one error (warnings alone do not fail)."""
    from dlrc_lib.core.config import Params, load_params

    params = load_params(args.params) if getattr(args, "params", None) else Params()
    problems = validate_manifest(args.manifest, params, progress=True)
    for p in problems:
        print(p)
    n_err = sum(p.severity == "error" for p in problems)
    n_warn = len(problems) - n_err
    print(f"dlrc validate: {args.manifest}: {n_err} error(s), {n_warn} warning(s)")
    return 1 if n_err else 0


def raise_for_problems(manifest: Path, problems: list[Problem]) -> None:
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        lines = "\n".join(f"  {p}" for p in errors)
        raise DlrcError(f"{manifest}: {len(errors)} problem(s) found by validation:\n{lines}")
