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
Optional: reader 2's (and reader 1's own) node reading (``READER2_COLUMNS``,
``READER1_COLUMNS``) and the acquisition columns of Table S1 (``ACQUISITION_COLUMNS``), all
in :mod:`dlrc_lib.study.schema` and described in ``docs/manifest.md``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.study.schema import (
    ACQUISITION_NUMERIC,
    NODE_OPTIONAL_DIAMETERS,
    NODE_OPTIONAL_FLAGS,
    PATH_PREFIXES,
    c_lnm_from_short_axis,
)


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


# Identifier, path and digest columns are read as text, never type-guessed. Besides keeping
# "007" and "E1" as written, this keeps pandas' C float parser away from SHA-256 digests: one
# such as "389e2303514989370e7f0..." reads to it as a number with a 16-digit exponent, and
# pandas 2.3 crashes the whole process on it (a segmentation fault in its parser, not an
# exception), which 1 in a few thousand random digests triggers.
TEXT_COLUMNS = ("patient_id", "centre", "scanner")
TEXT_PREFIXES = ("image_", "mask_", "sha256_")


def read_manifest_csv(path: str | Path, **kwargs: Any) -> pd.DataFrame:
    """``pd.read_csv`` of a manifest-like patient table with :data:`TEXT_COLUMNS` and every
    column named ``image_*``, ``mask_*`` or ``sha256_*`` read as text (header names stripped
    of spaces first). Other columns are parsed as pandas would; ``kwargs`` go to read_csv."""
    header = pd.read_csv(path, nrows=0).columns
    text = {c: str for c in header
            if str(c).strip() in TEXT_COLUMNS or str(c).strip().startswith(TEXT_PREFIXES)}
    df = pd.read_csv(path, dtype=text, **kwargs)
    df.columns = [str(c).strip() for c in df.columns]
    return df


def read_manifest(manifest_path: str | Path) -> pd.DataFrame:
    """The manifest CSV as written (strings kept as strings; no checks)."""
    path = Path(manifest_path)
    if not path.is_file():
        raise DlrcError(f"{path}: manifest not found")
    try:
        return read_manifest_csv(path, keep_default_na=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
        raise DlrcError(f"{path}: not a readable CSV manifest ({exc.__class__.__name__}: {exc})") from None


def _abs_path(base: Path, value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
        return np.nan
    p = Path(str(value).strip())
    return str(p if p.is_absolute() else (base / p).resolve())


def load_study(manifest_path: str | Path, params=None) -> pd.DataFrame:
    """The study table of a manifest (see the module docstring); paths made absolute.

    ``params`` (a :class:`dlrc_lib.core.config.Params`) is needed only when the manifest has no
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
    for col in ("age", "age_at_menopause", "lnsd_mm", "lnld_mm", *NODE_OPTIONAL_DIAMETERS, *ACQUISITION_NUMERIC):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    for col in NODE_OPTIONAL_FLAGS:
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    if "cohort" not in df or df["cohort"].isna().all():
        if params is None:
            from dlrc_lib.core.config import Params

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


def by_patient(study: pd.DataFrame) -> pd.DataFrame:
    """The study indexed by ``patient_id`` as text (a copy; an existing index is kept)."""
    if "patient_id" in study.columns:
        study = study.set_index("patient_id")
    else:
        study = study.copy()
    study.index = study.index.astype(str)
    return study
