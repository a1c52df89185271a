""":func:`dlrc_lib.study.validate_manifest` checks the manifest's clinical values and calls
:func:`check_patient_files` for every patient (through :func:`check_study_files`, which
consults the validation cache first). Every file is read completely once:

* its bytes are hashed (SHA-256, the same digest as
  :func:`dlrc_lib.core.digest.file_digest`), recorded in the validated study table
  (``sha256_<column>``) and compared again before extraction (:func:`verify_digests`);
* a compressed file (``.nii.gz``, NRRD with gzip/bzip2 encoding) is decompressed here, not
  only by ITK: a stream that ends early or fails its CRC, or that decompresses to fewer or
  more bytes than its header promises, is refused (SimpleITK can return a zero-filled
  image for some of these without raising);
* the voxels are decoded by SimpleITK and checked: finite values, finite positive
  spacing, an orthonormal direction matrix; masks: on their image's grid, only the
  configured label, not empty; images: not constant inside their masks;
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

import bz2
import difflib
import gzip
import hashlib
import json
import os
import re
import struct
import threading
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd

from dlrc_lib.core.digest import file_digest, remember
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.study.images import QuietITK, geometry_problems, read_image, read_mask  # noqa: F401 - read_image: for callers
from dlrc_lib.study.manifest import load_study, manifest_header, read_manifest, split_cohorts
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
from dlrc_lib.core.config import Params
from dlrc_lib.core.io import atomic_write_text
from dlrc_lib.core.processes import worker_pool

VALIDATOR_VERSION = 3  # 3: DICOM-SEG masks are read on their image's grid
DIGEST_PREFIX = "sha256_"
ORTHONORMAL_TOL = 1e-3
SLICE_TOL = 0.01  # relative tolerance on a DICOM series' slice gaps

# results of the last validation in this process: manifest (resolved) -> {(pid, column): digest}
_LAST: dict[str, dict[tuple[str, str], str]] = {}
_LAST_LOCK = threading.Lock()


# ------------------------------------------------------------------------ problems
@dataclass(frozen=True)
class Problem:
    """One finding of :func:`dlrc_lib.study.validate_manifest`; ``str()`` gives its line."""

    severity: str  # "error" | "warning"
    patient: Optional[str]  # None for study-wide findings
    where: str  # column or file
    message: str

    def __str__(self) -> str:
        who = f"patient {self.patient}, " if self.patient is not None else ""
        return f"{self.severity}: {who}{self.where}: {self.message}"


# --------------------------------------------------------------------- byte checks
_NRRD_TYPES = {
    "signed char": 1, "int8": 1, "int8_t": 1, "uchar": 1, "unsigned char": 1, "uint8": 1, "uint8_t": 1,
    "short": 2, "short int": 2, "signed short": 2, "signed short int": 2, "int16": 2, "int16_t": 2,
    "ushort": 2, "unsigned short": 2, "unsigned short int": 2, "uint16": 2, "uint16_t": 2,
    "int": 4, "signed int": 4, "int32": 4, "int32_t": 4, "uint": 4, "unsigned int": 4, "uint32": 4,
    "uint32_t": 4, "longlong": 8, "long long": 8, "long long int": 8, "signed long long": 8,
    "signed long long int": 8, "int64": 8, "int64_t": 8, "ulonglong": 8, "unsigned long long": 8,
    "unsigned long long int": 8, "uint64": 8, "uint64_t": 8, "float": 4, "double": 8,
}


def _gunzip(data: bytes) -> bytes:
    """All members of a gzip stream; raises on truncation or a CRC/length mismatch."""
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as exc:
        raise ValueError(f"damaged gzip stream ({exc})") from None


# Where a NIfTI header keeps what the check needs: header size -> field -> (struct format, byte offset)
_NIFTI_LAYOUT = {
    348: {"dims": ("8h", 40), "datatype": ("h", 70), "bitpix": ("h", 72), "pixdim": ("8f", 76), "offset": ("f", 108)},
    540: {"dims": ("8q", 16), "datatype": ("h", 12), "bitpix": ("h", 14), "pixdim": ("8d", 104), "offset": ("q", 168)},
}


def _nifti_expected(header: bytes) -> Optional[tuple[int, int, tuple[float, ...], Optional[str]]]:
    """(vox_offset, data bytes, spatial pixdim, float dtype or None) promised by a NIfTI-1/2
    header, or None when the bytes are no NIfTI header."""
    if len(header) < 348:
        return None
    for end in ("<", ">"):
        size = struct.unpack(end + "i", header[:4])[0]
        if size in _NIFTI_LAYOUT and len(header) >= size:
            break
    else:
        return None
    field = {name: struct.unpack_from(end + fmt, header, at) for name, (fmt, at) in _NIFTI_LAYOUT[size].items()}
    dims, pixdim = field["dims"], field["pixdim"]
    bitpix, datatype, offset = field["bitpix"][0], field["datatype"][0], int(field["offset"][0])
    nd = dims[0]
    if not 1 <= nd <= 7 or bitpix <= 0 or bitpix % 8:
        return None
    n_vox = 1
    for d in dims[1:nd + 1]:
        n_vox *= max(int(d), 1)
    ftype = {16: "f4", 64: "f8"}.get(datatype)
    return (max(offset, size), n_vox * bitpix // 8, tuple(pixdim[1:min(nd, 3) + 1]),
            (end + ftype) if ftype else None)


def _non_finite(data: bytes, dtype: Optional[str]) -> Optional[str]:
    """'N non-finite voxel(s) (NaN/inf)' for float voxel data, else None. Checked on the
    file's own bytes: SimpleITK's NIfTI reader turns NaN into 0 without a word."""
    if not dtype:
        return None
    width = np.dtype(dtype).itemsize
    arr = np.frombuffer(data[: len(data) // width * width], dtype=dtype)
    n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if not n_bad:
        return None
    kinds = [k for k, f in (("NaN", np.isnan), ("inf", np.isinf)) if f(arr).any()]
    return f"{n_bad} non-finite voxel(s) ({'/'.join(kinds)})"


def _nrrd_header(data: bytes) -> tuple[dict[str, str], int]:
    """NRRD header fields (lower-case names) and where the data begin (attached data)."""
    end = data.find(b"\n\n")
    if end < 0:
        end2 = data.find(b"\r\n\r\n")
        if end2 < 0:
            raise ValueError("NRRD header does not end with an empty line")
        end, skip = end2, 4
    else:
        skip = 2
    fields: dict[str, str] = {}
    for line in data[:end].decode("latin-1").splitlines()[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        fields[k.strip().lower()] = v.lstrip("=").strip()
    return fields, end + skip


def byte_problems(path: Path, data: bytes) -> list[str]:
    """Problems visible in a file's bytes: a compressed stream that is damaged or does not
    decompress to the size its header promises; uncompressed data shorter than promised."""
    name = path.name.lower()
    out: list[str] = []
    if name.endswith((".nii.gz", ".nii", ".hdr.gz")):
        try:
            raw = _gunzip(data) if name.endswith(".gz") else data
        except ValueError as exc:
            return [f"corrupt compressed file: {exc}"]
        exp = _nifti_expected(raw[:540])
        if exp is None:
            return ["not a NIfTI file (header unreadable)"] if name.endswith(".nii.gz") or name.endswith(".nii") else []
        offset, nbytes, pixdim, ftype = exp
        if not all(np.isfinite(v) and v > 0 for v in pixdim):
            out.append(f"header voxel size (pixdim) {_fmt(pixdim)} is not finite and positive")
        have = len(raw) - offset
        if have < nbytes:
            what = "decompresses to" if name.endswith(".gz") else "holds"
            out.append(f"truncated: {what} {have} bytes of voxel data, its header promises {nbytes}")
        msg = _non_finite(raw[offset:offset + nbytes], ftype)
        if msg:
            out.append(msg)
    elif name.endswith((".nrrd", ".nhdr")):
        try:
            fields, start = _nrrd_header(data)
        except ValueError as exc:
            return [f"not a NRRD file ({exc})"]
        if "data file" in fields or "datafile" in fields:
            return []  # detached data: ITK's full decode below checks it
        enc = fields.get("encoding", "raw").lower()
        try:
            sizes = [int(v) for v in fields.get("sizes", "").split()]
        except ValueError:
            return [f"NRRD header: unreadable sizes {fields.get('sizes')!r}"]
        width = _NRRD_TYPES.get(fields.get("type", "").lower())
        payload = data[start:]
        try:
            if enc in ("gzip", "gz"):
                payload = _gunzip(payload)
            elif enc in ("bzip2", "bz2"):
                try:
                    payload = bz2.decompress(payload)
                except (OSError, ValueError, EOFError) as exc:
                    raise ValueError(f"damaged bzip2 stream ({exc})") from None
            elif enc not in ("raw",):
                return []  # text encodings: ITK's decode checks them
        except ValueError as exc:
            return [f"corrupt compressed file: {exc}"]
        if sizes and width:
            nbytes = int(np.prod(sizes)) * width
            skip = int(fields.get("byte skip", fields.get("byteskip", "0")) or 0)
            have = len(payload) - max(skip, 0)
            if have < nbytes:
                what = "decompresses to" if enc != "raw" else "holds"
                out.append(f"truncated: {what} {have} bytes of voxel data, its header promises {nbytes}")
            elif enc != "raw" and have > nbytes:
                out.append(f"damaged: decompresses to {have} bytes of voxel data, its header promises {nbytes}")
            kind = fields.get("type", "").lower()
            if kind in ("float", "double"):
                order = ">" if fields.get("endian", "little").lower() == "big" else "<"
                data_start = max(skip, 0) if skip >= 0 else max(len(payload) - nbytes, 0)
                msg = _non_finite(payload[data_start:data_start + nbytes], order + ("f4" if kind == "float" else "f8"))
                if msg:
                    out.append(msg)
    elif name.endswith(".gz"):
        try:
            _gunzip(data)
        except ValueError as exc:
            return [f"corrupt compressed file: {exc}"]
    return out


# ------------------------------------------------------------------ image checks
def _fmt(values) -> str:
    return "(" + ",".join(f"{v:g}" for v in values) + ")"


def _itk_reason(exc: Exception) -> str:
    """The informative part of an ITK exception (the text after ``ERROR:``), on one line."""
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "ERROR:" in ln:
            return ln.split("ERROR:", 1)[1].strip()[:200]
    return (lines[-1] if lines else exc.__class__.__name__)[:200]


def header_problems(img) -> list[str]:
    """Spacing not finite and positive; direction matrix not orthonormal."""
    out = []
    sp = np.asarray(img.GetSpacing(), float)
    if not (np.isfinite(sp).all() and (sp > 0).all()):
        out.append(f"spacing {_fmt(sp)} is not finite and positive")
    d = np.asarray(img.GetDirection(), float)
    n = int(round(np.sqrt(d.size)))
    d = d.reshape(n, n)
    if not np.isfinite(d).all() or not np.allclose(d @ d.T, np.eye(n), atol=ORTHONORMAL_TOL):
        out.append(f"direction matrix {_fmt(d.ravel())} is not orthonormal")
    return out


def dicom_series_problems(folder: Path) -> list[str]:
    """One series per folder, no other files, evenly spaced slices (none missing or twice)."""
    import SimpleITK as sitk

    with QuietITK():
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not ids:
        return ["folder holds no DICOM series"]
    if len(ids) > 1:
        return [f"folder holds {len(ids)} DICOM series (mixed series), expected one"]
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), ids[0]))
    present = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    out = []
    if len(present) > len(files):
        extra = sorted({p.name for p in present} - {Path(f).name for f in files})
        out.append(f"folder holds {len(extra)} file(s) outside the series ({', '.join(extra[:3])})")
    if len(files) < 2:
        return out
    positions, normal = [], None
    for f in files:
        r = sitk.ImageFileReader()
        r.SetFileName(f)
        r.ReadImageInformation()
        if normal is None:
            d = np.asarray(r.GetDirection(), float).reshape(3, 3) if len(r.GetDirection()) == 9 else np.eye(3)
            normal = d[:, 2]
        positions.append(float(np.dot(np.asarray(r.GetOrigin(), float)[:3], normal)))
    z = np.sort(np.asarray(positions))
    gaps = np.diff(z)
    dup = int((np.abs(gaps) < 1e-3).sum())
    if dup:
        out.append(f"{dup} duplicated slice position(s) in the series of {len(files)} files")
    real = gaps[np.abs(gaps) >= 1e-3]
    if len(real):
        step = float(np.median(real))
        uneven = real[np.abs(real - step) > SLICE_TOL * step + 1e-3]
        if len(uneven):
            missing = int(round(float(np.sum(uneven / step - 1)))) if (uneven > step).all() else None
            what = f"about {missing} missing slice(s)" if missing else "uneven slice spacing"
            out.append(f"{what}: gaps of {', '.join(f'{g:g}' for g in sorted(set(np.round(uneven, 3))))[:80]} mm "
                       f"where the series steps {step:g} mm")
    return out


def _file_digest_and_bytes(path: Path) -> tuple[str, list[str]]:
    """SHA-256 of the file's bytes (a folder: as :func:`dlrc_lib.core.digest.file_digest`) and the
    problems its bytes show; the bytes are read once."""
    if path.is_dir():
        return file_digest(path), []
    st = path.stat()
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    after = path.stat()
    if len(data) == st.st_size and (after.st_mtime_ns, after.st_ctime_ns) == (st.st_mtime_ns, st.st_ctime_ns):
        remember(path, st, digest)  # unchanged while read: the extraction need not hash it again
    return digest, byte_problems(path, data)


def check_patient_files(job: tuple) -> tuple[list[Problem], dict[str, str]]:
    """Files of one patient, read completely: bytes, decode, geometry, labels, values.

    ``job`` = ``(patient, base folder, [(column, path text), ...], mask label)`` with the
    image columns first. Returns the problems and ``{column: sha256}`` of the files read.
    """
    import SimpleITK as sitk

    pid, base, entries, label = job
    problems: list[Problem] = []
    digests: dict[str, str] = {}
    images: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for col, value in entries:  # images first (entries are ordered so)
        if value is None:
            continue
        p = Path(value) if Path(value).is_absolute() else Path(base) / value
        where = f"{col} ({value})"
        bad = lambda msg: problems.append(Problem("error", pid, where, msg))  # noqa: E731
        if not p.exists():
            bad("file not found")
            continue
        try:
            digests[col], byte_msgs = _file_digest_and_bytes(p)
        except OSError as exc:
            bad(f"unreadable file ({exc.strerror or exc})")
            continue
        for msg in byte_msgs:
            bad(msg)
        if p.is_dir():
            series_msgs = dicom_series_problems(p)
            for msg in series_msgs:
                bad(msg)
            if any("DICOM series" in m for m in series_msgs):
                continue  # no series, or several: nothing to read (said once)
        if any(m.startswith(("corrupt", "truncated", "damaged", "not a")) for m in byte_msgs):
            continue  # the decoded voxels would be ITK's guess
        try:
            img = read_image(p) if col.startswith("image_") else read_mask(p, images.get(col.split("_")[-1]))
            arr = sitk.GetArrayViewFromImage(img)
        except Exception as exc:  # noqa: BLE001 - ITK raises RuntimeError with a long text
            bad(f"unreadable or corrupt image ({_itk_reason(exc)})")
            continue
        for msg in header_problems(img):
            bad(msg)
        if arr.dtype.kind == "f" and p.is_dir() or arr.dtype.kind == "f" and not p.name.lower().endswith(
                (".nii", ".nii.gz", ".nrrd")):  # NIfTI/NRRD voxels were checked in their bytes above
            n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            if n_bad:
                kinds = []
                if np.isnan(arr).any():
                    kinds.append("NaN")
                if np.isinf(arr).any():
                    kinds.append("inf")
                bad(f"{n_bad} non-finite voxel(s) ({'/'.join(kinds)})")
        if col.startswith("image_"):
            images[col[len("image_"):]] = img
            arrays[col[len("image_"):]] = arr
            continue
        seq = col.split("_")[-1]
        ref = images.get(seq)
        geo = geometry_problems(ref, img) if ref is not None else []
        for msg in geo:
            bad(msg)
        values = np.unique(arr)
        extra = [v for v in values.tolist() if v not in (0, label)]
        if extra:
            shown = ", ".join(f"{v:g}" for v in extra[:5]) + (" ..." if len(extra) > 5 else "")
            bad(f"mask has labels other than 0/{label}: {shown}")
        elif label not in values.tolist():
            bad(f"empty mask (no voxel labelled {label})")
        elif ref is not None and not geo:
            inside = arrays[seq][arr == label]
            if inside.size and np.nanmin(inside) == np.nanmax(inside):
                problems.append(Problem("error", pid, f"image_{seq} ({_entry(entries, f'image_{seq}')})",
                                        f"image is constant ({float(inside.flat[0]):g}) inside {col}"))
    return problems, digests


def _entry(entries, col: str) -> str:
    return next((v for c, v in entries if c == col), "")


# ------------------------------------------------------------------------- cache
def _stamp(path: Path) -> list:
    """What identifies a file's version without reading it (size, mtime, ctime, inode);
    a folder: every file below it."""
    try:
        if path.is_dir():
            return [[str(q.relative_to(path))] + _stamp(q) for q in sorted(path.rglob("*")) if q.is_file()]
        st = path.stat()
    except OSError:
        return ["missing"]
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def job_key(job: tuple) -> str:
    pid, base, entries, label = job
    stamps = []
    for col, value in entries:
        p = Path(value) if Path(value).is_absolute() else Path(base) / value
        stamps.append([col, value, os.path.abspath(p), _stamp(p)])
    text = json.dumps([VALIDATOR_VERSION, pid, label, stamps], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ValidationCache:
    """Per-manifest JSON file of ``{job key: {"problems": [...], "digests": {...}}}`` with a
    checksum of its content; a damaged file is ignored (and rewritten)."""

    def __init__(self, cache_dir: Optional[str | os.PathLike], manifest: Path):
        name = hashlib.sha256(str(manifest.resolve()).encode("utf-8")).hexdigest()[:24]
        self.path = Path(cache_dir) / "validation" / f"{name}.json" if cache_dir is not None else None
        self.entries: dict[str, Any] = {}
        if self.path is not None and self.path.is_file():
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
                body = json.dumps(doc["entries"], sort_keys=True)
                if doc.get("version") != VALIDATOR_VERSION:
                    raise ValueError("old version")
                if hashlib.sha256(body.encode("utf-8")).hexdigest() != doc.get("sha256"):
                    warnings.warn(f"validation cache {self.path}: checksum mismatch, ignored (all files are "
                                  "checked again)", stacklevel=3)
                else:
                    self.entries = doc["entries"]
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
                if not (isinstance(exc, ValueError) and str(exc) == "old version"):
                    warnings.warn(f"validation cache {self.path}: unreadable ({exc.__class__.__name__}), ignored "
                                  "(all files are checked again)", stacklevel=3)
                self.entries = {}

    def get(self, key: str) -> Optional[tuple[list[Problem], dict[str, str]]]:
        e = self.entries.get(key)
        if e is None:
            return None
        return [Problem(*p) for p in e["problems"]], dict(e["digests"])

    def save(self, results: dict[str, tuple[list[Problem], dict[str, str]]]) -> None:
        if self.path is None:
            return
        entries = {k: {"problems": [[p.severity, p.patient, p.where, p.message] for p in probs],
                       "digests": dig} for k, (probs, dig) in sorted(results.items())}
        body = json.dumps(entries, sort_keys=True)
        doc = {"version": VALIDATOR_VERSION, "sha256": hashlib.sha256(body.encode("utf-8")).hexdigest(),
               "entries": entries}
        try:
            atomic_write_text(self.path, json.dumps(doc, sort_keys=True))
        except OSError as exc:  # a cache that cannot be written only costs time next time
            warnings.warn(f"validation cache {self.path}: not written ({exc.strerror or exc})", stacklevel=3)


@dataclass
class FilesReport:
    problems: list[Problem] = field(default_factory=list)
    digests: dict[tuple[str, str], str] = field(default_factory=dict)
    from_cache: int = 0
    checked: int = 0


def check_study_files(manifest: Path, jobs: list[tuple], *, cache_dir: Optional[str | os.PathLike],
                      n_jobs: int, progress: bool) -> FilesReport:
    """Run :func:`check_patient_files` on every job not in the cache; remember the digests."""
    cache = ValidationCache(cache_dir, manifest)
    keys = [job_key(j) for j in jobs]
    results: dict[str, tuple[list[Problem], dict[str, str]]] = {}
    todo: list[int] = []
    report = FilesReport()
    for i, k in enumerate(keys):
        hit = cache.get(k)
        if hit is None:
            todo.append(i)
        else:
            results[k] = hit
    report.from_cache = len(jobs) - len(todo)
    report.checked = len(todo)
    fresh = _run_jobs(check_patient_files, [jobs[i] for i in todo], n_jobs, progress)
    for i, res in zip(todo, fresh):
        results[keys[i]] = res
    for job, k in zip(jobs, keys):
        probs, dig = results[k]
        report.problems += probs
        for col, d in dig.items():
            report.digests[(str(job[0]), col)] = d
    cache.save(results)
    with _LAST_LOCK:
        _LAST[str(manifest.resolve())] = dict(report.digests)
    return report


def _run_jobs(func, jobs: list, n_jobs: int, progress: bool) -> list:
    from tqdm.auto import tqdm

    n_jobs = n_jobs or os.cpu_count() or 1
    out: list = []
    bar = tqdm(total=len(jobs), desc="validate: patients", unit="patient", disable=not progress or not jobs)
    if n_jobs == 1 or len(jobs) < 16:
        for job in jobs:
            out.append(func(job))
            bar.update()
    else:
        with worker_pool(n_jobs) as ex:
            for res in ex.map(func, jobs, chunksize=8):
                out.append(res)
                bar.update()
    bar.close()
    return out


# ------------------------------------------------------------------ digests later
def last_digests(manifest: str | Path) -> Optional[dict[tuple[str, str], str]]:
    """``{(patient, column): sha256}`` of the last validation of ``manifest`` in this process."""
    with _LAST_LOCK:
        d = _LAST.get(str(Path(manifest).resolve()))
    return dict(d) if d is not None else None


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

    Errors: missing required columns or values, duplicate patient IDs, LNM not 0/1, unknown
    categorical levels, a cohort with a single LNM class, a harmonisation batch (scanner or
    centre, per ``harmonisation.batch``) smaller than ``study.min_batch_size``, missing,
    unreadable, truncated or damaged files (every file is decoded completely: see the module
    docstring), non-finite voxels, non-positive spacing, a direction that is not orthonormal,
    DICOM series with missing/duplicated slices or mixed series, masks whose
    size/spacing/origin/direction differ from their image's, empty masks, masks with labels
    other than 0 and ``study.mask_label``, images constant inside a mask. Warnings (which do
    not fail): the other batch kind too small, age at menopause inconsistent with menopause,
    and what the manifest reader normalised (:func:`dlrc_lib.study.manifest.read_manifest_csv`).
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
    _check_study_wide(raw, params, report)
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
            try:
                v = float(row[col])
            except (TypeError, ValueError):
                err(pid, col, f"not a number: {row[col]!r}{_decimal_comma_hint(row[col])}")
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
