""":func:`dlrc_lib.study.validate_manifest` checks the manifest's clinical values and calls
:func:`~dlrc_lib.study.file_checks.check_patient_files` for every patient (through
:func:`~dlrc_lib.study.validation_cache.check_study_files`, which consults the validation
cache first). Every file is read completely once:

* its bytes are hashed (SHA-256, the same digest as
  :func:`dlrc_lib.core.digest.file_digest`), recorded in the validated study table
  (``sha256_<column>``) and compared again before extraction (:func:`verify_digests`);
* a compressed file (``.nii.gz``, NRRD with gzip/bzip2 encoding) is decompressed here, not
  only by ITK: a stream that ends early or fails its CRC, or that decompresses to fewer or
  more bytes than its header promises, is refused (SimpleITK can return a zero-filled
  image for some of these without raising);
* the voxels are decoded by SimpleITK and checked: finite values, finite positive
  spacing, an orthonormal direction matrix, one volume (a 4D image is named with its volume
  count); masks: on their image's grid (one saved on a cropped extent of it is placed there
  first), only the configured label, not empty; images: not constant inside their masks;
* a DICOM series folder must hold one series whose slices are evenly spaced (no missing
  or duplicated slice) and nothing else; files and masks are read as everywhere else
  (:mod:`dlrc_lib.study.images`: a DICOM-SEG mask is placed on its image's grid).

The cache (``<cache_dir>/validation/<manifest>.json``) keeps, per patient, the problems
found and the digests, keyed by every file's path, size, modification and change time and
inode (and the mask label and this module's version). A file rewritten in any way changes
its change time, so it is checked again; the digest recorded for extraction is verified
against the file's bytes there in any case.
"""
from __future__ import annotations

import difflib
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd

from dlrc_lib.core.config import Params
from dlrc_lib.core.digest import file_digest
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.study.file_checks import DIGEST_PREFIX, Problem
from dlrc_lib.study.flow import check_flow, default_flow_file, read_flow
from dlrc_lib.study.manifest import c_lnm_calls, load_study, manifest_header, read_manifest, split_cohorts
from dlrc_lib.study.plan import plan_problems
from dlrc_lib.study.schema import (
    ACQUISITION_COLUMNS,
    ACQUISITION_INPLANE,
    ACQUISITION_NUMERIC,
    CLINICAL_REQUIRED,
    COHORTS,
    MANIFEST_LEVELS,
    NODE_OPTIONAL_FLAGS,
    READER1_COLUMNS,
    READER2_COLUMNS,
    YES_NO,
    parse_b_values,
    parse_inplane,
    path_columns,
)
from dlrc_lib.study.validation_cache import check_study_files, last_digests





# ------------------------------------------------------------------ digests later
def attach_digests(study, digests: dict[tuple[str, str], str]):
    """The study table with a ``sha256_<column>`` column beside every file column that has
    a recorded digest (empty where the patient has no such file)."""
    study = study.copy()
    cols = [c for c in study.columns if c.startswith(("image_", "mask_"))]
    for col in cols:
        values = [digests.get((str(pid), col), "") for pid in study["patient_id"]]
        if any(values):
            study[DIGEST_PREFIX + col] = values
    return study


def verify_digests(study, columns: Optional[Iterable[str]] = None) -> None:
    """Refuse (:class:`DlrcError`, every file at once) when a file's bytes differ from the
    SHA-256 recorded by validation in the study table (``sha256_<column>``)."""
    cols = [c for c in (columns if columns is not None else study.columns)
            if c in study.columns and DIGEST_PREFIX + c in study.columns]
    bad = []
    for col in cols:
        for pid, path, want in zip(study["patient_id"], study[col], study[DIGEST_PREFIX + col]):
            if not isinstance(want, str) or not want or not isinstance(path, str) or not path:
                continue
            try:
                have = file_digest(path)
            except (FileNotFoundError, OSError):
                bad.append(f"patient {pid}, {col}, file {path}: removed since validation")
                continue
            if have != want:
                bad.append(f"patient {pid}, {col}, file {path}: changed since validation "
                           f"(sha256 {have[:12]}..., validated {want[:12]}...); validate the study again")
    if bad:
        more = f" (and {len(bad) - 20} more)" if len(bad) > 20 else ""
        raise DlrcError("; ".join(bad[:20]) + more)


def _header_counts(path: Path) -> dict[str, int]:
    """How often each column name appears in the manifest's header (stripped; unnamed
    columns left out)."""
    from collections import Counter

    try:
        header = manifest_header(path)
    except (DlrcError, OSError, ValueError):
        return {}
    return dict(Counter(h for h in header if h))


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and v.strip() == "") or v is pd.NA


def validate_manifest(manifest_path: str | Path, params=None, *, check_images: bool = True,
                      n_jobs: int | None = None, progress: bool = False,
                      cache: bool = True, plan: bool = False) -> list[Problem]:
    """Every problem with a study manifest, its clinical values and its files.

    Errors: missing required columns or values, duplicate patient IDs, LNM not 0/1, a
    ``c_lnm`` that is no radiologist's call (``schema.C_LNM_WORDS``), unknown categorical levels, a cohort with a single LNM class, a harmonisation batch (scanner or
    centre, per ``harmonisation.batch``) smaller than ``study.min_batch_size``, missing,
    unreadable, truncated or damaged files (every file is decoded completely: see the module
    docstring), non-finite voxels, non-positive spacing, a direction that is not orthonormal,
    DICOM series with missing/duplicated slices or mixed series, masks whose
    size/spacing/origin/direction differ from their image's (and are no crop of its grid),
    4D images, empty masks, masks with labels other than 0 and ``study.mask_label``, images
    constant inside a mask. Warnings (which do not fail): the other batch kind too small, age
    at menopause inconsistent with menopause, blank ``c_lnm`` cells beside given calls, and
    what the manifest reader normalised (:func:`dlrc_lib.study.manifest.read_manifest_csv`).
    A column in another coding (``yes``/``no`` for 0/1) is one line per column, or per wrong
    level, not per patient; other per-patient lines are at most :data:`MAX_LINES` per column
    and kind of problem, the rest summed up in one line.

    The files' SHA-256 digests are remembered (:func:`last_digests`) and, with ``cache``,
    kept in ``<cache_dir>/validation`` so that re-validating unchanged files reads nothing
    but their status. With ``plan``, what the run of ``params`` cannot do with this study
    (:func:`dlrc_lib.study.plan.plan_problems`) is reported too.
    """
    params = params or Params()
    path = Path(manifest_path)
    notes: list[tuple[str, str]] = []
    try:
        raw = read_manifest(path, notes=notes)
    except DlrcError as exc:
        return [Problem("error", None, str(path), str(exc).split(": ", 1)[-1])]
    report = _Report()
    for where, msg in notes:  # what the manifest reader normalised
        report.warn(None, where, msg)
    if raw.empty:
        report.err(None, str(path), "manifest has no patients")
        return report.problems
    _check_columns(path, raw, report)
    _check_coded_columns(raw, report)
    ids = _patient_ids(raw)
    for pid, n in ids.value_counts().items():
        if n > 1:
            report.err(pid, "patient_id", f"duplicate patient ID ({n} rows)")
    records = raw.to_dict("records")  # plain dicts: a row lookup per cell in pandas is slow
    for pid, row in zip(ids, records):
        _check_row(raw, row, pid, report)
    _check_c_lnm(path, raw, ids, report)
    _check_study_wide(raw, params, report)
    _check_flow(path, raw, params, report)
    if plan:
        _check_plan(raw, params, report)
    if check_images:
        jobs = _file_jobs(path, raw, ids, records, int(params.study.mask_label), report)
        report.problems += check_study_files(path, jobs, cache_dir=params.cache_dir if cache else None,
                                             n_jobs=n_jobs if n_jobs is not None else params.study.n_jobs,
                                             progress=progress).problems
    return _aggregate(report.problems)


class _Report:
    """The problems found so far, and the two ways to add one."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.column_wide: set[str] = set()  # columns reported once for all patients

    def err(self, pid: Optional[str], where: str, msg: str) -> None:
        self.problems.append(Problem("error", pid, where, msg))

    def warn(self, pid: Optional[str], where: str, msg: str) -> None:
        self.problems.append(Problem("warning", pid, where, msg))


def _check_columns(path: Path, raw: pd.DataFrame, report: _Report) -> None:
    """Columns named twice, required columns missing, optional reader columns incomplete."""
    for col, n in _header_counts(path).items():
        if n > 1:  # pandas would keep the first and rename the others silently
            report.err(None, f"column {col}", f"appears {n} times in the manifest's header")
    required = list(CLINICAL_REQUIRED) + path_columns("image") + path_columns("mask")
    guesses = _column_guesses(raw)
    used: set[str] = set()
    for col in required:
        if col not in raw:
            candidates = [u for u, k in guesses.items() if k == col]
            best = _closest(col, candidates) or next(iter(candidates), None)
            hint = f" (did you mean {best!r}? rename it to {col})" if best else ""
            used.add(best or "")
            report.err(None, f"column {col}", f"required column missing from the manifest{hint}")
    for col, known in guesses.items():
        if col in used:
            continue
        if known in raw:
            report.warn(None, f"column {col}", f"not a manifest column, not used (close to {known}, which the "
                                               "manifest has too)")
        else:
            report.warn(None, f"column {col}", f"not a manifest column, not used (did you mean {known}? "
                                               f"rename it to {known})")
    for group in (READER1_COLUMNS, READER2_COLUMNS):
        given = [c for c in group if c in raw]
        if given and len(given) < len(group):
            for col in group:
                if col not in raw:
                    report.err(None, f"column {col}", f"optional reader columns come as a set ({', '.join(group)}); "
                                                      f"this one is missing")


def _patient_ids(raw: pd.DataFrame) -> pd.Series:
    """Each row's patient ID, or ``row N`` (its line in the CSV) where it has none."""
    rows = pd.Series([f"row {i + 2}" for i in range(len(raw))])
    if "patient_id" not in raw:
        return rows
    ids = raw["patient_id"].astype(str).str.strip()
    return ids.where(~raw["patient_id"].isna(), rows)


def _check_row(raw: pd.DataFrame, row: dict, pid: str, report: _Report) -> None:
    """One patient's clinical values: present, of the right type, level and range."""
    err, warn = report.err, report.warn
    for col in CLINICAL_REQUIRED:
        if col in raw and _missing(row[col]):
            err(pid, col, "missing required value")
    for col, what in (("lnm", "LNM must be 0 or 1"), ("node_necrosis", "must be 0 or 1")):
        if col in raw and col not in report.column_wide and not _missing(row[col]) and not _is_flag(row[col]):
            err(pid, col, f"{what}, got {str(row[col]).strip()!r}")
    for col, levels in MANIFEST_LEVELS.items():
        if (col in raw and col not in report.column_wide and not _missing(row[col])
                and str(row[col]).strip() not in levels):
            err(pid, col, _unknown_level(row[col], levels))
    for col in ("age", "parity", "lnsd_mm", "lnld_mm", "age_at_menopause"):
        if col in raw and not _missing(row[col]):
            v = _number(row[col], pid, col, err, f"{row[col]!r}{_decimal_comma_hint(row[col])}")
            if v is None:
                continue
            if v < 0 or (col == "parity" and v != int(v)):
                err(pid, col, f"must be a non-negative {'integer' if col == 'parity' else 'number'}, got {row[col]!r}")
    try:
        s, lg = float(row.get("lnsd_mm")), float(row.get("lnld_mm"))
        if s > lg:
            err(pid, "lnsd_mm", f"short axis {s:g} mm exceeds long axis {lg:g} mm")
    except (TypeError, ValueError):
        pass
    _check_optional(raw, row, pid, err, skip=report.column_wide)
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
        elif str(c).strip() not in COHORTS and "cohort" not in report.column_wide:
            err(pid, "cohort", _unknown_level(c, COHORTS))


def _check_c_lnm(path: Path, raw: pd.DataFrame, ids: pd.Series, report: _Report) -> None:
    """The radiologist's c_LNM calls: a value that is none, one line per patient; blank cells
    beside given calls (c_LNM from lnsd_mm >= 10 for them), one warning."""
    if "c_lnm" not in raw:
        return
    _, problems = c_lnm_calls(raw.assign(patient_id=list(ids)), path)
    for pid, msg in problems:
        report.err(pid, "c_lnm", msg)
    blank = raw["c_lnm"].map(_missing).astype(bool).to_numpy()
    if blank.any() and not blank.all():
        pids = [str(p) for p in ids[blank]]
        report.warn(None, "column c_lnm", f"empty for {len(pids)} patient(s) ({_some(pids)}) while given for the "
                                          "others: their c_LNM is lnsd_mm >= 10")


def _check_study_wide(raw: pd.DataFrame, params, report: _Report) -> None:
    """Cohorts with a single LNM class; scanners or centres too small to harmonise."""
    st = params.study
    lnm_read = "lnm" in raw and "lnm" not in report.column_wide and raw["lnm"].map(_is_flag).any()
    cohorts = _cohorts(raw, params)
    if cohorts is not None and lnm_read and "centre" in raw:  # else the cohorts' LNM cannot be counted
        df = raw.assign(lnm=pd.to_numeric(raw["lnm"], errors="coerce"), cohort=cohorts)
        for cohort in COHORTS:
            y = df.loc[df["cohort"] == cohort, "lnm"].dropna()
            if len(y) == 0:
                report.warn(None, "cohort", f"no patients in the {cohort} cohort")
            elif y.nunique() < 2:
                report.err(None, "cohort", f"the {cohort} cohort has a single LNM class ({int(y.iloc[0])}: "
                                           f"{len(y)} patients)")
    batch = params.harmonisation.batch if params.harmonisation.mode != "none" else None
    for col in ("scanner", "centre"):
        if col not in raw:
            continue
        for name, n in raw[col].dropna().astype(str).value_counts().sort_index().items():
            if n < st.min_batch_size:
                msg = (f"{col} {name} has {n} patient(s), fewer than min_batch_size={st.min_batch_size}: "
                       f"too small to harmonise")
                (report.err if col == batch else report.warn)(None, col, msg)


def _check_flow(path: Path, raw: pd.DataFrame, params, report: _Report) -> None:
    """Fig. 1's flow table (``study.flow``, or ``flow.csv`` beside the manifest), when there is one:
    readable, and enrolled minus excluded equal to the manifest's patients."""
    flow_file = params.study.flow or default_flow_file(path)
    if not flow_file:
        return
    try:
        check_flow(read_flow(flow_file), len(raw), flow_file)
    except DlrcError as exc:
        report.err(None, "study.flow", str(exc))


def _file_jobs(path: Path, raw: pd.DataFrame, ids: pd.Series, records: list[dict], label: int,
               report: _Report) -> list[tuple]:
    """Per patient, the image and mask files to check; a required path left empty is reported."""
    base = path.resolve().parent
    cols = [c for c in path_columns("image") + path_columns("mask") + path_columns("icc") if c in raw]
    jobs = []
    foreign: list[str] = []  # absolute Windows paths (C:/..., //server/...) not found here
    for pid, row in zip(ids, records):
        entries = []
        for col in cols:
            v = row[col]
            if _missing(v):
                if not col.startswith(("mask_r2_", "mask_rep_")):
                    report.err(pid, col, "missing file path")
                continue
            text = str(v).strip()
            if os.sep == "/" and _WINDOWS_ABSOLUTE.match(text) and not (base / text).exists():
                foreign.append(text)
                continue
            entries.append((col, text))
        jobs.append((pid, str(base), entries, label))
    if foreign:
        report.err(None, "image and mask paths", f"{len(foreign)} path(s) are absolute Windows paths, not found on "
                                                 f"this machine (e.g. {foreign[0]}): write the paths relative to the "
                                                 f"manifest's folder")
    return jobs


def _number(value: Any, pid: str, col: str, err, shown: str) -> Optional[float]:
    """``value`` as a float; None once reported as not a number (``shown``: the value as the
    message shows it)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        err(pid, col, f"not a number: {shown}")
        return None


def _shown(value: Any) -> str:
    """A manifest value as the user wrote it (numbers read by pandas without a trailing .0)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _check_optional(raw: pd.DataFrame, row: pd.Series, pid: str, err, skip: Iterable[str] = ()) -> None:
    """The optional reader-1/reader-2 node columns and acquisition columns of one row
    (a 0/1 column in ``skip`` was reported for all patients at once)."""
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
        if nec_col not in skip and not _is_flag(row[nec_col]):
            err(pid, nec_col, f"must be 0 or 1, got {_shown(row[nec_col])!r}")
        vals = {}
        for col in (sd_col, ld_col):
            v = _number(row[col], pid, col, err, repr(_shown(row[col])))
            if v is None:
                continue
            vals[col] = v
            if not np.isfinite(v) or v < 0:
                err(pid, col, f"must be a non-negative number, got {_shown(row[col])!r}")
        if len(vals) == 2 and vals[sd_col] > vals[ld_col]:
            err(pid, sd_col, f"short axis {vals[sd_col]:g} mm exceeds long axis {vals[ld_col]:g} mm")
    for col in ACQUISITION_NUMERIC:
        if col in raw and not _missing(row[col]):
            v = _number(row[col], pid, col, err, repr(_shown(row[col])))
            if v is None:
                continue
            if not np.isfinite(v) or v <= 0:
                err(pid, col, f"must be a positive number, got {_shown(row[col])!r}")
    for col in ACQUISITION_INPLANE + ("dwi_b_values",):
        if col in raw and not _missing(row[col]):
            try:
                (parse_b_values if col == "dwi_b_values" else parse_inplane)(row[col])
            except ValueError as exc:
                err(pid, col, str(exc))


def _cohorts(raw: pd.DataFrame, params) -> Optional[pd.Series]:
    """Each patient's cohort as the run will have it (the manifest's, or split by the parameters),
    or None when the manifest says too little (no cohort and no centre, or no lnm to stratify by)."""
    if "cohort" in raw and not raw["cohort"].isna().all():
        return pd.Series(list(raw["cohort"].astype(str).str.strip()), index=raw.index)
    if not {"lnm", "centre"} <= set(raw.columns):
        return None
    st = params.study
    split = split_cohorts(raw.assign(lnm=pd.to_numeric(raw["lnm"], errors="coerce")),
                          internal_centres=st.internal_centres, train_fraction=st.train_fraction, seed=params.seed)
    return pd.Series(list(split), index=raw.index)


def cohort_outcomes(manifest_path: str | Path, params=None) -> Optional[pd.DataFrame]:
    """Each patient's cohort (as the run will have it) and LNM (numeric; NaN where unreadable), or
    None when the manifest cannot be read or says too little to tell them."""
    try:
        raw = read_manifest(Path(manifest_path), notes=[])  # what it normalised: said by the validation
    except (DlrcError, OSError):
        return None
    cohorts = _cohorts(raw, params or Params()) if "lnm" in raw else None
    if cohorts is None:
        return None
    return pd.DataFrame({"cohort": cohorts, "lnm": pd.to_numeric(raw["lnm"], errors="coerce")})


def _check_plan(raw: pd.DataFrame, params, report: "_Report") -> None:
    """What the run of ``params`` cannot do with this study (:mod:`dlrc_lib.study.plan`)."""
    cohorts = _cohorts(raw, params)
    if cohorts is None:
        return
    for severity, where, msg in plan_problems(raw, cohorts, params):
        (report.err if severity == "error" else report.warn)(None, where, msg)


# ------------------------------------------------- columns and codings of a hospital's table
#: Per-patient lines of one column and kind of problem shown before the rest are summed up.
MAX_LINES = 20
#: 0/1 columns, and the words that most likely mean 1 or 0 (or Yes/No) when written instead.
FLAG_COLUMNS = ("lnm", "node_necrosis") + NODE_OPTIONAL_FLAGS
_YES_WORDS = ("yes", "y", "true", "t", "positive", "pos", "+", "present", "1", "1.0")
_NO_WORDS = ("no", "n", "false", "f", "negative", "neg", "-", "absent", "none", "0", "0.0")
# An absolute Windows path once its backslashes are read as "/": a drive letter or a share.
_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:/|//[^/])")
# What varies between two lines of the same problem: quoted values, parentheses, numbers.
_PROBLEM_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|\([^)]*\)|[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _is_flag(v: Any) -> bool:
    return str(v).strip() in ("0", "1", "0.0", "1.0")


def _flag_reading(value: str) -> Optional[int]:
    """1 or 0 for a word that most likely means it ("yes", "positive", ...), else None."""
    word = value.strip().casefold()
    return 1 if word in _YES_WORDS else 0 if word in _NO_WORDS else None


def _squash(name: Any) -> str:
    """A name without case, spaces, ``-``/``_`` or other punctuation: ``PatientID`` and
    ``patient_id`` both give ``patientid``."""
    return re.sub(r"[^0-9a-z]", "", str(name).casefold())


def _closest(name: str, candidates: Iterable[str]) -> Optional[str]:
    """The candidate ``name`` most likely means: the same name up to case and punctuation,
    else a close spelling (difflib), else the only candidate that one is a prefix of."""
    key = _squash(name)
    keys: dict[str, str] = {}
    for c in candidates:
        keys.setdefault(_squash(c), c)
    if not key or not keys:
        return None
    if key in keys:
        return keys[key]
    close = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.8)
    if close:
        return keys[close[0]]
    prefix = [c for k, c in keys.items() if len(min(k, key, key=len)) >= 3 and (k.startswith(key) or key.startswith(k))]
    return prefix[0] if len(prefix) == 1 else None


def _known_columns() -> list[str]:
    return list(dict.fromkeys([*CLINICAL_REQUIRED, "cohort", "age_at_menopause", "c_lnm", *path_columns("all"),
                               *READER1_COLUMNS, *READER2_COLUMNS, *ACQUISITION_COLUMNS]))


def _column_guesses(raw: pd.DataFrame) -> dict[str, str]:
    """``{column of the manifest: the manifest column it most likely means}`` for every column
    that is no manifest column (digests, and the copies pandas makes of a repeated name, left out)."""
    known = _known_columns()
    names = set(raw.columns)
    out = {}
    for col in raw.columns:
        if col in known or col.startswith(DIGEST_PREFIX) or re.sub(r"\.\d+$", "", col) in names - {col}:
            continue
        guess = _closest(col, known)
        if guess:
            out[col] = guess
    return out


def _likely_level(value: Any, levels: Iterable[str]) -> Optional[str]:
    """The level a categorical value most likely means (None when none is close)."""
    levels = tuple(levels)
    word = str(value).strip().casefold()
    for level in levels:
        if _squash(level) == _squash(word):
            return level
    if set(levels) == set(YES_NO) and _flag_reading(word) is not None:
        return YES_NO[_flag_reading(word)]
    close = difflib.get_close_matches(word, [lv.casefold() for lv in levels], n=1, cutoff=0.7)
    return next(lv for lv in levels if lv.casefold() == close[0]) if close else None


def _unknown_level(value: Any, levels: Iterable[str]) -> str:
    levels = tuple(levels)
    guess = _likely_level(value, levels)
    hint = f"; did you mean {guess!r}?" if guess else ""
    return f"unknown level {_shown(value)!r} (expected one of {', '.join(levels)}{hint})"


def _decimal_comma_hint(value: Any) -> str:
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d+,\d+", text):
        return f" (a decimal comma? write {text.replace(',', '.')})"
    return ""


def _some(pids: list[str], n: int = 5) -> str:
    return ", ".join(pids[:n]) + (", ..." if len(pids) > n else "")


def _coded_otherwise(n_bad: int, n_given: int) -> bool:
    """A column whose wrong values are no slips but another coding: at least half of its
    values, or more than :data:`MAX_LINES` of them."""
    return n_bad > 0 and (n_bad > MAX_LINES or 2 * n_bad >= n_given)


def _check_coded_columns(raw: pd.DataFrame, report: _Report) -> None:
    """0/1 and categorical columns written in another coding (``yes``/``no`` for 0/1, ``1``
    for ``Yes``, ...): one line per 0/1 column with the values found and the 0/1 to write,
    one line per categorical column and wrong value with the level it most likely means,
    instead of a line per patient. A few wrong values among valid ones stay per patient."""
    ids = _patient_ids(raw)
    for col in FLAG_COLUMNS:
        if col not in raw:
            continue
        given = raw[col][~raw[col].map(_missing).astype(bool)]
        bad = given[~given.map(_is_flag).astype(bool)]
        if not _coded_otherwise(len(bad), len(given)):
            continue
        report.column_wide.add(col)
        counts = Counter(_shown(v) for v in bad).most_common()
        found = ", ".join(f"{v!r} ({n})" for v, n in counts[:MAX_LINES])
        if len(counts) > MAX_LINES:
            found += f" and {len(counts) - MAX_LINES} more values"
        readings = {v: _flag_reading(v) for v, _ in counts}
        mapped = sorted((r, v) for v, r in readings.items() if r is not None)
        unread = [v for v, r in readings.items() if r is None]
        msg = f"must be 0/1; found {found}"
        if mapped:
            msg += ": write " + ", ".join(f"{v} -> {r}" for r, v in mapped)
        if unread:
            msg += f"; no 0/1 reading of {', '.join(repr(v) for v in unread[:5])}{', ...' if len(unread) > 5 else ''}"
        report.err(None, f"column {col}", msg)
    for col, levels in {**MANIFEST_LEVELS, "cohort": COHORTS}.items():
        if col not in raw:
            continue
        given = raw[col][~raw[col].map(_missing).astype(bool)]
        bad = given[~given.map(lambda v: str(v).strip() in levels).astype(bool)]
        if not _coded_otherwise(len(bad), len(given)):
            continue
        report.column_wide.add(col)
        by_value: dict[str, list[str]] = {}
        for pid, v in zip(ids.loc[bad.index], bad):
            by_value.setdefault(_shown(v), []).append(pid)
        ordered = sorted(by_value.items(), key=lambda kv: -len(kv[1]))
        for value, pids in ordered[:MAX_LINES]:
            guess = _likely_level(value, levels)
            hint = f"; did you mean {guess!r}?" if guess else ""
            report.err(None, f"column {col}", f"unknown level {value!r} in {len(pids)} patient(s) ({_some(pids)})"
                                              f"{hint} (expected one of {', '.join(levels)})")
        if len(ordered) > MAX_LINES:
            rest = [p for _, pids in ordered[MAX_LINES:] for p in pids]
            report.err(None, f"column {col}", f"and {len(ordered) - MAX_LINES} more unknown levels in "
                                              f"{len(rest)} patient(s) ({_some(rest)})")


def _aggregate(problems: list[Problem], limit: int = MAX_LINES) -> list[Problem]:
    """At most ``limit`` per-patient lines for one column and kind of problem; the others
    are summed up in one line after them ("and 143 more patients ...")."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, p in enumerate(problems):
        if p.patient is not None:
            column = p.where.split(" (", 1)[0]
            groups.setdefault((p.severity, column, _PROBLEM_VALUES.sub("…", p.message)), []).append(i)
    dropped: set[int] = set()
    after: dict[int, Problem] = {}
    for (severity, column, _), idx in groups.items():
        if len(idx) <= limit:
            continue
        rest = idx[limit:]
        dropped.update(rest)
        pids = [str(problems[i].patient) for i in rest]
        after[idx[limit - 1]] = Problem(severity, None, f"column {column}",
                                        f"and {len(rest)} more patients with this problem ({_some(pids)})")
    if not after:
        return problems
    out = []
    for i, p in enumerate(problems):
        if i not in dropped:
            out.append(p)
        if i in after:
            out.append(after[i])
    return out


def raise_for_problems(manifest: Path, problems: list[Problem]) -> None:
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        lines = "\n".join(f"  {p}" for p in errors)
        raise DlrcError(f"{manifest}: {len(errors)} problem(s) found by validation:\n{lines}")


def load_validated_study(manifest: str | Path, params=None) -> pd.DataFrame:
    """:func:`dlrc_lib.study.manifest.load_study` with the SHA-256 of every file as validated
    in this process (columns ``sha256_<column>``; see :func:`verify_digests`). Validates the
    manifest first (raising on errors) when this process has not."""
    digests = last_digests(manifest)
    if digests is None:
        raise_for_problems(Path(manifest), validate_manifest(manifest, params, progress=False))
        digests = last_digests(manifest) or {}
    return attach_digests(load_study(manifest, params), digests)
