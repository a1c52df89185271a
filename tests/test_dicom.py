"""Images as hospitals export them: a folder holding one DICOM series works wherever an image
does (validation, radiomics, deep-learning crops), with NIfTI/NRRD masks on the series' grid
and DICOM-SEG masks placed there; stored flips and slice orders do not change the crops."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from dlrc_lib.core.config import Params
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.features import radiomics as rad
from dlrc_lib.features.deep import preprocess as dp
from dlrc_lib.study.images import ImageReadError, is_dicom_seg, read_image, read_mask
from dlrc_lib.study.file_checks import check_patient_files
from dlrc_lib.study.validate import validate_manifest

pydicom = pytest.importorskip("pydicom")

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
QUICK = ROOT / "params" / "radiomics_quick.yaml"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ORIGINAL_ONLY = """
imageType: {Original: {}}
featureClass: {shape: , firstorder: , glcm: , glrlm: , glszm: , gldm: , ngtdm: }
setting: {binWidth: 25, label: 1}
"""
DEEP = {"input_size": 32, "shape_3d": (8, 32, 32), "margin": 0.3, "clip": (1.0, 99.0)}


# ----------------------------------------------------------------- writing series
def write_series(folder: Path, img: sitk.Image, *, slope: float = 1.0, intercept: float = 0.0,
                 unsigned: bool = False, reverse: bool = False, desc: str = "ax_t1_vibe_post") -> list[Path]:
    """One file per slice with the tags an MR scanner writes (positions, orientation, spacing,
    rescale, 16-bit pixels, one series UID); ``reverse``: files named and numbered feet first."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    arr = sitk.GetArrayFromImage(img).astype(np.float64)
    stored = np.round((arr - intercept) / slope).astype(np.uint16 if unsigned else np.int16)
    d = np.asarray(img.GetDirection(), float).reshape(3, 3)
    sx, sy, sz = img.GetSpacing()
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    n, files = img.GetDepth(), []
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MR_IMAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MR_IMAGE, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Patient", "P1", "19700101", "F"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = \
            "20240101", "120000", "1", "A1", ""
        ds.Modality, ds.SeriesDescription, ds.SeriesNumber = "MR", desc, 7
        ds.InstanceNumber = (n - k) if reverse else (k + 1)
        ds.Manufacturer, ds.ManufacturerModelName, ds.MagneticFieldStrength = "SIEMENS", "MAGNETOM Skyra", 3
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "GR", "SP", "FS", "3D"
        ds.RepetitionTime, ds.EchoTime, ds.FlipAngle = 3.9, 1.4, 9
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        pos = img.TransformIndexToPhysicalPoint((0, 0, k))
        ds.ImagePositionPatient = [_ds(v) for v in pos]
        ds.ImageOrientationPatient = [_ds(v) for v in list(d[:, 0]) + list(d[:, 1])]
        ds.PixelSpacing = [_ds(sy), _ds(sx)]  # row spacing, column spacing
        ds.SliceThickness = ds.SpacingBetweenSlices = _ds(sz)
        ds.SliceLocation = _ds(float(np.dot(pos, d[:, 2])))
        ds.Rows, ds.Columns = stored.shape[1], stored.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 0 if unsigned else 1
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = f"{slope:g}", f"{intercept:g}", "US"
        ds.PixelData = stored[k].tobytes()
        path = folder / f"IM{(n - 1 - k) if reverse else k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def _ds(v: float) -> str:
    """A decimal string (DS, at most 16 characters) as scanners write them."""
    return f"{float(v):.10g}"


def rotation(deg_x: float = 0.0, deg_z: float = 0.0) -> tuple[float, ...]:
    ax, az = np.deg2rad(deg_x), np.deg2rad(deg_z)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return tuple((rz @ rx).ravel())


def phantom(shape=(8, 28, 32), spacing=(0.861328125, 0.7294921875, 3.140625), direction=None,
            origin=(-12.5, 20.0, -30.0), seed: int = 0) -> tuple[sitk.Image, sitk.Image]:
    """An int16 volume (z, y, x = ``shape``) with an off-centre, asymmetric 'tumour' and its mask.
    The spacing is exact in single precision (as a NIfTI header keeps it) and no simple
    fraction of PyRadiomics' resampled spacing: with one, voxel centres of the resampled grid
    fall halfway between voxels, and which voxel the mask takes there depends on the last bits
    of the geometry."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    r = ((z - 3.3) / 2.2) ** 2 + ((y - 11.0) / 6.0) ** 2 + ((x - 19.0) / 8.0) ** 2
    arr = 300 + 30 * rng.normal(size=shape) + 12 * x - 5 * y + 400 * (r < 1) * (1 + 0.3 * rng.normal(size=shape))
    img = sitk.GetImageFromArray(arr.astype(np.int16))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    mask = sitk.GetImageFromArray(((r < 1) | ((r < 1.4) & (x > 20))).astype(np.uint8))
    mask.CopyInformation(img)
    return img, mask


def on_grid(mask: sitk.Image, image: sitk.Image) -> sitk.Image:
    """``mask`` (voxels of the same anatomy) moved onto ``image``'s grid by axis flips only."""
    code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())
    out = sitk.DICOMOrient(mask, code)
    assert out.GetSize() == image.GetSize()
    out.CopyInformation(image)
    return out


def dicom_case(tmp: Path, img: sitk.Image, mask: sitk.Image, mask_ext: str = ".nii.gz", **kw):
    """The series folder, the series read back, and its mask written on the series' grid."""
    folder = tmp / "series"
    write_series(folder, img, **kw)
    back = read_image(folder)
    mpath = tmp / f"mask{mask_ext}"
    sitk.WriteImage(on_grid(mask, back), str(mpath))
    return folder, back, mpath


# ------------------------------------------------------------------------- reading
CASES = {
    "axial": {},
    "oblique": {"direction": rotation(12.0, 7.0)},
    "row_reversed": {"direction": (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0)},
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("storage", [{}, {"reverse": True}, {"unsigned": True, "slope": 2.0, "intercept": -1000.0}])
def test_series_geometry_and_voxels_equal_the_source(tmp_path, name, storage):
    img, _ = phantom(**CASES[name])
    if storage.get("slope"):  # values the stored integers can carry exactly
        img = sitk.Cast(sitk.Round(img / 2.0) * 2.0, sitk.sitkInt16)
    write_series(tmp_path / "s", img, **storage)
    back = read_image(tmp_path / "s")
    assert back.GetSize() == img.GetSize()
    assert np.allclose(back.GetSpacing(), img.GetSpacing(), rtol=1e-6)
    assert np.allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-5)
    assert np.allclose(back.GetDirection(), img.GetDirection(), atol=1e-7)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(img))


def test_feet_first_series_reads_as_ordered_by_position(tmp_path):
    """Files written feet first, named and numbered in that order, read the same."""
    img, _ = phantom()
    write_series(tmp_path / "a", img)
    write_series(tmp_path / "b", img, reverse=True)
    a, b = read_image(tmp_path / "a"), read_image(tmp_path / "b")
    assert np.array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
    assert a.GetOrigin() == b.GetOrigin() and a.GetDirection() == b.GetDirection()


def test_folder_without_a_series_is_one_line(tmp_path, capfd):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not an image")
    img, mask = phantom()
    sitk.WriteImage(img, str(tmp_path / "img.nii.gz"))
    sitk.WriteImage(mask, str(tmp_path / "mask.nii.gz"))
    for folder in (empty, tmp_path / "notes"):
        with pytest.raises(ImageReadError, match="^folder holds no DICOM series$"):
            read_image(folder)
        problems, _ = check_patient_files(("P1", str(tmp_path), [("image_CET1", str(folder)),
                                                                 ("mask_CET1", str(tmp_path / "mask.nii.gz"))], 1))
        lines = [str(p) for p in problems]
        assert lines == [f"error: patient P1, image_CET1 ({folder}): folder holds no DICOM series"]
        res = rad.extract_case(str(folder), str(tmp_path / "mask.nii.gz"), _light())
        assert not res["ok"] and res["reason"] == "unreadable image file: folder holds no DICOM series"
        assert res["file"] == str(folder)
        with pytest.raises(DlrcError, match=r"^patient P1, file .*: not a readable image \(folder holds no DICOM series\)$"):
            dp.read_case(folder, tmp_path / "mask.nii.gz", "P1")
    with pytest.raises(DlrcError, match=r"^patient P1, file .*nowhere: not found$"):
        dp.read_case(tmp_path / "nowhere", tmp_path / "mask.nii.gz", "P1")
    err = capfd.readouterr().err
    assert "WARNING" not in err and "HDF5" not in err and "Traceback" not in err, err


# ------------------------------------------------------------------------ validation
def _row(pid: str) -> dict:
    return {"patient_id": pid, "centre": "A", "scanner": "A1", "cohort": "train", "lnm": int(pid[-1]) % 2,
            "age": 45, "parity": 2, "menopause": "No", "age_at_menopause": "", "family_history": "No",
            "figo_stage": "IB1", "histology": "SCC", "lnsd_mm": 6.0, "lnld_mm": 8.0, "node_necrosis": 0}


def test_validate_manifest_with_dicom_image_columns(tmp_path):
    rows = []
    for i, name in enumerate(CASES):
        pid = f"P{i + 1}"
        row = _row(pid)
        for k, seq in enumerate(("CET1", "DWI", "T2FS")):
            img, mask = phantom(seed=10 * i + k, **CASES[name])
            folder = tmp_path / pid / seq
            write_series(folder, img, desc={"CET1": "ax_t1_vibe_post", "DWI": "ep2d_diff_b800",
                                            "T2FS": "t2_tse_fs_tra"}[seq])
            ext = ".nrrd" if k == 1 else ".nii.gz"
            sitk.WriteImage(on_grid(mask, read_image(folder)), str(tmp_path / pid / f"{seq}_mask{ext}"))
            row[f"image_{seq}"] = f"{pid}/{seq}"
            row[f"mask_{seq}"] = f"{pid}/{seq}_mask{ext}"
        rows.append(row)
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    params = Params.model_validate({"study": {"n_jobs": 1, "min_batch_size": 1}, "cache_dir": str(tmp_path / "c")})
    problems = validate_manifest(tmp_path / "manifest.csv", params)
    assert [str(p) for p in problems if p.severity == "error"] == []


# ------------------------------------------------------------------------- radiomics
def _settings(path: Path = QUICK) -> str:
    return rad.settings_json(rad.load_settings(path))


def _light() -> str:
    """The quick settings' resampling and every feature class, on the original image only."""
    import yaml

    return rad.settings_json(yaml.safe_load(ORIGINAL_ONLY) | {"setting": {
        "binWidth": 25, "label": 1, "resampledPixelSpacing": [2.0, 2.0, 4.0], "interpolator": "sitkBSpline"}})


@pytest.mark.parametrize("name,ext,rtol,quick", [("axial", ".nii.gz", 1e-12, True), ("oblique", ".nii.gz", 1e-6, True),
                                                 ("row_reversed", ".nii.gz", 1e-12, False),
                                                 ("oblique", ".nrrd", 1e-9, False)])
def test_radiomics_via_series_equals_via_a_file(tmp_path, name, ext, rtol, quick):
    """The same features through the series as through its volume saved as NIfTI or NRRD
    (a NIfTI header keeps an oblique direction in single precision: equal to 1e-6, not to
    the last bit)."""
    img, mask = phantom(**CASES[name])
    folder, back, mpath = dicom_case(tmp_path, img, mask, mask_ext=ext)
    saved = tmp_path / f"image{ext}"
    sitk.WriteImage(back, str(saved))
    s = _settings() if quick else _light()
    via_dicom = rad.extract_case(str(folder), str(mpath), s)
    via_file = rad.extract_case(str(saved), str(mpath), s)
    assert via_dicom["ok"] and via_file["ok"], (via_dicom.get("reason"), via_file.get("reason"))
    a, b = via_dicom["features"], via_file["features"]
    assert a.keys() == b.keys() and len(a) > (1000 if quick else 100)
    bad = {k: (a[k], b[k]) for k in a if not np.isclose(a[k], b[k], rtol=rtol, atol=1e-12)}
    assert not bad, list(bad.items())[:5]


# ----------------------------------------------------------------------- deep crops
def _crops(image, mask) -> tuple[dp.Crop, dp.Crop]:
    return (dp.prepare(image, mask, "2D", **DEEP), dp.prepare(image, mask, "3D", **DEEP))


def _same(c1: tuple[dp.Crop, dp.Crop], c2: tuple[dp.Crop, dp.Crop]) -> bool:
    return all(np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) for a, b in zip(c1, c2))


def test_deep_crops_do_not_depend_on_storage(tmp_path):
    img, mask = phantom()
    sitk.WriteImage(img, str(tmp_path / "lps.nii.gz"))
    sitk.WriteImage(mask, str(tmp_path / "lps_mask.nii.gz"))
    base = _crops(tmp_path / "lps.nii.gz", tmp_path / "lps_mask.nii.gz")
    assert base[0].mask.any() and base[1].mask.any()
    # the same voxels as a DICOM series, and the series' image saved as NIfTI
    folder, back, mpath = dicom_case(tmp_path / "dcm", img, mask)
    sitk.WriteImage(back, str(tmp_path / "dcm" / "image.nii.gz"))
    assert _same(_crops(folder, mpath), base)
    assert _same(_crops(tmp_path / "dcm" / "image.nii.gz", mpath), base)
    # the same anatomy stored flipped: a reversed row direction (as DICOM stores it, slices
    # then run feet first), slices feet first, a mirrored (LAS) or a transposed volume
    for code in ("RPI", "LPI", "LAS", "PLS"):
        flipped, fmask = sitk.DICOMOrient(img, code), sitk.DICOMOrient(mask, code)
        assert sitk.GetArrayFromImage(flipped).tobytes() != sitk.GetArrayFromImage(img).tobytes()
        sitk.WriteImage(flipped, str(tmp_path / f"{code}.nii.gz"))
        sitk.WriteImage(fmask, str(tmp_path / f"{code}_mask.nii.gz"))
        assert _same(_crops(tmp_path / f"{code}.nii.gz", tmp_path / f"{code}_mask.nii.gz"), base), code
        if np.linalg.det(np.reshape(flipped.GetDirection(), (3, 3))) > 0:  # a series can store it
            f2, _, m2 = dicom_case(tmp_path / code, flipped, fmask)
            assert _same(_crops(f2, m2), base), code
    # stored RAS (slices either way): kept as stored, so the crop is the LPS one turned by 180
    # degrees in-plane
    for code in ("RAS", "RAI"):
        sitk.WriteImage(sitk.DICOMOrient(img, code), str(tmp_path / f"{code}.nii.gz"))
        sitk.WriteImage(sitk.DICOMOrient(mask, code), str(tmp_path / f"{code}_mask.nii.gz"))
        c2, c3 = _crops(tmp_path / f"{code}.nii.gz", tmp_path / f"{code}_mask.nii.gz")
        assert np.allclose(c2.image, base[0].image[::-1, ::-1], atol=1e-6)
        assert np.allclose(c3.image, base[1].image[:, ::-1, ::-1], atol=1e-6)
        assert np.array_equal(c3.mask, base[1].mask[:, ::-1, ::-1])


def test_volumes_stored_ras_are_kept_as_stored():
    """Both usual storage conventions (LPS: DICOM, ITK; RAS: NIfTI tools) are left as they are:
    among them every orientation the twin's scanners write, oblique ones included."""
    from dlrc_lib.twin.anatomy import scanner_grid
    from dlrc_lib.twin.scanners import SCANNERS

    codes = set()
    for scanner in SCANNERS:
        for seq in ("CET1", "DWI"):
            d = scanner_grid(scanner, seq, (16, 16, 8)).direction
            code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(d)
            assert dp.canonical_orientation(d) == code, (scanner.name, code)
            codes.add(code)
    assert codes == {"LPS", "RAS"}
    assert dp.canonical_orientation((-1.0, 0, 0, 0, 1, 0, 0, 0, -1)) == "LPS"  # RPI
    assert dp.canonical_orientation((-1.0, 0, 0, 0, -1, 0, 0, 0, -1)) == "RAS"  # RAI: slices reversed only


# ------------------------------------------------------------------------ DICOM-SEG
def _segmentation(series: Path, mask_on_series: sitk.Image, path: Path) -> Path:
    """A binary DICOM-SEG of ``mask_on_series`` made on the series' files (frames only where
    the mask has voxels, as segmentation tools write them)."""
    hd = pytest.importorskip("highdicom")
    from highdicom.sr import CodedConcept

    files = sorted(series.iterdir())
    sources = [pydicom.dcmread(f) for f in files]
    sources.sort(key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, float),
                                             np.cross(*np.reshape(np.asarray(ds.ImageOrientationPatient, float), (2, 3))))))
    arr = sitk.GetArrayFromImage(mask_on_series).astype(bool)
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=arr, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[hd.seg.SegmentDescription(
            segment_number=1, segment_label="tumour",
            segmented_property_category=CodedConcept("49755003", "SCT", "Morphologically Altered Structure"),
            segmented_property_type=CodedConcept("108369006", "SCT", "Neoplasm"),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)],
        series_instance_uid=hd.UID(), series_number=100, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="Reader", manufacturer_model_name="Outline", software_versions="1", device_serial_number="1",
        omit_empty_frames=True)
    seg.save_as(path)
    return path


@pytest.mark.parametrize("name", ["oblique", "row_reversed"])
def test_dicom_seg_mask_is_placed_on_its_series(tmp_path, name):
    img, mask = phantom(**CASES[name])
    folder, back, mpath = dicom_case(tmp_path, img, mask)
    seg = _segmentation(folder, read_mask(mpath, back), tmp_path / "seg.dcm")
    assert is_dicom_seg(seg) and not is_dicom_seg(mpath) and not is_dicom_seg(next(folder.iterdir()))
    placed = read_mask(seg, back)
    assert np.array_equal(sitk.GetArrayFromImage(placed), sitk.GetArrayFromImage(read_mask(mpath, back)))
    assert placed.GetOrigin() == back.GetOrigin() and placed.GetDirection() == back.GetDirection()
    # validation, radiomics and the deep crops read it as they read the NIfTI mask
    problems, _ = check_patient_files(("P1", str(tmp_path), [("image_CET1", str(folder)), ("mask_CET1", str(seg))], 1))
    assert problems == []
    s = _light()
    a, b = rad.extract_case(str(folder), str(seg), s), rad.extract_case(str(folder), str(mpath), s)
    assert a["ok"] and a["features"] == b["features"]
    assert _same(_crops(folder, seg), _crops(folder, mpath))


def test_dicom_seg_problems_are_one_line(tmp_path, monkeypatch, capfd):
    img, mask = phantom()
    folder, back, mpath = dicom_case(tmp_path, img, mask)
    seg = _segmentation(folder, read_mask(mpath, back), tmp_path / "seg.dcm")

    def lines_for(path: Path) -> list[str]:
        problems, _ = check_patient_files(("P1", str(tmp_path), [("image_CET1", str(folder)), ("mask_CET1", str(path))], 1))
        return [str(p) for p in problems]

    # a damaged file
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(seg.read_bytes()[: seg.stat().st_size // 2])
    lines = lines_for(broken)
    assert len(lines) == 1 and lines[0].startswith(f"error: patient P1, mask_CET1 ({broken}): ")
    assert "DICOM-SEG broken.dcm" in lines[0] and "\n" not in lines[0]
    # an outline made on another series that lies beyond this image
    far = sitk.DICOMOrient(img, "LPS")
    far.SetOrigin((500.0, 500.0, 500.0))
    other = tmp_path / "other"
    write_series(other, far)
    seg_far = _segmentation(other, on_grid(mask, read_image(other)), tmp_path / "far.dcm")
    lines = lines_for(seg_far)
    assert [ln for ln in lines if "mask_CET1" in ln] == [
        f"error: patient P1, mask_CET1 ({seg_far}): unreadable or corrupt image (the DICOM-SEG's labelled voxels "
        "all lie outside the image)"], lines
    # without a DICOM-SEG reader: the refusal names the file and the way out
    monkeypatch.setitem(sys.modules, "highdicom", None)
    lines = lines_for(seg)
    assert lines == [f"error: patient P1, mask_CET1 ({seg}): unreadable or corrupt image (seg.dcm: DICOM-SEG masks "
                     "need highdicom (pip install highdicom), or export the mask as NIfTI or NRRD (ITK-SNAP: "
                     "Segmentation > Save as))"]
    res = rad.extract_case(str(folder), str(seg), _light())
    assert not res["ok"] and res["file"] == str(seg) and "DICOM-SEG masks need highdicom" in res["reason"]
    assert "Traceback" not in capfd.readouterr().err


# ------------------------------------------------------------------ a real image
BRAIN = (DATA / "brain1_image.nrrd", DATA / "brain1_label.nrrd")


@pytest.mark.skipif(not all(p.is_file() for p in BRAIN),
                    reason="tests/data/brain1_image.nrrd and brain1_label.nrrd (PyRadiomics' brain1 case) are missing")
def test_real_mri_as_a_dicom_series(tmp_path):
    """PyRadiomics' brain1 MRI (stored with a reversed row axis) written as a DICOM series:
    the same features through the series as through the NRRD files, and the same crops."""
    img, label = sitk.ReadImage(str(BRAIN[0])), sitk.ReadImage(str(BRAIN[1]))
    assert img.GetPixelID() == sitk.sitkInt16
    folder, back, lpath = dicom_case(tmp_path, img, label, mask_ext=".nrrd")
    assert back.GetPixelID() == sitk.sitkInt16
    assert np.linalg.det(np.reshape(back.GetDirection(), (3, 3))) > 0  # a series' slices follow row x column
    settings = tmp_path / "original.yaml"
    settings.write_text(ORIGINAL_ONLY)
    s = _settings(settings)
    via_dicom = rad.extract_case(str(folder), str(lpath), s)
    via_nrrd = rad.extract_case(str(BRAIN[0]), str(BRAIN[1]), s)
    assert via_dicom["ok"] and via_nrrd["ok"], (via_dicom.get("reason"), via_nrrd.get("reason"))
    a, b = via_dicom["features"], via_nrrd["features"]
    assert a.keys() == b.keys() and len(a) >= 100
    # marching cubes (PyRadiomics' mesh) does not give the same mesh for the voxels in reversed
    # slice order (a series orders its slices along row x column, this volume runs the other way)
    mesh = {"original_shape_MeshVolume", "original_shape_SurfaceArea", "original_shape_SurfaceVolumeRatio",
            "original_shape_Sphericity"}
    bad = {k: (a[k], b[k]) for k in a if not np.isclose(a[k], b[k], rtol=5e-3 if k in mesh else 1e-9, atol=1e-12)}
    assert not bad, list(bad.items())[:5]
    # in the series' voxel order the NRRD files give every feature to the last digits
    code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(back.GetDirection())
    for src, dst in zip(BRAIN, ("image.nrrd", "label.nrrd")):
        sitk.WriteImage(sitk.DICOMOrient(sitk.ReadImage(str(src)), code), str(tmp_path / dst))
    same_order = rad.extract_case(str(tmp_path / "image.nrrd"), str(tmp_path / "label.nrrd"), s)["features"]
    bad = {k: (a[k], same_order[k]) for k in a if not np.isclose(a[k], same_order[k], rtol=1e-9, atol=1e-12)}
    assert not bad, list(bad.items())[:5]
    # and the deep-learning crops are those of the NRRD files
    assert _same(_crops(folder, lpath), _crops(*BRAIN))
