"""Images and masks as other tools save them: a 4D image is named with its volume count and
how to keep one; a segmentation saved on a cropped extent (3D Slicer's default) is placed on
its image's grid and gives the features of the full-grid mask, or is refused saying what
differs; a mask label other than 1 points at ``study.mask_label``, which extraction applies."""
from __future__ import annotations

import json
import locale
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dlrc_lib.features.deep.preprocess import read_case
from dlrc_lib.features.radiomics import extract_case, settings_json, with_mask_label
from dlrc_lib.study.file_checks import check_patient_files
from dlrc_lib.study.images import SeveralVolumes, crop_offset, read_image, read_mask

SHAPE = (8, 24, 24)  # z, y, x
SPACING = (0.8, 0.8, 4.0)
ORIGIN = (-10.0, 20.0, 5.0)
BOX = (slice(2, 6), slice(6, 16), slice(8, 18))  # the tumour's box (z, y, x)


def _image(folder: Path, name: str = "t2.nii.gz", seed: int = 0) -> tuple[Path, sitk.Image, np.ndarray]:
    rng = np.random.default_rng(seed)
    arr = (200 + 40 * rng.normal(size=SHAPE)).astype(np.int16)
    mask = np.zeros(SHAPE, np.uint8)
    mask[BOX] = 1
    mask[2, 6, 8] = 0  # not a perfect box
    arr[mask == 1] += (300 + 60 * rng.normal(size=int(mask.sum()))).astype(np.int16)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(SPACING)
    img.SetOrigin(ORIGIN)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    sitk.WriteImage(img, str(path), True)
    return path, img, mask


def _mask_on(arr: np.ndarray, ref: sitk.Image, start=(0, 0, 0), spacing=None, direction=None) -> sitk.Image:
    """``arr`` (z, y, x) as a mask whose first voxel lies at index ``start`` (x, y, z) of ``ref``'s grid."""
    m = sitk.GetImageFromArray(arr.astype(np.uint8))
    m.SetSpacing(spacing or ref.GetSpacing())
    m.SetDirection(direction or ref.GetDirection())
    m.SetOrigin(ref.TransformContinuousIndexToPhysicalPoint([float(v) for v in start]))
    return m


def _lines(image: Path, mask: Path, col: str = "T2FS", label: int = 1) -> list[str]:
    problems, _ = check_patient_files(("P7", str(image.parent), [(f"image_{col}", str(image)),
                                                                   (f"mask_{col}", str(mask))], label))
    return [str(p) for p in problems]


# ------------------------------------------------------------------------- 4D images
def _four_d(folder: Path, name: str, n: int = 3, vector: bool = False) -> Path:
    arr = np.random.default_rng(1).normal(200, 30, size=(SHAPE[0], SHAPE[1], SHAPE[2], n)).astype(np.int16)
    if vector:
        img = sitk.GetImageFromArray(arr, isVector=True)
    else:
        img = sitk.JoinSeries([sitk.GetImageFromArray(np.ascontiguousarray(arr[..., k])) for k in range(n)])
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(folder / name))
    return folder / name


@pytest.mark.parametrize("name,vector", [("dwi.nii.gz", False), ("dwi.nrrd", False), ("dwi_vector.nrrd", True)])
def test_a_4d_image_is_named_with_its_volumes_and_how_to_keep_one(tmp_path, name, vector):
    path = _four_d(tmp_path / "P7", name, n=3, vector=vector)
    _, _, mask = _image(tmp_path / "ref")
    mpath = tmp_path / "P7" / "dwi_mask.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(mask), str(mpath))
    lines = _lines(path, mpath, col="DWI")
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith(f"error: patient P7, image_DWI ({path}): a 4D image of 3 volumes")
    assert "save the volume to analyse as a file of its own" in line and "sitk.WriteImage" in line
    assert "\n" not in line
    with pytest.raises(SeveralVolumes):
        read_image(path)


def test_the_command_in_the_message_saves_one_volume(tmp_path):
    path = _four_d(tmp_path, "dwi.nii.gz", n=3)
    with pytest.raises(SeveralVolumes) as err:
        read_image(path)
    command = str(err.value).split("python -c ", 1)[1]
    code = command.strip().strip('"')
    exec(code, {})  # what the user runs: python -c "..."
    one = read_image(tmp_path / "dwi_vol0.nii.gz")
    assert one.GetDimension() == 3 and one.GetSize() == (SHAPE[2], SHAPE[1], SHAPE[0])


def test_a_4d_file_of_one_volume_is_that_volume(tmp_path):
    path = _four_d(tmp_path, "t2.nii.gz", n=1)
    img = read_image(path)
    assert img.GetDimension() == 3 and img.GetSize() == (SHAPE[2], SHAPE[1], SHAPE[0])


def _dicom(folder: Path, img: sitk.Image, repeats: int) -> None:
    uid = "1.2.826.0.1.3680043.2.1125.44"
    saved = locale.setlocale(locale.LC_ALL)
    try:
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        folder.mkdir(parents=True)
        n = 0
        for rep in range(repeats):
            for k in range(img.GetDepth()):
                sl = img[:, :, k]
                pos = "\\".join(str(v) for v in img.TransformIndexToPhysicalPoint((0, 0, k)))
                for tag, value in (("0008|0060", "MR"), ("0020|000e", uid), ("0020|000d", uid + ".9"),
                                   ("0020|0032", pos), ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0020|0013", str(n + 1)),
                                   ("0008|0018", f"{uid}.{n + 1}"), ("0018|9087", str(800 * rep))):
                    sl.SetMetaData(tag, value)
                writer.SetFileName(str(folder / f"IM{n:04d}.dcm"))
                writer.Execute(sl)
                n += 1
    finally:  # GDCM's writer leaves LC_CTYPE at "C"
        locale.setlocale(locale.LC_ALL, saved)


def test_a_dicom_series_of_several_volumes_is_named_4d(tmp_path):
    ipath, img, mask = _image(tmp_path / "src")
    folder = tmp_path / "P7" / "ep2d_diff"
    _dicom(folder, img, repeats=2)
    mpath = tmp_path / "P7" / "dwi_mask.nii.gz"
    sitk.WriteImage(_mask_on(mask, img), str(mpath))
    lines = _lines(folder, mpath, col="DWI")
    assert lines and lines[0].startswith(f"error: patient P7, image_DWI ({folder}): a 4D DICOM series of 2 volumes "
                                         f"({2 * SHAPE[0]} files: {SHAPE[0]} slice positions, each 2 times")
    assert "(0018,9087)" in lines[0] and "folder of their own" in lines[0]
    assert not any("duplicated slice" in ln for ln in lines), lines


# ------------------------------------------------------------- cropped segmentation
def _cropped(tmp_path: Path, ext: str = ".seg.nrrd", pad: int = 1) -> tuple[Path, Path, sitk.Image, np.ndarray]:
    """The image, its mask saved on the tumour's box plus ``pad`` voxels (3D Slicer's default extent)."""
    ipath, img, mask = _image(tmp_path)
    z, y, x = (slice(s.start - pad, s.stop + pad) for s in BOX)
    mpath = tmp_path / f"t2_tumour{ext}"
    sitk.WriteImage(_mask_on(mask[z, y, x], img, start=(x.start, y.start, z.start)), str(mpath), True)
    return ipath, mpath, img, mask


@pytest.mark.parametrize("ext", [".seg.nrrd", ".nii.gz"])
def test_a_cropped_segmentation_is_placed_on_its_image(tmp_path, ext):
    ipath, mpath, img, mask = _cropped(tmp_path, ext)
    assert sitk.ReadImage(str(mpath)).GetSize() != img.GetSize()
    assert _lines(ipath, mpath) == []
    placed = read_mask(mpath, read_image(ipath))
    assert placed.GetSize() == img.GetSize()
    np.testing.assert_allclose(placed.GetOrigin(), img.GetOrigin())
    assert np.array_equal(sitk.GetArrayFromImage(placed), mask)


def test_a_cropped_segmentation_gives_the_features_of_the_full_grid(tmp_path):
    ipath, mpath, img, mask = _cropped(tmp_path)
    full = tmp_path / "t2_full_mask.nii.gz"
    sitk.WriteImage(_mask_on(mask, img), str(full), True)
    settings = settings_json({"imageType": {"Original": {}}, "featureClass": {"firstorder": [], "shape": []},
                              "setting": {"label": 1, "binWidth": 25}})
    got, want = extract_case(str(ipath), str(mpath), settings), extract_case(str(ipath), str(full), settings)
    assert got["ok"] and want["ok"], (got.get("reason"), want.get("reason"))
    assert got["features"] == want["features"]
    a_img, a_mask, _ = read_case(ipath, mpath, "P7")
    b_img, b_mask, _ = read_case(ipath, full, "P7")
    assert np.array_equal(a_mask, b_mask) and np.array_equal(a_img, b_img)


def test_a_mask_that_is_no_crop_says_what_differs(tmp_path):
    ipath, img, mask = _image(tmp_path)
    sub = mask[1:7, 5:17, 7:19]
    cases = {
        "spacing": (_mask_on(sub, img, (7, 5, 1), spacing=(1.0, 1.0, 4.0)),
                    "not a crop of the image's grid (mask spacing (1,1,4) != image spacing (0.8,0.8,4))"),
        "offset": (_mask_on(sub, img, (7.5, 5, 1)),
                   "not a crop of the image's grid (mask origin (-4,24,9) lies (7.5,5,1) voxels from the image "
                   "origin (-10,20,5), not a whole number of voxels)"),
        "outside": (_mask_on(sub, img, (20, 5, 1)), "labelled voxel(s) of the mask lie outside the image"),
        "direction": (_mask_on(sub, img, (7, 5, 1), direction=(0, 1, 0, 1, 0, 0, 0, 0, 1)),
                      "mask direction (0,1,0,1,0,0,0,0,1) != image direction (1,0,0,0,1,0,0,0,1)"),
    }
    for what, (m, expect) in cases.items():
        mpath = tmp_path / f"mask_{what}.nrrd"
        sitk.WriteImage(m, str(mpath))
        lines = _lines(ipath, mpath)
        assert len(lines) == 1, (what, lines)
        assert lines[0].startswith(f"error: patient P7, mask_T2FS ({mpath}): mask size (12,12,6) != image size "
                                   "(24,24,8)"), (what, lines[0])
        assert expect in lines[0], (what, lines[0])
        offset, reason = crop_offset(read_image(ipath), m)
        assert offset is None and reason


def test_a_crop_wider_than_the_image_is_placed_when_its_labels_lie_inside(tmp_path):
    ipath, img, mask = _image(tmp_path)
    wide = np.zeros((SHAPE[0], SHAPE[1], SHAPE[2] + 6), np.uint8)
    wide[:, :, 3:3 + SHAPE[2]] = mask
    mpath = tmp_path / "wide.nrrd"
    sitk.WriteImage(_mask_on(wide, img, (-3, 0, 0)), str(mpath))
    assert _lines(ipath, mpath) == []
    assert np.array_equal(sitk.GetArrayFromImage(read_mask(mpath, img)), mask)


# ------------------------------------------------------------------------ mask label
def test_another_label_points_at_study_mask_label(tmp_path):
    ipath, img, mask = _image(tmp_path)
    mpath = tmp_path / "t2_mask.nii.gz"
    sitk.WriteImage(_mask_on(mask * 2, img), str(mpath))
    assert _lines(ipath, mpath) == [
        f"error: patient P7, mask_T2FS ({mpath}): mask has labels other than 0/1: 2 (if the tumour is labelled 2, "
        "set study.mask_label: 2 in the parameter file (now 1))"]
    assert _lines(ipath, mpath, label=2) == []
    two = mask.copy()
    two[BOX[0], 0:3, 0:3] = 3  # a second structure beside the tumour
    sitk.WriteImage(_mask_on(two, img), str(mpath))
    line, = _lines(ipath, mpath)
    assert "labels other than 0/1: 3 (the tumour's label is study.mask_label in the parameter file (now 1)" in line


def test_extraction_reads_the_tumour_by_study_mask_label(tmp_path):
    ipath, img, mask = _image(tmp_path)
    mpath = tmp_path / "t2_mask.nii.gz"
    sitk.WriteImage(_mask_on(mask * 2, img), str(mpath))
    base = {"imageType": {"Original": {}}, "featureClass": {"firstorder": ["Mean"]}, "setting": {"label": 1}}
    assert with_mask_label(base, None) == base
    assert with_mask_label(base, 2)["setting"] == {"label": 2} and base["setting"] == {"label": 1}
    assert not extract_case(str(ipath), str(mpath), settings_json(base))["ok"]
    res = extract_case(str(ipath), str(mpath), settings_json(with_mask_label(base, 2)))
    assert res["ok"], res
    assert res["features"]["original_firstorder_Mean"] == pytest.approx(
        float(sitk.GetArrayFromImage(img)[mask == 1].mean()))
    assert json.loads(settings_json(with_mask_label(base, 1))) == base  # label 1: the same cache key


def test_a_failed_case_without_the_label_names_study_mask_label(tmp_path):
    ipath, img, mask = _image(tmp_path)
    mpath = tmp_path / "t2_mask.nii.gz"
    sitk.WriteImage(_mask_on(mask * 2, img), str(mpath))
    res = extract_case(str(ipath), str(mpath), settings_json({"imageType": {"Original": {}},
                                                             "featureClass": {"firstorder": ["Mean"]}}))
    assert not res["ok"] and res["reason"].startswith("mask without the tumour's label: ")
    assert res["reason"].endswith("(the label extracted is study.mask_label in the parameter file)")
