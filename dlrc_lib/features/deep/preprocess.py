"""Network inputs from an MRI volume and its tumour mask (2D slice or 3D crop).

**2D** (per sequence): the axial slice with the largest tumour area (ties: the one nearest
the tumour's centre along z, then the lower index); on it the tumour's bounding box, made
square *in millimetres* (so that anisotropic in-plane pixels do not squash the tumour),
enlarged by ``margin`` times its side on every side, resampled (bilinear) to
``input_size x input_size``.

**3D**: the tumour's 3D bounding box, square in-plane in millimetres as above, its depth the
tumour's extent along z; both enlarged by the margin and resampled (trilinear) to
``shape_3d = (depth, height, width)``.

Intensities: clipped to the ``clip_percentiles`` of the crop, scaled to [0, 1]; the network
then sees ImageNet's mean/std normalisation of that grey image repeated on 3 channels
(:func:`to_network_input`). Outside the image the edge value is repeated.

**Orientation.** The image (a file or a DICOM series folder) and its mask are first brought
to one orientation by permuting and flipping voxel axes only (``SimpleITK.DICOMOrient``;
nothing is resampled, an oblique volume stays oblique): slices from feet to head, and in-plane
LPS (x towards the patient's left, y posterior), or RAS (x right, y anterior) for a volume
whose nearest axis-aligned frame is RAS. LPS is how DICOM and ITK store volumes, RAS how many
NIfTI tools do (and four of the synthetic twin's scanners); a volume in either is cropped as
stored. The same anatomy stored feet first, with one in-plane axis reversed or with permuted
axes thus gives the same crop as stored LPS; stored RAS it gives that crop turned by 180
degrees in-plane.

Arrays follow SimpleITK's NumPy order ``(z, y, x)``; spacings are given as SimpleITK's
``(sx, sy, sz)`` in mm.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.study.images import read_image, read_mask

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# bump when the geometry or intensity handling changes. "2": volumes are brought to one canonical
# orientation before cropping (the twin's crops are unchanged, a mirrored or feet-first volume's are
# not), so that features cached from such a volume before it are computed again
PREPROCESS_VERSION = "2"


@dataclass
class Crop:
    """A resampled crop: grey values in [0, 1], the resampled mask and where it came from."""

    image: np.ndarray  # (S, S) for 2D, (D, H, W) for 3D, float32 in [0, 1]
    mask: np.ndarray  # same shape, uint8 (nearest-neighbour resampled)
    slice_index: int | None  # 2D: the chosen axial slice
    centre: tuple[float, ...]  # crop centre in voxel indices (z, y, x)
    extent_mm: tuple[float, ...]  # physical size of the crop (z?, y, x) in mm


def canonical_orientation(direction) -> str:
    """The orientation a volume is brought to before cropping (see the module docstring):
    ``RAS`` when both in-plane axes of the nearest axis-aligned frame point right and
    anterior, else ``LPS``."""
    import SimpleITK as sitk

    code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(tuple(float(v) for v in direction))
    return "RAS" if "R" in code and "A" in code else "LPS"


def read_case(image_path: str | Path, mask_path: str | Path, patient: str = "?"
              ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Image and mask arrays ``(z, y, x)`` in the canonical orientation and the spacing
    ``(sx, sy, sz)``; checks them. The image may be a file or a DICOM series folder
    (:func:`dlrc_lib.study.images.read_image`)."""
    import SimpleITK as sitk

    def read(path, reader):
        if not Path(path).exists():
            raise DlrcError(f"patient {patient}, file {path}: not found")
        try:
            return reader(path)
        except Exception as exc:  # noqa: BLE001 - ITK raises RuntimeError, the DICOM readers others
            lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()] or [exc.__class__.__name__]
            raise DlrcError(f"patient {patient}, file {path}: not a readable image ({lines[-1][:120]})") from None

    img = read(image_path, read_image)
    msk = read(mask_path, lambda p: read_mask(p, img))
    if img.GetSize() != msk.GetSize():
        raise DlrcError(f"patient {patient}, file {mask_path}: mask size {msk.GetSize()} != image size {img.GetSize()}")
    if img.GetDimension() != 3:
        raise DlrcError(f"patient {patient}, file {image_path}: expected a 3D volume, got {img.GetDimension()}D")
    target = canonical_orientation(img.GetDirection())
    if sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(img.GetDirection()) != target:
        img, msk = sitk.DICOMOrient(img, target), sitk.DICOMOrient(msk, target)
    image = sitk.GetArrayViewFromImage(img).astype(np.float32)
    mask = sitk.GetArrayViewFromImage(msk) > 0
    if not mask.any():
        raise DlrcError(f"patient {patient}, file {mask_path}: mask is empty")
    return image, mask, tuple(float(s) for s in img.GetSpacing())  # type: ignore[return-value]


def largest_area_slice(mask: np.ndarray) -> int:
    """Index along z of the axial slice with the most tumour voxels (see module docstring)."""
    areas = mask.reshape(mask.shape[0], -1).sum(axis=1)
    best = np.flatnonzero(areas == areas.max())
    zc = (np.arange(mask.shape[0]) * areas).sum() / areas.sum()
    return int(best[np.argmin(np.abs(best - zc))])


def _bbox(mask: np.ndarray) -> list[tuple[int, int]]:
    out = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        idx = np.flatnonzero(mask.any(axis=other))
        out.append((int(idx[0]), int(idx[-1])))
    return out


def _axis_coords(centre: float, extent_mm: float, n: int, spacing: float) -> np.ndarray:
    """Voxel coordinates of ``n`` sample centres covering ``extent_mm`` around ``centre``."""
    step = extent_mm / n
    return centre + (np.arange(n) + 0.5 - n / 2) * step / spacing


def _clip01(values: np.ndarray, clip: tuple[float, float]) -> np.ndarray:
    lo, hi = np.percentile(values, clip)
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.zeros_like(values, dtype=np.float32)
    return ((np.clip(values, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def _inplane_box(bbox_y: tuple[int, int], bbox_x: tuple[int, int], sy: float, sx: float,
                 margin: float) -> tuple[float, float, float]:
    """Centre (y, x) in voxels and the square's side in mm."""
    cy = (bbox_y[0] + bbox_y[1]) / 2
    cx = (bbox_x[0] + bbox_x[1]) / 2
    side = max((bbox_y[1] - bbox_y[0] + 1) * sy, (bbox_x[1] - bbox_x[0] + 1) * sx)
    return cy, cx, side * (1 + 2 * margin)


def crop_2d(image: np.ndarray, mask: np.ndarray, spacing: tuple[float, float, float],
            size: int, margin: float, clip: tuple[float, float]) -> Crop:
    """2D network input (before ImageNet normalisation); see the module docstring."""
    sx, sy, _ = spacing
    z = largest_area_slice(mask)
    m2 = mask[z]
    by, bx = _bbox(m2)
    cy, cx, side = _inplane_box(by, bx, sy, sx, margin)
    ys = _axis_coords(cy, side, size, sy)
    xs = _axis_coords(cx, side, size, sx)
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"))
    img = ndimage.map_coordinates(image[z], grid, order=1, mode="nearest", prefilter=False)
    msk = ndimage.map_coordinates(m2.astype(np.uint8), grid, order=0, mode="constant", cval=0)
    return Crop(_clip01(img, clip), msk.astype(np.uint8), z, (float(z), cy, cx), (side, side))


def crop_3d(image: np.ndarray, mask: np.ndarray, spacing: tuple[float, float, float],
            shape: tuple[int, int, int], margin: float, clip: tuple[float, float]) -> Crop:
    """3D network input (before ImageNet normalisation); see the module docstring."""
    sx, sy, sz = spacing
    bz, by, bx = _bbox(mask)
    cy, cx, side = _inplane_box(by, bx, sy, sx, margin)
    cz = (bz[0] + bz[1]) / 2
    depth = (bz[1] - bz[0] + 1) * sz * (1 + 2 * margin)
    d, h, w = shape
    zs = _axis_coords(cz, depth, d, sz)
    ys = _axis_coords(cy, side, h, sy)
    xs = _axis_coords(cx, side, w, sx)
    grid = np.stack(np.meshgrid(zs, ys, xs, indexing="ij"))
    img = ndimage.map_coordinates(image, grid, order=1, mode="nearest", prefilter=False)
    msk = ndimage.map_coordinates(mask.astype(np.uint8), grid, order=0, mode="constant", cval=0)
    return Crop(_clip01(img, clip), msk.astype(np.uint8), None, (cz, cy, cx), (depth, side, side))


def to_network_input(grey01: np.ndarray) -> np.ndarray:
    """Grey image/volume in [0, 1] -> ImageNet-normalised 3-channel array (channel first)."""
    shape = (3,) + (1,) * grey01.ndim
    return ((grey01[None] - IMAGENET_MEAN.reshape(shape)) / IMAGENET_STD.reshape(shape)).astype(np.float32)


def prepare(image_path: str | Path, mask_path: str | Path, dim: str, *, input_size: int,
            shape_3d: tuple[int, int, int], margin: float, clip: tuple[float, float],
            patient: str = "?") -> Crop:
    """Read one case and return its 2D or 3D crop (grey, [0, 1])."""
    image, mask, spacing = read_case(image_path, mask_path, patient)
    if dim == "2D":
        return crop_2d(image, mask, spacing, input_size, margin, clip)
    return crop_3d(image, mask, spacing, tuple(shape_3d), margin, clip)  # type: ignore[arg-type]
