"""Reading images and masks: the one reader every part of dlrc uses.

* :func:`read_image` reads a NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``) or any
  other file ITK reads, or a folder holding exactly one DICOM series (as hospitals export
  them), into a ``SimpleITK.Image``. A file's reader is chosen by its name where the name
  says it (NIfTI, NRRD, MetaImage), so a damaged file fails with that reader's one-line
  reason instead of every other reader's attempt being printed.
* :func:`read_mask` reads a mask for its image: NIfTI/NRRD on the image's grid (what
  ITK-SNAP saves), or a DICOM-SEG object (highdicom decodes it; its segment numbers become
  the label values) placed on the image's grid by the positions of its frames. A mask whose
  grid differs from its image's only within :func:`geometry_problems`' tolerance (a NIfTI
  header stores positions in single precision, so a mask saved beside a DICOM series
  differs from it in the sixth digit) takes the image's exact geometry. A mask saved on a
  cropped extent (3D Slicer's default for a segmentation: a sub-box of the image's grid with
  the same spacing and direction, its origin shifted by whole voxels) is pasted into the
  image's grid (:func:`place_crop`); :func:`geometry_problems` says why a mask that is no such
  crop cannot be placed.
* An image of several volumes (a 4D NIfTI/NRRD, a vector NRRD: a DWI with several b-values)
  is refused by :func:`read_image` with the volume count and how to keep one
  (:class:`SeveralVolumes`); a 4D file of a single volume is read as that volume.

Errors are :class:`ImageReadError` (a ``ValueError``) with a one-line reason.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Optional

import numpy as np

#: SOP Class UIDs of DICOM segmentations (Segmentation Storage, Label Map Segmentation Storage)
SEG_SOP_CLASSES = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")

# file name endings -> the ITK reader for them
_IMAGE_IO = {".nii": "NiftiImageIO", ".nii.gz": "NiftiImageIO", ".hdr": "NiftiImageIO", ".img": "NiftiImageIO",
             ".nrrd": "NrrdImageIO", ".nhdr": "NrrdImageIO", ".mha": "MetaImageIO", ".mhd": "MetaImageIO"}

# how far a mask's grid may differ from its image's and still count as the same grid
SPACING_RTOL, SPACING_ATOL = 1e-4, 1e-5
ORIGIN_ATOL = 1e-3  # mm
DIRECTION_ATOL = 1e-4


class ImageReadError(ValueError):
    """An image or mask that cannot be read; ``str()`` is one line."""


class SeveralVolumes(ImageReadError):
    """An image of several volumes (4D) where one 3D volume is expected; ``str()`` says how
    many and how to keep one."""


def one_volume_command(path: str | Path, k: int = 0) -> str:
    """A command that saves volume ``k`` (0-based) of a 4D file as a file of its own."""
    p = Path(path)
    name = p.name
    stem, ext = (name[:-7], ".nii.gz") if name.lower().endswith(".nii.gz") else (p.stem, p.suffix or ".nii.gz")
    out = p.with_name(f"{stem}_vol{k}{ext}")
    return (f"python -c \"import SimpleITK as sitk; im = sitk.ReadImage('{p}'); "
            f"sitk.WriteImage(im[:, :, :, {k}] if im.GetDimension() == 4 else "
            f"sitk.VectorIndexSelectionCast(im, {k}), '{out}')\"")


def _one_volume(img, path: str | Path):
    """``img`` as one 3D volume: a 4D image of a single volume is that volume; one of
    several volumes (or a vector image) is refused with :class:`SeveralVolumes`."""
    n_comp = img.GetNumberOfComponentsPerPixel()
    if img.GetDimension() == 4:
        n = img.GetSize()[3]
        if n == 1 and n_comp == 1:
            return img[:, :, :, 0]
        size = "x".join(str(v) for v in img.GetSize())
    elif n_comp > 1:
        n = n_comp
        size = "x".join(str(v) for v in img.GetSize()) + f", {n} values per voxel"
    else:
        return img
    raise SeveralVolumes(f"a 4D image of {n} volumes (size {size}; e.g. a DWI with several b-values): dlrc "
                         f"reads one 3D volume per sequence; save the volume to analyse as a file of its own and "
                         f"name that file in the manifest, e.g. volume 0 (the first; counting from 0): "
                         f"{one_volume_command(path)}")


def _fmt(values) -> str:
    return "(" + ",".join(f"{v:g}" for v in values) + ")"


def _one_line(exc: BaseException) -> str:
    """The informative line of an exception (ITK's: the text after ``ERROR:``, without the
    reporting object's name and address)."""
    import re

    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "ERROR:" in ln:
            return re.sub(r"^\w+\(0x[0-9a-fA-F]+\):\s*", "", ln.split("ERROR:", 1)[1].strip())[:200]
    return (lines[-1] if lines else exc.__class__.__name__)[:200]


class QuietITK:
    """ITK's warnings off while reading (GDCM's "No Series were found" and the series
    reader's slice-spacing notes: validation reports what they mean, one line each)."""

    def __enter__(self):
        import SimpleITK as sitk

        self.was = sitk.ProcessObject.GetGlobalWarningDisplay()
        sitk.ProcessObject.SetGlobalWarningDisplay(False)

    def __exit__(self, *exc):
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalWarningDisplay(self.was)
        return False


# ------------------------------------------------------------------------ DICOM
def dicom_sop_class(path: str | Path) -> Optional[str]:
    """The SOP Class UID in a DICOM file's meta header, or None for a file without one."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8192)
    except OSError:
        return None
    if head[128:132] != b"DICM":
        return None
    at = 132
    while at + 8 <= len(head):
        group, elem = struct.unpack_from("<HH", head, at)
        if group != 0x0002:
            return None
        vr = head[at + 4:at + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR"):
            if at + 12 > len(head):
                return None
            length, start = struct.unpack_from("<I", head, at + 8)[0], at + 12
        else:
            length, start = struct.unpack_from("<H", head, at + 6)[0], at + 8
        if elem == 0x0002:
            return head[start:start + length].decode("ascii", "replace").strip("\0 ")
        at = start + length
    return None


def is_dicom_seg(path: str | Path) -> bool:
    """Whether ``path`` is a DICOM segmentation object (DICOM-SEG)."""
    return dicom_sop_class(path) in SEG_SOP_CLASSES


def series_files(folder: str | Path) -> list[str]:
    """The files of the one DICOM series in ``folder``, in slice order."""
    import SimpleITK as sitk

    with QuietITK():
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
        if not ids:
            raise ImageReadError("folder holds no DICOM series")
        if len(ids) > 1:
            raise ImageReadError(f"folder holds {len(ids)} DICOM series, expected one")
        return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), ids[0]))


def _seg_path(p: Path) -> Optional[Path]:
    """The DICOM-SEG file ``p`` is, or the one file of a folder's series that is one."""
    if p.is_dir():
        try:
            files = series_files(p)
        except ImageReadError:
            return None
        return Path(files[0]) if len(files) == 1 and is_dicom_seg(files[0]) else None
    return p if is_dicom_seg(p) else None


def read_seg(path: str | Path):
    """A DICOM-SEG object as a label image on its own grid (segment numbers as labels;
    a fractional segmentation is thresholded at one half)."""
    import SimpleITK as sitk

    name = Path(path).name
    try:
        import highdicom as hd
    except ImportError:
        raise ImageReadError(f"{name}: DICOM-SEG masks need highdicom (pip install highdicom), or export the "
                             "mask as NIfTI or NRRD (ITK-SNAP: Segmentation > Save as)") from None
    try:
        seg = hd.seg.segread(str(path))
        if seg.segmentation_type == hd.seg.SegmentationTypeValues.FRACTIONAL:
            vol = seg.get_volume(combine_segments=False, rescale_fractional=True)
            numbers = list(seg.segment_numbers)
            on = np.asarray(vol.array) >= 0.5
            if (on.sum(axis=-1) > 1).any():
                raise ImageReadError("segments overlap")
            labels = (on * np.asarray(numbers, dtype=np.uint16)).sum(axis=-1).astype(np.uint16)
        else:
            vol = seg.get_volume(combine_segments=True)
            labels = np.asarray(vol.array)
        affine = np.asarray(vol.affine, dtype=float)
    except ImageReadError as exc:
        raise ImageReadError(f"DICOM-SEG {name}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - highdicom/pydicom raise many kinds
        raise ImageReadError(f"DICOM-SEG {name} is not readable ({_one_line(exc)})") from None
    if labels.ndim != 3:
        raise ImageReadError(f"DICOM-SEG {name}: expected one volume, got an array of shape {labels.shape}")
    img = sitk.GetImageFromArray(labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.uint16))
    steps = affine[:3, [2, 1, 0]]  # highdicom indexes (slice, row, column); ITK (column, row, slice)
    spacing = np.linalg.norm(steps, axis=0)
    if labels.shape[0] == 1 and not spacing[2] > 0:  # one frame and no slice spacing: any will do
        steps[:, 2], spacing[2] = np.cross(steps[:, 0], steps[:, 1]) / (spacing[0] * spacing[1]), 1.0
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetDirection(tuple(float(v) for v in (steps / spacing).ravel()))
    img.SetOrigin(tuple(float(v) for v in affine[:3, 3]))
    return img


def place_on(labels, image):
    """A label image on ``image``'s grid: copied voxel by voxel where its voxels are voxels
    of ``image``'s grid (a DICOM-SEG made on that series), else resampled (nearest neighbour)."""
    import SimpleITK as sitk

    if image.GetDimension() != 3:
        raise ImageReadError(f"a DICOM-SEG mask needs a 3D image, not a {image.GetDimension()}D one")

    def frame(img) -> tuple[np.ndarray, np.ndarray]:
        d = np.asarray(img.GetDirection(), float).reshape(3, 3) * np.asarray(img.GetSpacing(), float)
        return d, np.asarray(img.GetOrigin(), float)

    (ds, os_), (dr, or_) = frame(labels), frame(image)
    t = np.linalg.solve(dr, ds)  # label index step -> image index step
    shift = np.linalg.solve(dr, os_ - or_)
    used = [0, 1] if labels.GetSize()[2] == 1 else [0, 1, 2]
    exact = (np.allclose(t[:, used], np.round(t[:, used]), atol=1e-3) and np.allclose(shift, np.round(shift), atol=1e-2)
             and all(np.abs(np.round(t[:, c])).sum() == 1 for c in used))
    if not exact:
        out = sitk.Resample(labels, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, labels.GetPixelID())
        if sitk.GetArrayViewFromImage(labels).any() and not sitk.GetArrayViewFromImage(out).any():
            raise ImageReadError("the DICOM-SEG's labelled voxels all lie outside the image")
        return out
    src = sitk.GetArrayViewFromImage(labels)
    z, y, x = np.nonzero(src)
    idx = np.round(np.stack([x, y, z], axis=1) @ np.round(t).T + shift).astype(int)
    size = np.asarray(image.GetSize())
    inside = ((idx >= 0) & (idx < size)).all(axis=1)
    if len(idx) and not inside.all():
        raise ImageReadError(f"{int((~inside).sum())} labelled voxel(s) of the DICOM-SEG lie outside the image")
    out = np.zeros(tuple(size[::-1]), dtype=src.dtype)
    out[idx[:, 2], idx[:, 1], idx[:, 0]] = src[z, y, x]
    placed = sitk.GetImageFromArray(out)
    placed.CopyInformation(image)
    return placed


# ------------------------------------------------------------------------ reading
def read_image(path: str | Path):
    """Read a NIfTI/NRRD/... file, or a folder holding one DICOM series, with SimpleITK
    (a DICOM-SEG object: its label image on its own grid, :func:`read_seg`)."""
    import SimpleITK as sitk

    p = Path(path)
    seg = _seg_path(p)
    if seg is not None:
        return read_seg(seg)
    if p.is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(series_files(p))
    else:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(p))
        name = p.name.lower()
        io = next((v for k, v in _IMAGE_IO.items() if name.endswith(k)), None)
        if io is not None:
            reader.SetImageIO(io)
    try:
        with QuietITK():
            img = reader.Execute()
    except RuntimeError as exc:
        raise ImageReadError(_one_line(exc)) from None
    return _one_volume(img, p)


def read_mask(path: str | Path, image=None):
    """Read a mask for ``image`` (a ``SimpleITK.Image``; None: read it as it is): a DICOM-SEG
    object is placed on the image's grid (:func:`place_on`), a mask saved on a cropped extent
    is pasted into it (:func:`place_crop`), and a mask on the image's grid within
    :func:`geometry_problems`' tolerance takes the image's exact geometry."""
    p = Path(path)
    seg = _seg_path(p)
    mask = read_seg(seg) if seg is not None else read_image(p)
    if image is None:
        return mask
    if seg is not None:
        return place_on(mask, image)
    if mask.GetDimension() == image.GetDimension() and tuple(mask.GetSize()) != tuple(image.GetSize()):
        return place_crop(mask, image)
    same = (mask.GetOrigin(), mask.GetSpacing(), mask.GetDirection()) == (
        image.GetOrigin(), image.GetSpacing(), image.GetDirection())
    if not same and mask.GetDimension() == image.GetDimension() and not geometry_problems(image, mask):
        mask.CopyInformation(image)
    return mask


# how far a cropped mask's origin may lie from a voxel of its image's grid (in voxels)
CROP_OFFSET_TOL = 0.01


def crop_offset(image, mask) -> tuple[Optional[tuple[int, ...]], str]:
    """Where a mask saved on a cropped extent lies in its image's grid: ``(offset, "")`` with
    the image index of the mask's first voxel, or ``(None, reason)`` when the mask's grid is
    no sub-box of the image's (another spacing or direction, an offset of a fraction of a
    voxel, or labelled voxels outside the image)."""
    import SimpleITK as sitk

    if mask.GetDimension() != image.GetDimension():
        return None, f"a {mask.GetDimension()}D mask for a {image.GetDimension()}D image"
    if not np.allclose(image.GetSpacing(), mask.GetSpacing(), rtol=SPACING_RTOL, atol=SPACING_ATOL):
        return None, f"mask spacing {_fmt(mask.GetSpacing())} != image spacing {_fmt(image.GetSpacing())}"
    if not np.allclose(image.GetDirection(), mask.GetDirection(), rtol=0, atol=DIRECTION_ATOL):
        return None, f"mask direction {_fmt(mask.GetDirection())} != image direction {_fmt(image.GetDirection())}"
    n = image.GetDimension()
    steps = np.asarray(image.GetDirection(), float).reshape(n, n) * np.asarray(image.GetSpacing(), float)
    shift = np.linalg.solve(steps, np.asarray(mask.GetOrigin(), float) - np.asarray(image.GetOrigin(), float))
    whole = np.round(shift)
    if not np.allclose(shift, whole, rtol=0, atol=CROP_OFFSET_TOL):
        return None, (f"mask origin {_fmt(mask.GetOrigin())} lies {_fmt(np.round(shift, 3))} voxels from the "
                      f"image origin {_fmt(image.GetOrigin())}, not a whole number of voxels")
    offset = whole.astype(int)
    labelled = np.argwhere(sitk.GetArrayViewFromImage(mask) != 0)[:, ::-1] + offset  # (x, y, z) image indices
    outside = ~((labelled >= 0) & (labelled < np.asarray(image.GetSize()))).all(axis=1)
    if outside.any():
        return None, (f"{int(outside.sum())} labelled voxel(s) of the mask lie outside the image (mask grid "
                      f"{_fmt(mask.GetSize())} at voxel {_fmt(offset)} of the image grid {_fmt(image.GetSize())})")
    return tuple(int(v) for v in offset), ""


def place_crop(mask, image):
    """A mask saved on a cropped extent (:func:`crop_offset`) pasted into ``image``'s grid,
    zero elsewhere, with the image's exact geometry; a mask that is no such crop is returned
    as it is (:func:`geometry_problems` says why)."""
    import SimpleITK as sitk

    offset, _ = crop_offset(image, mask)
    if offset is None:
        return mask
    src = sitk.GetArrayViewFromImage(mask)
    out = np.zeros(tuple(image.GetSize())[::-1], dtype=src.dtype)
    lo = np.asarray(offset[::-1])  # (z, y, x)
    a = np.maximum(lo, 0)
    b = np.minimum(lo + np.asarray(src.shape), np.asarray(out.shape))
    out[tuple(slice(i, j) for i, j in zip(a, b))] = src[tuple(slice(i, j) for i, j in zip(a - lo, b - lo))]
    placed = sitk.GetImageFromArray(out)
    placed.CopyInformation(image)
    return placed


def geometry_problems(img, mask) -> list[str]:
    """A mask's size/spacing/origin/direction differing from its image's."""
    out = []
    if tuple(img.GetSize()) != tuple(mask.GetSize()):
        offset, reason = crop_offset(img, mask)
        why = (f": not a crop of the image's grid ({reason})" if offset is None else
               " (a crop of the image's grid, placed on it when read)")
        out.append(f"mask size {_fmt(mask.GetSize())} != image size {_fmt(img.GetSize())}{why}")
        return out
    if not np.allclose(img.GetSpacing(), mask.GetSpacing(), rtol=SPACING_RTOL, atol=SPACING_ATOL):
        out.append(f"mask spacing {_fmt(mask.GetSpacing())} != image spacing {_fmt(img.GetSpacing())}")
    if not np.allclose(img.GetOrigin(), mask.GetOrigin(), rtol=0, atol=ORIGIN_ATOL):
        out.append(f"mask origin {_fmt(mask.GetOrigin())} != image origin {_fmt(img.GetOrigin())}")
    if not np.allclose(img.GetDirection(), mask.GetDirection(), rtol=0, atol=DIRECTION_ATOL):
        out.append(f"mask direction {_fmt(mask.GetDirection())} != image direction {_fmt(img.GetDirection())}")
    return out
