"""The study table: one row per patient, from the synthetic twin or a user's manifest.

A study is a CSV manifest (one row per patient; image and mask paths relative to the
manifest; NIfTI, NRRD or a DICOM series folder). :func:`load_study` reads it into the
study table every notebook uses; :func:`validate_manifest` lists every problem with it
before anything is extracted; :func:`prepare_study` gives the run its manifest (generating
the twin when needed) after validation.

Columns of the study table: ``patient_id, centre, scanner, cohort (train|internal|external),
lnm, age, parity, menopause, age_at_menopause, family_history, figo_stage, histology,
lnsd_mm, lnld_mm, node_necrosis, c_lnm`` (= ``lnsd_mm >= 10``), and absolute paths
``image_<SEQ>``, ``mask_<SEQ>`` (reader 1), ``mask_r2_<SEQ>`` (reader 2) and
``mask_rep_<SEQ>`` (reader 1 repeat; the last two only for the re-segmented subset).
Optional: reader 2's (and reader 1's own) node reading (:data:`READER2_COLUMNS`,
:data:`READER1_COLUMNS`) and the acquisition columns of Table S1 (:data:`ACQUISITION_COLUMNS`),
all described in ``docs/manifest.md``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd

from .errors import DlrcError

SEQUENCES = ("CET1", "DWI", "T2FS")
COHORTS = ("train", "internal", "external")
CLINICAL_REQUIRED = ("patient_id", "centre", "scanner", "lnm", "age", "parity", "menopause",
                     "family_history", "figo_stage", "histology", "lnsd_mm", "lnld_mm", "node_necrosis")
LEVELS = {
    "menopause": ("No", "Yes"),
    "family_history": ("No", "Yes"),
    "figo_stage": ("IB1", "IB2", "IB3", "IIA1", "IIA2"),
    "histology": ("SCC", "AC", "ASC", "Other"),
}
PATH_PREFIXES = ("image_", "mask_", "mask_r2_", "mask_rep_")
#: Optional: reader 2's independent reading of the largest node (Supplementary Method S1);
#: ``lnsd_mm``, ``lnld_mm``, ``node_necrosis`` hold the final (consensus) reading.
READER2_COLUMNS = ("lnsd_mm_r2", "lnld_mm_r2", "node_necrosis_r2")
#: Optional acquisition columns (Supplementary Table S1); an absent one reads "not given".
ACQUISITION_TEXT = ("scanner_vendor", "scanner_model")
ACQUISITION_NUMERIC = ("field_strength_t",) + tuple(
    f"{what}_{seq}" for what in ("tr_ms", "te_ms", "slice_thickness_mm") for seq in SEQUENCES)
ACQUISITION_INPLANE = tuple(f"inplane_mm_{seq}" for seq in SEQUENCES)  # "0.94x0.94" or "0.94"
ACQUISITION_COLUMNS = ACQUISITION_TEXT + ACQUISITION_NUMERIC + ACQUISITION_INPLANE + ("dwi_b_values",)
#: Optional: reader 1's own reading, when the final reading (``lnsd_mm`` ...) is a consensus
#: that differs from it; without them the final reading counts as reader 1's.
READER1_COLUMNS = ("lnsd_mm_r1", "lnld_mm_r1", "node_necrosis_r1")
_NODE_OPTIONAL_DIAMETERS = ("lnsd_mm_r1", "lnld_mm_r1", "lnsd_mm_r2", "lnld_mm_r2")
_NODE_OPTIONAL_FLAGS = ("node_necrosis_r1", "node_necrosis_r2")
C_LNM_SHORT_AXIS_MM = 10.0  # the paper's c_LNM: largest pelvic node's short axis >= 10 mm on MRI


def c_lnm_from_short_axis(lnsd_mm: pd.Series) -> pd.Series:
    """Clinically suspected LNM (0/1) from the largest node's short-axis diameter (mm)."""
    return (lnsd_mm >= C_LNM_SHORT_AXIS_MM).astype(int)


def path_columns(kind: str = "all") -> list[str]:
    """Manifest path columns: ``image``, ``mask`` (reader 1), ``icc`` (r2 + repeat) or ``all``."""
    cols = []
    if kind in ("image", "all"):
        cols += [f"image_{s}" for s in SEQUENCES]
    if kind in ("mask", "all"):
        cols += [f"mask_{s}" for s in SEQUENCES]
    if kind in ("icc", "all"):
        cols += [f"mask_r2_{s}" for s in SEQUENCES] + [f"mask_rep_{s}" for s in SEQUENCES]
    return cols


def parse_inplane(value) -> tuple[float, float]:
    """``"0.94x0.94"`` (or ``"0.94 x 0.94"``, ``"0.94"``) -> (0.94, 0.94); ValueError otherwise."""
    parts = [p.strip() for p in str(value).lower().replace("×", "x").split("x")]
    if len(parts) not in (1, 2) or not all(parts):
        raise ValueError(f"expected 'ROWxCOL' in mm, e.g. 0.94x0.94, got {value!r}")
    nums = tuple(float(p) for p in parts)
    if any(not np.isfinite(v) or v <= 0 for v in nums):
        raise ValueError(f"in-plane resolution must be positive, got {value!r}")
    return (nums[0], nums[-1])


def parse_b_values(value) -> tuple[int, ...]:
    """``"0, 800"`` (commas, semicolons or spaces) -> (0, 800); ValueError otherwise."""
    text = str(value).replace(";", ",").replace(" ", ",")
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"no b-value in {value!r}")
    out = []
    for p in parts:
        v = float(p)
        if not np.isfinite(v) or v < 0 or v != int(v):
            raise ValueError(f"b-values must be non-negative integers (s/mm²), got {value!r}")
        out.append(int(v))
    return tuple(sorted(set(out)))


def split_cohorts(df: pd.DataFrame, *, internal_centres: Iterable[str] = ("A",),
                  train_fraction: float = 0.7, seed: int = 0) -> pd.Series:
    """Cohort of each patient when the manifest has none: patients of ``internal_centres``
    are split train/internal at ``train_fraction``, stratified by LNM (seeded); the others
    form the external cohort."""
    rng = np.random.default_rng([seed, 7])
    cohort = pd.Series("external", index=df.index, dtype=object)
    internal = df["centre"].astype(str).isin([str(c) for c in internal_centres])
    for lnm in sorted(df.loc[internal, "lnm"].dropna().unique()):
        idx = df.index[internal & (df["lnm"] == lnm)].to_numpy()
        idx = idx[rng.permutation(len(idx))]
        n_train = int(np.floor(len(idx) * train_fraction + 0.5))
        cohort.loc[idx[:n_train]] = "train"
        cohort.loc[idx[n_train:]] = "internal"
    return cohort


def read_manifest(manifest_path: str | Path) -> pd.DataFrame:
    """The manifest CSV as written (strings kept as strings; no checks)."""
    path = Path(manifest_path)
    if not path.is_file():
        raise DlrcError(f"{path}: manifest not found")
    try:
        df = pd.read_csv(path, dtype={"patient_id": str, "centre": str, "scanner": str}, keep_default_na=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
        raise DlrcError(f"{path}: not a readable CSV manifest ({exc.__class__.__name__}: {exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _abs_path(base: Path, value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
        return np.nan
    p = Path(str(value).strip())
    return str(p if p.is_absolute() else (base / p).resolve())


def load_study(manifest_path: str | Path, params=None) -> pd.DataFrame:
    """The study table of a manifest (see the module docstring); paths made absolute.

    ``params`` (a :class:`dlrc_lib.config.Params`) is needed only when the manifest has no
    ``cohort`` column: the cohorts are then drawn by :func:`split_cohorts` from
    ``study.internal_centres``, ``study.train_fraction`` and ``seed``.
    """
    path = Path(manifest_path)
    df = read_manifest(path)
    base = path.resolve().parent
    if "patient_id" in df:
        df["patient_id"] = df["patient_id"].astype(str).str.strip()
    for col in ("lnm", "parity", "node_necrosis"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    for col in ("age", "age_at_menopause", "lnsd_mm", "lnld_mm", *_NODE_OPTIONAL_DIAMETERS, *ACQUISITION_NUMERIC):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    for col in _NODE_OPTIONAL_FLAGS:
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    if "cohort" not in df or df["cohort"].isna().all():
        if params is None:
            from .config import Params

            params = Params()
        df["cohort"] = split_cohorts(df, internal_centres=params.study.internal_centres,
                                     train_fraction=params.study.train_fraction, seed=params.seed)
    if "lnsd_mm" in df and ("c_lnm" not in df or df["c_lnm"].isna().all()):
        # MRI-reported node status: short axis >= 10 mm (the paper's rule), unless the manifest
        # brings the radiologist's own call
        df["c_lnm"] = c_lnm_from_short_axis(df["lnsd_mm"])
    elif "c_lnm" in df:
        df["c_lnm"] = pd.to_numeric(df["c_lnm"], errors="coerce").astype("Int64")
        if not df["c_lnm"].isna().any():
            df["c_lnm"] = df["c_lnm"].astype(int)
    for col in ("lnm", "parity", "node_necrosis"):
        if col in df and not df[col].isna().any():
            df[col] = df[col].astype(int)
    for col in df.columns:
        if col.startswith(PATH_PREFIXES):
            df[col] = [_abs_path(base, v) for v in df[col]]
    front = ["patient_id", "centre", "scanner", "cohort", "lnm", "age", "parity", "menopause",
             "age_at_menopause", "family_history", "figo_stage", "histology", "lnsd_mm", "lnld_mm",
             "node_necrosis", "c_lnm"]
    cols = [c for c in front if c in df] + [c for c in df.columns if c not in front]
    return df[cols].reset_index(drop=True)


# ------------------------------------------------------------------------ validation
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
    from .config import Params

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
    for group in (READER1_COLUMNS, READER2_COLUMNS):
        given = [c for c in group if c in raw]
        if given and len(given) < len(group):
            for col in group:
                if col not in raw:
                    err(None, f"column {col}", f"optional reader columns come as a set ({', '.join(group)}); "
                                               f"this one is missing")
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
        for col, levels in LEVELS.items():
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
        _check_optional(raw, row, pid, err)
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


def _shown(value: Any) -> str:
    """A manifest value as the user wrote it (numbers read by pandas without a trailing .0)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _check_optional(raw: pd.DataFrame, row: pd.Series, pid: str, err) -> None:
    """The optional reader-1/reader-2 node columns and acquisition columns of one row."""
    for group in (READER1_COLUMNS, READER2_COLUMNS):
        if not all(c in raw for c in group):
            continue  # an incomplete set is reported once, study-wide
        given = [c for c in group if not _missing(row[c])]
        if not given:
            continue  # this patient was not read by that reader
        if len(given) < len(group):
            absent = [c for c in group if c not in given]
            err(pid, absent[0], f"missing value while {', '.join(given)} given (a reader's reading comes whole)")
            continue
        sd_col, ld_col, nec_col = group
        if str(row[nec_col]).strip() not in ("0", "1", "0.0", "1.0"):
            err(pid, nec_col, f"must be 0 or 1, got {_shown(row[nec_col])!r}")
        vals = {}
        for col in (sd_col, ld_col):
            try:
                vals[col] = float(row[col])
            except (TypeError, ValueError):
                err(pid, col, f"not a number: {_shown(row[col])!r}")
                continue
            if not np.isfinite(vals[col]) or vals[col] < 0:
                err(pid, col, f"must be a non-negative number, got {_shown(row[col])!r}")
        if len(vals) == 2 and vals[sd_col] > vals[ld_col]:
            err(pid, sd_col, f"short axis {vals[sd_col]:g} mm exceeds long axis {vals[ld_col]:g} mm")
    for col in ACQUISITION_NUMERIC:
        if col in raw and not _missing(row[col]):
            try:
                v = float(row[col])
            except (TypeError, ValueError):
                err(pid, col, f"not a number: {_shown(row[col])!r}")
                continue
            if not np.isfinite(v) or v <= 0:
                err(pid, col, f"must be a positive number, got {_shown(row[col])!r}")
    for col in ACQUISITION_INPLANE + ("dwi_b_values",):
        if col in raw and not _missing(row[col]):
            try:
                (parse_b_values if col == "dwi_b_values" else parse_inplane)(row[col])
            except ValueError as exc:
                err(pid, col, str(exc))


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
    from .config import Params, load_params

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


def prepare_study(params) -> Path:
    """The run's manifest, validated; the twin is (re)generated when missing or stale.

    Twin: ``study.json`` in ``params.twin_dir`` must record the same generator version, seed
    and parameters, else the study is generated again; a generated study is validated once
    and the result recorded in ``study.json``. Manifest: validated on every call. Raises
    :class:`DlrcError` listing every error.
    """
    from .artifacts import atomic_write_text, dumps

    if params.study.source == "manifest":
        manifest = Path(params.study.manifest or "")
        raise_for_problems(manifest, validate_manifest(manifest, params, progress=True))
        return manifest
    from .synth import generate_study, study_fingerprint

    out = params.twin_dir
    manifest, meta_path = out / "manifest.csv", out / "study.json"
    want = study_fingerprint(params)
    meta = None
    if meta_path.is_file() and manifest.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError:
            meta = None
    if meta is None or any(meta.get(k) != v for k, v in json.loads(dumps(want)).items()):
        generate_study(params, out)
        meta = json.loads(meta_path.read_text())
    if not meta.get("validated"):
        raise_for_problems(manifest, validate_manifest(manifest, params, progress=True))
        meta["validated"] = True
        atomic_write_text(meta_path, dumps(meta))
    return manifest


# ----------------------------------------------------------------------------- views
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

    img = sitk.DICOMOrient(read_image(image_path), "LPS")
    msk = sitk.DICOMOrient(read_image(mask_path), "LPS")
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
    rows = study.set_index("patient_id").loc[list(patient_ids)]
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


def published_counts(study: pd.DataFrame) -> dict[str, Any]:
    """The study's counts keyed like ``published_values.yaml`` (for ``Artifacts.reproduce``)."""
    out: dict[str, Any] = {"study.included": int(len(study)), "study.scanners": int(study["scanner"].nunique())}
    for centre, n in study["centre"].value_counts().sort_index().items():
        out[f"study.centres.{centre}"] = int(n)
    for cohort in COHORTS:
        y = study.loc[study["cohort"] == cohort, "lnm"]
        out[f"table1.n.{cohort}"] = [int((y == 0).sum()), int((y == 1).sum())]
    if "mask_r2_CET1" in study:
        out["study.icc_cases"] = int(study["mask_r2_CET1"].notna().sum())
    return out


def by_patient(study: pd.DataFrame) -> pd.DataFrame:
    """The study indexed by ``patient_id`` as text (a copy; an existing index is kept)."""
    if "patient_id" in study.columns:
        study = study.set_index("patient_id")
    else:
        study = study.copy()
    study.index = study.index.astype(str)
    return study
