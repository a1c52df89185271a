"""Every byte of a study is checked once: damaged files of every kind are refused, one line
each naming patient, column, file and problem; the validation cache; digests at extraction."""
from __future__ import annotations

import gzip
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from dlrc_lib.core.config import Params
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.study.validate import load_validated_study, validate_manifest
from dlrc_lib.study.file_checks import byte_problems, check_patient_files
from dlrc_lib.study.validate import attach_digests, verify_digests
from dlrc_lib.study.validation_cache import ValidationCache, last_digests

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------- small files
def _pair(folder: Path, name: str = "CET1", *, ext: str = ".nii.gz", dtype=np.int16, seed: int = 0,
          shape=(6, 20, 20)) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    arr = (200 + 40 * rng.normal(size=shape)).astype(dtype)
    m = np.zeros(shape, np.uint8)
    m[2:4, 6:14, 6:14] = 1
    arr[m == 1] += 300
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.8, 0.8, 4.0))
    mask = sitk.GetImageFromArray(m)
    mask.CopyInformation(img)
    folder.mkdir(parents=True, exist_ok=True)
    ip, mp = folder / f"{name}{ext}", folder / f"{name}_mask{ext}"
    sitk.WriteImage(img, str(ip), True)
    sitk.WriteImage(mask, str(mp), True)
    return ip, mp


def _check(ip: Path, mp: Path, label: int = 1) -> list[str]:
    problems, digests = check_patient_files(("P1", str(ip.parent), [("image_CET1", str(ip)), ("mask_CET1", str(mp))],
                                             label))
    return [str(p) for p in problems]


def test_clean_pair_passes_and_is_hashed(tmp_path):
    ip, mp = _pair(tmp_path)
    problems, digests = check_patient_files(("P1", str(tmp_path), [("image_CET1", str(ip)), ("mask_CET1", str(mp))], 1))
    assert problems == []
    from dlrc_lib.core.digest import file_digest

    assert digests == {"image_CET1": file_digest(ip), "mask_CET1": file_digest(mp)}


def test_truncated_nifti_gz_is_refused_though_itk_reads_it(tmp_path):
    ip, mp = _pair(tmp_path)
    data = ip.read_bytes()
    ip.write_bytes(data[: len(data) * 2 // 3])
    sitk.ReadImage(str(ip))  # SimpleITK returns an image (partly zero-filled) without raising
    lines = _check(ip, mp)
    assert len(lines) == 1
    assert lines[0].startswith(f"error: patient P1, image_CET1 ({ip}): corrupt compressed file")
    assert "ended before the end-of-stream marker" in lines[0]


def test_flipped_byte_fails_the_crc(tmp_path):
    ip, mp = _pair(tmp_path)
    data = bytearray(mp.read_bytes())
    data[len(data) // 2] ^= 0x55
    mp.write_bytes(bytes(data))
    lines = _check(ip, mp)
    assert len(lines) == 1 and "mask_CET1" in lines[0] and "corrupt compressed file" in lines[0]


def test_gzip_of_a_truncated_nifti_is_refused(tmp_path):
    """A sound gzip stream whose content is shorter than the header promises."""
    ip, mp = _pair(tmp_path)
    raw = gzip.decompress(ip.read_bytes())
    ip.write_bytes(gzip.compress(raw[:-500]))
    lines = _check(ip, mp)
    assert len(lines) == 1 and "truncated: decompresses to" in lines[0] and "header promises" in lines[0]


def test_uncompressed_nifti_cut_short(tmp_path):
    ip, mp = _pair(tmp_path, ext=".nii")
    ip.write_bytes(ip.read_bytes()[:-100])
    lines = _check(ip, mp)
    assert any("truncated: holds" in ln for ln in lines), lines


def _nifti2(end: str, data: np.ndarray, pixdim=(1.0, 1.0, 2.0)) -> bytes:
    """A NIfTI-2 single file (540-byte header, data at 544) written by hand: SimpleITK writes NIfTI-1."""
    hdr = bytearray(544)
    struct.pack_into(end + "i", hdr, 0, 540)
    hdr[4:12] = b"n+2\0\r\n\x1a\n"
    struct.pack_into(end + "hh", hdr, 12, 16, 32)  # datatype FLOAT32, bitpix
    struct.pack_into(end + "8q", hdr, 16, 3, *data.shape, 1, 1, 1, 1)
    struct.pack_into(end + "8d", hdr, 104, 1.0, *pixdim, 1, 1, 1, 1)
    struct.pack_into(end + "q", hdr, 168, 544)
    return bytes(hdr) + data.astype(end + "f4").tobytes(order="F")


@pytest.mark.parametrize("end", ["<", ">"])
def test_nifti2_header_read_in_both_byte_orders(tmp_path, end):
    vol = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    path = tmp_path / "img.nii"
    assert byte_problems(path, _nifti2(end, vol)) == []
    assert any("truncated: holds 92 bytes of voxel data, its header promises 96" in ln
               for ln in byte_problems(path, _nifti2(end, vol)[:-4]))
    vol[1, 1, 1] = np.nan
    assert byte_problems(path, _nifti2(end, vol)) == ["1 non-finite voxel(s) (NaN)"]
    assert any("pixdim" in ln for ln in byte_problems(path, _nifti2(end, vol * 0, pixdim=(1.0, 0.0, 2.0))))


@pytest.mark.parametrize("cut", ["middle", "last8"])
def test_nrrd_gzip_truncated(tmp_path, cut):
    ip, mp = _pair(tmp_path, ext=".nrrd")
    assert b"encoding: gzip" in ip.read_bytes()[:400]
    data = ip.read_bytes()
    ip.write_bytes(data[: len(data) // 2] if cut == "middle" else data[:-8])
    lines = _check(ip, mp)
    assert len(lines) == 1 and "corrupt compressed file" in lines[0]


def test_nrrd_raw_truncated(tmp_path):
    arr = np.ones((4, 8, 8), np.int16)
    img = sitk.GetImageFromArray(arr)
    p = tmp_path / "raw.nrrd"
    sitk.WriteImage(img, str(p), False)
    p.write_bytes(p.read_bytes()[:-10])
    assert any("truncated: holds" in m for m in byte_problems(p, p.read_bytes()))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels(tmp_path, bad):
    ip, mp = _pair(tmp_path, dtype=np.float32)
    img = sitk.ReadImage(str(ip))
    arr = sitk.GetArrayFromImage(img)
    arr[0, 0, :3] = bad
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    sitk.WriteImage(out, str(ip), True)
    lines = _check(ip, mp)
    assert len(lines) == 1 and "3 non-finite voxel(s)" in lines[0] and "image_CET1" in lines[0]


def test_constant_inside_mask(tmp_path):
    ip, mp = _pair(tmp_path)
    img = sitk.ReadImage(str(ip))
    arr = sitk.GetArrayFromImage(img)
    arr[sitk.GetArrayFromImage(sitk.ReadImage(str(mp))) == 1] = 77
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    sitk.WriteImage(out, str(ip), True)
    lines = _check(ip, mp)
    assert lines == [f"error: patient P1, image_CET1 ({ip}): image is constant (77) inside mask_CET1"]


def test_wrong_labels_and_empty_mask(tmp_path):
    ip, mp = _pair(tmp_path)
    m = sitk.ReadImage(str(mp))
    sitk.WriteImage(m * 4, str(mp), True)
    assert "labels other than 0/1: 4" in _check(ip, mp)[0]
    assert _check(ip, mp, label=4) == []
    sitk.WriteImage(m * 0, str(mp), True)
    assert "empty mask" in _check(ip, mp)[0]


@pytest.mark.parametrize("value", [0.0, -2.0, float("nan")])
def test_nifti_header_voxel_size(tmp_path, value):
    ip, mp = _pair(tmp_path, ext=".nii")
    data = bytearray(ip.read_bytes())
    data[80:84] = struct.pack("<f", value)  # pixdim[1]
    ip.write_bytes(bytes(data))
    lines = _check(ip, mp)
    assert any("header voxel size (pixdim)" in ln and "not finite and positive" in ln for ln in lines), lines


def _nrrd_with_directions(tmp_path: Path, directions: bytes) -> tuple[Path, Path]:
    ip, mp = _pair(tmp_path, ext=".nrrd")
    for p in (ip, mp):
        data = p.read_bytes()
        head, sep, body = data.partition(b"\n\n")
        lines = [ln if not ln.startswith(b"space directions:") else b"space directions: " + directions
                 for ln in head.split(b"\n")]
        p.write_bytes(b"\n".join(lines) + sep + body)
    return ip, mp


def test_non_orthonormal_direction(tmp_path):
    ip, mp = _nrrd_with_directions(tmp_path, b"(0.8,0,0) (0.8,0.8,0) (0,0,4)")
    lines = _check(ip, mp)
    assert any("image_CET1" in ln and "direction matrix" in ln and "not orthonormal" in ln for ln in lines), lines


def test_zero_spacing_nrrd(tmp_path):
    ip, mp = _nrrd_with_directions(tmp_path, b"(0.8,0,0) (0,0,0) (0,0,4)")
    lines = _check(ip, mp)
    assert any("image_CET1" in ln and ("spacing" in ln) for ln in lines), lines


# --------------------------------------------------------------------- DICOM
def _dicom_series(folder: Path, img, uid: str = "1.2.826.0.1.3680043.2.1125.1", skip=(), twice=()) -> None:
    import locale

    saved = locale.setlocale(locale.LC_ALL)
    try:
        _write_dicom_series(folder, img, uid, skip, twice)
    finally:  # GDCM's writer leaves LC_CTYPE at "C": later tests would read UTF-8 files as ASCII
        locale.setlocale(locale.LC_ALL, saved)


def _write_dicom_series(folder: Path, img, uid: str, skip, twice) -> None:
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = img.GetDirection()
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for k in range(img.GetDepth()):
        if k in skip:
            continue
        for rep in range(2 if k in twice else 1):
            sl = img[:, :, k]
            for tag, value in (("0008|0060", "MR"), ("0020|000e", uid), ("0020|000d", uid + ".9"),
                               ("0020|0032", "\\".join(f"{v}" for v in img.TransformIndexToPhysicalPoint((0, 0, k)))),
                               ("0020|0037", "\\".join(f"{v}" for v in direction[0:9:3] + direction[1:9:3])),
                               ("0020|0013", str(n + 1)), ("0008|0018", f"{uid}.{n + 1}"),
                               ("0028|0030", f"{img.GetSpacing()[1]}\\{img.GetSpacing()[0]}"),
                               ("0018|0050", str(img.GetSpacing()[2]))):
                sl.SetMetaData(tag, value)
            writer.SetFileName(str(folder / f"{uid[-3:]}_{n:03d}.dcm"))
            writer.Execute(sl)
            n += 1


@pytest.mark.parametrize("damage,expect", [
    ({}, None),
    ({"skip": (3,)}, "about 1 missing slice(s)"),
    ({"twice": (2,)}, "1 duplicated slice position(s)"),
    ("mixed", "DICOM series (mixed series)"),
])
def test_dicom_series(tmp_path, damage, expect):
    ip, mp = _pair(tmp_path / "src", shape=(6, 16, 16))
    img = sitk.Cast(sitk.ReadImage(str(ip)), sitk.sitkInt16)
    folder = tmp_path / "dicom"
    _dicom_series(folder, img, **(damage if isinstance(damage, dict) else {}))
    if damage == "mixed":
        _dicom_series(folder, img, uid="1.2.826.0.1.3680043.2.1125.777")
    lines = _check(folder, mp)
    if expect is None:
        assert lines == []
    else:
        assert any(ln.startswith(f"error: patient P1, image_CET1 ({folder}): ") and expect in ln for ln in lines), lines


# -------------------------------------------------------- study, cache, digests
def _params(tmp: Path, **study) -> Params:
    base = {"scale": 0.02, "volume_shape": (24, 24, 6), "icc_cases": 2, "n_jobs": 1}
    base.update(study)
    return Params.model_validate({"published_values": str(ROOT / "params" / "published_values.yaml"),
                                  "study": base, "cache_dir": str(tmp / "cache")})


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    from dlrc_lib.twin import generate_study

    out = tmp_path_factory.mktemp("twin")
    return generate_study(_params(out), out, progress=False)


@pytest.fixture()
def study(pristine, tmp_path) -> Path:
    dst = tmp_path / "study"
    shutil.copytree(pristine.parent, dst)
    return dst / "manifest.csv"


def test_cache_warm_is_fast_and_sees_changes(study, tmp_path):
    p = _params(tmp_path)
    t0 = time.perf_counter()
    cold = validate_manifest(study, p)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = validate_manifest(study, p)
    t_warm = time.perf_counter() - t0
    assert [str(x) for x in cold] == [str(x) for x in warm]
    assert t_warm < t_cold / 3, (t_cold, t_warm)
    # a file damaged after the first validation is checked again (its stamp changed)
    df = pd.read_csv(study)
    target = study.parent / df.at[0, "image_DWI"]
    target.write_bytes(target.read_bytes()[:-40])
    lines = [str(x) for x in validate_manifest(study, p)]
    assert any(df.at[0, "patient_id"] in ln and "image_DWI" in ln and "corrupt compressed" in ln for ln in lines)
    # a damaged cache file is ignored with a warning, and validation still finds everything
    import json

    cache = ValidationCache(p.cache_dir, study)
    doc = json.loads(cache.path.read_text())
    for entry in doc["entries"].values():  # a cache edited to hide the problem
        entry["problems"] = []
    cache.path.write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match="checksum mismatch"):
        again = [str(x) for x in validate_manifest(study, p)]
    assert again == lines


def test_digests_recorded_and_checked_at_extraction(study, tmp_path):
    from dlrc_lib.features.radiomics import study_cases

    p = _params(tmp_path)
    table = load_validated_study(study, p)
    assert table["sha256_image_CET1"].str.len().eq(64).all()
    assert set(last_digests(study).values()) >= set(table["sha256_mask_T2FS"])
    study_cases(table, ["CET1"])  # unchanged: accepted
    # a file rewritten after validation (same size even) is refused, by name
    victim = Path(table.at[1, "mask_CET1"])
    m = sitk.ReadImage(str(victim))
    arr = sitk.GetArrayFromImage(m)
    arr[arr.shape[0] // 2, 0, 0] = 1 - arr[arr.shape[0] // 2, 0, 0]
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(m)
    sitk.WriteImage(out, str(victim), True)
    with pytest.raises(DlrcError, match=rf"patient {table.at[1, 'patient_id']}, mask_CET1, file .*changed since validation"):
        study_cases(table, ["CET1"])
    with pytest.raises(DlrcError, match="changed since validation"):
        from dlrc_lib.features.deep.extract import study_cases as deep_cases

        deep_cases(table, ["CET1"])
    Path(table.at[2, "image_T2FS"]).unlink()
    with pytest.raises(DlrcError, match="removed since validation"):
        verify_digests(table)
    assert "sha256_image_CET1" not in attach_digests(table.drop(columns=[c for c in table if c.startswith("sha256_")]),
                                                    {}).columns


def test_cli_validate_lists_every_damage_at_once(study, tmp_path, capsys):
    from dlrc_lib.run.cli import main

    df = pd.read_csv(study)
    a = study.parent / df.at[0, "image_CET1"]
    a.write_bytes(a.read_bytes()[:-100])
    b = study.parent / df.at[1, "mask_T2FS"]
    data = bytearray(b.read_bytes())
    data[len(data) // 2] ^= 0xFF
    b.write_bytes(bytes(data))
    c = study.parent / df.at[2, "image_DWI"]
    img = sitk.Cast(sitk.ReadImage(str(c)), sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(img)
    arr.flat[5] = np.nan
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    sitk.WriteImage(out, str(c), True)
    params_file = tmp_path / "p.yaml"
    params_file.write_text(f"cache_dir: {tmp_path / 'cache'}\nstudy:\n  n_jobs: 1\n")
    rc = main(["validate", str(study), "--params", str(params_file)])
    captured = capsys.readouterr()
    assert rc == 1 and "Traceback" not in captured.err
    lines = captured.out.splitlines()
    for i, col, what in ((0, "image_CET1", "corrupt compressed file"), (1, "mask_T2FS", "corrupt compressed file"),
                         (2, "image_DWI", "1 non-finite voxel(s) (NaN)")):
        assert any(ln.startswith(f"error: patient {df.at[i, 'patient_id']}, {col} (") and what in ln
                   for ln in lines), (i, col, lines)
