"""The checks of one patient's files (:func:`check_patient_files`): every file is read
completely once, its bytes hashed and, for a compressed file, decompressed and measured against
its header (:func:`byte_problems`); the voxels decoded by SimpleITK and their geometry checked
(:func:`header_problems`); a DICOM series folder checked for one evenly spaced series
(:func:`dicom_series_problems`). :mod:`dlrc_lib.study.validate` runs them for a whole manifest,
through the validation cache (:mod:`dlrc_lib.study.validation_cache`)."""
from __future__ import annotations

import bz2
import gzip
import hashlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from dlrc_lib.core.digest import file_digest, remember
from dlrc_lib.study.images import QuietITK, SeveralVolumes, geometry_problems, read_image, read_mask

# 3: DICOM-SEG masks are read on their image's grid; 4: cropped masks placed, 4D images named
VALIDATOR_VERSION = 4
DIGEST_PREFIX = "sha256_"
ORTHONORMAL_TOL = 1e-3
SLICE_TOL = 0.01  # relative tolerance on a DICOM series' slice gaps


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
    n_volumes = _repeated_volumes(z)
    if n_volumes > 1:
        return out + [several_volumes_message(n_volumes, len(files))]
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


def _repeated_volumes(z: np.ndarray) -> int:
    """k when every slice position of a series (sorted) occurs exactly k times: a series of
    k volumes (4D, e.g. a DWI of k b-values); else 1."""
    _, counts = np.unique(np.round(z, 2), return_counts=True)
    return int(counts[0]) if len(counts) > 1 and counts[0] > 1 and (counts == counts[0]).all() else 1


def several_volumes_message(n_volumes: int, n_files: int) -> str:
    """The line for a DICOM series folder holding several volumes."""
    return (f"a 4D DICOM series of {n_volumes} volumes ({n_files} files: {n_files // n_volumes} slice positions, "
            f"each {n_volumes} times; e.g. a DWI with several b-values): dlrc reads one 3D volume per "
            "sequence; copy the files of the volume to analyse (one b-value: tag (0018,9087) Diffusion b-value, "
            "or one (0020,0100) Temporal Position Identifier) into a folder of their own and name that folder "
            "in the manifest")


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
            if any("DICOM series" in m for m in series_msgs):  # none, several, or one of several volumes
                continue  # no series, or several: nothing to read (said once)
        if any(m.startswith(("corrupt", "truncated", "damaged", "not a")) for m in byte_msgs):
            continue  # the decoded voxels would be ITK's guess
        try:
            img = read_image(p) if col.startswith("image_") else read_mask(p, images.get(col.split("_")[-1]))
            arr = sitk.GetArrayViewFromImage(img)
        except SeveralVolumes as exc:
            bad(str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - ITK raises RuntimeError with a long text
            bad(f"unreadable or corrupt image ({_itk_reason(exc)})")
            continue
        for msg in header_problems(img):
            bad(msg)
        if arr.dtype.kind == "f" and p.is_dir() or arr.dtype.kind == "f" and not p.name.lower().endswith(
                (".nii", ".nii.gz", ".nrrd")):  # NIfTI/NRRD voxels were checked in their bytes above
            for msg in _decoded_non_finite(arr):
                bad(msg)
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
            bad(_label_message(extra, values.tolist(), label))
        elif label not in values.tolist():
            bad(f"empty mask (no voxel labelled {label})")
        elif ref is not None and not geo:
            inside = arrays[seq][arr == label]
            if inside.size and np.nanmin(inside) == np.nanmax(inside):
                problems.append(Problem("error", pid, f"image_{seq} ({_entry(entries, f'image_{seq}')})",
                                        f"image is constant ({float(inside.flat[0]):g}) inside {col}"))
    return problems, digests


def _decoded_non_finite(arr: np.ndarray) -> list[str]:
    """'N non-finite voxel(s) (NaN/inf)' for decoded float voxels that are not all finite."""
    n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if not n_bad:
        return []
    kinds = [k for k, f in (("NaN", np.isnan), ("inf", np.isinf)) if f(arr).any()]
    return [f"{n_bad} non-finite voxel(s) ({'/'.join(kinds)})"]


def _label_message(extra: list, values: list, label: int) -> str:
    """The line for a mask holding labels other than 0 and ``label``: which, and the setting
    that picks the tumour's label."""
    shown = ", ".join(f"{v:g}" for v in extra[:5]) + (" ..." if len(extra) > 5 else "")
    labels = [v for v in values if v != 0]
    hint = (f"if the tumour is labelled {labels[0]:g}, set study.mask_label: {labels[0]:g} in the parameter file "
            f"(now {label})" if len(labels) == 1 else
            f"the tumour's label is study.mask_label in the parameter file (now {label}); save the tumour "
            "alone in this mask, or set study.mask_label to its label if every mask uses it")
    return f"mask has labels other than 0/{label}: {shown} ({hint})"


def _entry(entries, col: str) -> str:
    return next((v for c, v in entries if c == col), "")
