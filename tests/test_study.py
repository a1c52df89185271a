"""Manifest loading and validation: each kind of problem is found, all at once, one line each."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from dlrc_lib.run.cli import main
from dlrc_lib.core.config import Params
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.study.schema import SEQUENCES
from dlrc_lib.study.manifest import load_study, split_cohorts
from dlrc_lib.twin.prepare import prepare_study
from dlrc_lib.study.validate import validate_manifest
from dlrc_lib.twin import generate_study
from dlrc_lib.study import keys as K

ROOT = Path(__file__).resolve().parents[1]


def _params(tmp: Path | None = None, **study) -> Params:
    base = {"scale": 0.02, "volume_shape": (24, 24, 6), "icc_cases": 3, "n_jobs": 1}
    base.update(study)
    raw = {"published_values": str(ROOT / "params" / "published_values.yaml"), "study": base}
    if tmp is not None:
        raw["study"]["twin_dir"] = str(tmp / "twin")
    return Params.model_validate(raw)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny_twin")
    return generate_study(_params(), out, progress=False)


@pytest.fixture()
def study(pristine, tmp_path) -> Path:
    dst = tmp_path / "study"
    shutil.copytree(pristine.parent, dst)
    return dst / "manifest.csv"


def _lines(problems) -> list[str]:
    return [str(p) for p in problems]


def test_pristine_twin_is_valid(study):
    problems = validate_manifest(study, _params())
    assert [p for p in problems if p.severity == "error"] == []
    df = load_study(study)
    assert df["patient_id"].is_unique
    for seq in SEQUENCES:
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in df[f"image_{seq}"])
    icc = df.dropna(subset=["mask_r2_CET1"])
    assert len(icc) == 3 and icc["mask_rep_T2FS"].map(lambda p: Path(p).is_file()).all()


def test_every_problem_reported_at_once(study):
    base = study.parent
    df = pd.read_csv(study, dtype=str, keep_default_na=False)
    pid = df["patient_id"].tolist()
    row = {p: i for i, p in enumerate(pid)}
    # 1 missing file
    (base / df.at[row[pid[0]], "image_DWI"]).unlink()
    # 2 corrupt image
    (base / df.at[row[pid[1]], "image_T2FS"]).write_bytes(b"\x1f\x8b not really a NIfTI file")
    # 3 mask geometry mismatch (spacing, and size)
    mpath = base / df.at[row[pid[2]], "mask_CET1"]
    m = sitk.ReadImage(str(mpath))
    m.SetSpacing(tuple(s * 1.5 for s in m.GetSpacing()))
    m.SetOrigin(tuple(o + 5 for o in m.GetOrigin()))
    sitk.WriteImage(m, str(mpath))
    mpath = base / df.at[row[pid[3]], "mask_T2FS"]
    small = sitk.Image([10, 10, 3], sitk.sitkUInt8)
    sitk.WriteImage(small, str(mpath))
    mpath = base / df.at[row[pid[12]], "mask_DWI"]
    m = sitk.ReadImage(str(mpath))
    m.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(m, str(mpath))
    # 4 empty mask, 5 wrong labels
    mpath = base / df.at[row[pid[4]], "mask_DWI"]
    m = sitk.ReadImage(str(mpath))
    sitk.WriteImage(m * 0, str(mpath))
    mpath = base / df.at[row[pid[5]], "mask_CET1"]
    m = sitk.ReadImage(str(mpath))
    sitk.WriteImage(m * 2 + 0, str(mpath))
    # clinical problems: duplicate ID, LNM not 0/1, missing value, unknown level, tiny scanner
    df.at[row[pid[7]], "patient_id"] = pid[6]
    df.at[row[pid[8]], "lnm"] = "2"
    df.at[row[pid[9]], "age"] = ""
    df.at[row[pid[10]], "histology"] = "Sarcoma"
    df.at[row[pid[11]], "scanner"] = "Z9"
    # single-class cohort: every internal patient LNM-negative
    df.loc[df["cohort"] == "internal", "lnm"] = "0"
    df.to_csv(study, index=False)
    lines = _lines(validate_manifest(study, _params()))
    expect = [
        (pid[0], "image_DWI", "file not found"),
        (pid[1], "image_T2FS", "corrupt compressed file: damaged gzip stream"),
        (pid[2], "mask_CET1", "mask spacing"),
        (pid[2], "mask_CET1", "mask origin"),
        (pid[3], "mask_T2FS", "mask size (10,10,3) != image size"),
        (pid[12], "mask_DWI", "mask direction (0,1,0,1,0,0,0,0,1) != image direction"),
        (pid[4], "mask_DWI", "empty mask"),
        (pid[5], "mask_CET1", "labels other than 0/1: 2"),
        (pid[6], "patient_id", "duplicate patient ID (2 rows)"),
        (pid[8], "lnm", "LNM must be 0 or 1"),
        (pid[9], "age", "missing required value"),
        (pid[10], "histology", "unknown level 'Sarcoma'"),
    ]
    for p, where, what in expect:
        hits = [ln for ln in lines if ln.startswith(f"error: patient {p}, {where}") and what in ln]
        assert hits, (p, where, what, lines)
    assert any("scanner Z9 has 1 patient(s)" in ln and ln.startswith("error") for ln in lines)
    assert any("internal cohort has a single LNM class" in ln for ln in lines)
    assert all("\n" not in ln for ln in lines)


def test_cli_validate_exit_status_and_no_traceback(study, capsys):
    assert main(["validate", str(study)]) == 0
    (study.parent / pd.read_csv(study)["mask_DWI"].iloc[0]).unlink()
    assert main(["validate", str(study)]) != 0
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert "error: patient P0001, mask_DWI" in out.out


def test_warnings_do_not_fail(study, capsys):
    df = pd.read_csv(study, dtype=str, keep_default_na=False)
    i = df.index[df["menopause"] == "No"][0]
    df.at[i, "age_at_menopause"] = "50"
    df.to_csv(study, index=False)
    problems = validate_manifest(study, _params())
    assert [p.severity for p in problems] == ["warning"]
    assert main(["validate", str(study)]) == 0


def test_configurable_mask_label(study):
    base = study.parent
    df = pd.read_csv(study)
    p = base / df["mask_CET1"].iloc[0]
    sitk.WriteImage(sitk.ReadImage(str(p)) * 3, str(p))
    assert any("labels other than 0/1: 3" in str(x) for x in validate_manifest(study, _params()))
    lines = _lines(validate_manifest(study, _params(mask_label=3)))
    assert any(f"patient {df['patient_id'].iloc[0]}, mask_DWI" in ln and "labels other than 0/3: 1" in ln for ln in lines)
    assert not any("mask_CET1" in ln and df["patient_id"].iloc[0] in ln for ln in lines)


def test_nrrd_and_dicom_series(study):
    base = study.parent
    df = pd.read_csv(study)
    # NRRD image + mask
    for col in ("image_CET1", "mask_CET1"):
        src = base / df.at[0, col]
        dst = src.with_suffix("").with_suffix(".nrrd")
        sitk.WriteImage(sitk.ReadImage(str(src)), str(dst))
        df.at[0, col] = str(dst.relative_to(base))
    # DICOM series folder for one image; its mask re-written on the series' geometry
    src = sitk.ReadImage(str(base / df.at[1, "image_T2FS"]))
    folder = base / "dicom" / "T2FS"
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = src.GetDirection()
    for k in range(src.GetDepth()):
        sl = src[:, :, k]
        for tag, value in (("0008|0060", "MR"), ("0020|000e", "1.2.826.0.1.3680043.2.1125.1"),
                           ("0020|000d", "1.2.826.0.1.3680043.2.1125.2"),
                           ("0020|0032", "\\".join(f"{v}" for v in src.TransformIndexToPhysicalPoint((0, 0, k)))),
                           ("0020|0037", "\\".join(f"{v}" for v in direction[0:9:3] + direction[1:9:3])),
                           ("0020|0013", str(k + 1)), ("0028|0030", f"{src.GetSpacing()[1]}\\{src.GetSpacing()[0]}"),
                           ("0018|0050", str(src.GetSpacing()[2]))):
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        writer.Execute(sl)
    from dlrc_lib.study.images import read_image

    img = read_image(folder)
    assert img.GetSize() == src.GetSize()
    mask = sitk.ReadImage(str(base / df.at[1, "mask_T2FS"]))
    mask.CopyInformation(img)
    sitk.WriteImage(mask, str(base / "dicom" / "T2FS_mask.nii.gz"))
    df.at[1, "image_T2FS"] = "dicom/T2FS"
    df.at[1, "mask_T2FS"] = "dicom/T2FS_mask.nii.gz"
    df.to_csv(study, index=False)
    assert [p for p in validate_manifest(study, _params()) if p.severity == "error"] == []


def test_cohort_column_optional(study):
    df = pd.read_csv(study).drop(columns=["cohort"])
    df.to_csv(study, index=False)
    p = _params(internal_centres=["A"], train_fraction=0.7)
    loaded = load_study(study, p)
    a = loaded["centre"] == "A"
    assert set(loaded.loc[a, "cohort"]) == {"train", "internal"}
    assert set(loaded.loc[~a, "cohort"]) == {"external"}
    for cohort in ("train", "internal"):
        assert loaded.loc[loaded["cohort"] == cohort, "lnm"].nunique() == 2
    n_train = (loaded["cohort"] == "train").sum()
    assert abs(n_train / a.sum() - 0.7) < 0.15
    pd.testing.assert_series_equal(load_study(study, p)["cohort"], loaded["cohort"])
    assert [x for x in validate_manifest(study, p) if x.severity == "error"] == []


def test_split_cohorts_stratified():
    df = pd.DataFrame({"centre": ["A"] * 100 + ["B"] * 10, "lnm": [0] * 70 + [1] * 30 + [0, 1] * 5})
    c = split_cohorts(df, train_fraction=0.7, seed=1)
    assert ((c == "train") & (df["lnm"] == 1)).sum() == 21
    assert ((c == "train") & (df["lnm"] == 0)).sum() == 49
    assert (c[df["centre"] == "B"] == "external").all()


def test_prepare_study_generates_then_reuses(tmp_path):
    p = _params(tmp_path, scale=0.02, icc_cases=2)
    manifest = prepare_study(p)
    assert manifest.is_file() and (manifest.parent / "study.json").is_file()
    mtime = manifest.stat().st_mtime_ns
    assert prepare_study(p) == manifest and manifest.stat().st_mtime_ns == mtime
    (manifest.parent / load_study(manifest)["mask_CET1"].iloc[0]).unlink()
    p2 = _params(tmp_path, scale=0.02, icc_cases=3)  # changed parameters: regenerated
    assert prepare_study(p2) == manifest and manifest.stat().st_mtime_ns != mtime


def test_prepare_study_manifest_errors_raise(study):
    (study.parent / pd.read_csv(study)["image_CET1"].iloc[0]).unlink()
    p = Params.model_validate({"study": {"source": "manifest", "manifest": str(study), "n_jobs": 1}})
    with pytest.raises(DlrcError, match="image_CET1"):
        prepare_study(p)


def test_missing_manifest_is_one_problem(tmp_path):
    problems = validate_manifest(tmp_path / "nope.csv")
    assert len(problems) == 1 and "manifest not found" in str(problems[0])


def test_views(study):
    from dlrc_lib.study.views import (
        acquisition_summary, cohort_counts, example_patients, plot_sequences, published_counts, study_counts,
    )

    df = load_study(study)
    c = cohort_counts(df)
    assert c["cohort"].tolist() == ["train", "internal", "external", "total"]
    assert c.loc[3, "patients"] == len(df)
    assert study_counts(df)["patients"].sum() == len(df)
    acq = acquisition_summary(df)
    assert acq["patients"].sum() == len(df) and (acq["CET1_size"] == "24x24x6").all()
    ids = example_patients(df, n=2, seed=1, include_resegmented=True)
    assert len(ids) == 3 and df.set_index("patient_id").loc[ids[:2], "lnm"].tolist() == [0, 1]
    fig = plot_sequences(df, ids, readers=("mask", "mask_r2"))
    assert len(fig.axes) == 9
    pc = K.values(published_counts(df))
    assert sum(pc[f"table1.n.{k}"][0] + pc[f"table1.n.{k}"][1] for k in ("train", "internal", "external")) == len(df)


def test_small_centre_is_an_error_when_it_is_the_harmonisation_batch(study):
    df = pd.read_csv(study, dtype=str, keep_default_na=False)
    df.at[0, "centre"] = "F"
    df.to_csv(study, index=False)
    by_scanner = [str(p) for p in validate_manifest(study, _params(), check_images=False)]
    assert by_scanner == ["warning: centre: centre F has 1 patient(s), fewer than min_batch_size=2: too small to harmonise"]
    p = _params()
    p.harmonisation.batch = "centre"
    by_centre = [str(x) for x in validate_manifest(study, p, check_images=False)]
    assert any(x.startswith("error: centre: centre F has 1 patient(s)") for x in by_centre)


def test_every_notebook_sees_the_runs_cohorts(study, tmp_path):
    """A manifest without cohorts is split once, by the runner, with the run's parameters."""
    from dlrc_lib.run.runner import write_analysed_study

    df = pd.read_csv(study).drop(columns=["cohort"])
    df.to_csv(study, index=False)
    p = _params(internal_centres=["B"], train_fraction=0.6)
    analysed = write_analysed_study(study, p, tmp_path)
    assert analysed == tmp_path / "study_manifest.csv"
    # what a notebook loads (without the parameters) is the runner's split, not the defaults'
    seen = load_study(analysed)
    pd.testing.assert_series_equal(seen["cohort"], load_study(study, p)["cohort"])
    assert set(seen.loc[seen["centre"] == "B", "cohort"]) == {"train", "internal"}
    assert set(seen.loc[seen["centre"] == "A", "cohort"]) == {"external"}
    assert all(Path(v).is_absolute() for v in seen["image_CET1"])


def test_reported_c_lnm_is_kept(study):
    df = pd.read_csv(study)
    df["c_lnm"] = 1 - (df["lnsd_mm"] >= 10).astype(int)  # the radiologist's call, whatever the size
    df.to_csv(study, index=False)
    assert (load_study(study)["c_lnm"] == df["c_lnm"]).all()
    df.drop(columns=["c_lnm"]).to_csv(study, index=False)
    assert (load_study(study)["c_lnm"] == (df["lnsd_mm"] >= 10).astype(int)).all()


def test_optional_reader_and_acquisition_columns_validated(study):
    """Reader-2 node columns and acquisition columns are optional; when given, bad values are
    reported one line each, and an incomplete reader set is refused."""
    df = pd.read_csv(study, dtype=str, keep_default_na=False)
    assert {"lnsd_mm_r2", "scanner_model", "dwi_b_values", "inplane_mm_DWI"} <= set(df.columns)
    ids = df["patient_id"].tolist()
    df.loc[0, "lnsd_mm_r2"] = "abc"
    df.loc[1, "node_necrosis_r2"] = "2"
    df.loc[2, "lnsd_mm_r2"], df.loc[2, "lnld_mm_r2"] = "12", "9"
    df.loc[3, "lnld_mm_r2"] = ""  # half a reading
    df.loc[4, ["lnsd_mm_r2", "lnld_mm_r2", "node_necrosis_r2"]] = ""  # not read by reader 2: fine
    df.loc[5, "inplane_mm_CET1"] = "0.9x"
    df.loc[6, "dwi_b_values"] = "0, 800.5"
    df.loc[7, "tr_ms_DWI"] = "-1"
    df.to_csv(study, index=False)
    lines = _lines(validate_manifest(study, _params(), check_images=False))
    expected = [
        f"error: patient {ids[0]}, lnsd_mm_r2: not a number: 'abc'",
        f"error: patient {ids[1]}, node_necrosis_r2: must be 0 or 1, got '2'",
        f"error: patient {ids[2]}, lnsd_mm_r2: short axis 12 mm exceeds long axis 9 mm",
        f"error: patient {ids[3]}, lnld_mm_r2: missing value while lnsd_mm_r2, node_necrosis_r2 given",
        f"error: patient {ids[5]}, inplane_mm_CET1: expected 'ROWxCOL' in mm",
        f"error: patient {ids[6]}, dwi_b_values: b-values must be non-negative integers",
        f"error: patient {ids[7]}, tr_ms_DWI: must be a positive number, got '-1'",
    ]
    for want in expected:
        assert any(line.startswith(want) for line in lines), (want, "\n".join(lines))
    assert not any(f"patient {ids[4]}," in line for line in lines)
    assert len(lines) == len(expected)
    loaded = load_study(study)
    assert np.isnan(loaded.loc[4, "lnsd_mm_r2"]) and loaded["lnld_mm_r2"].dtype == float
    # an incomplete set of reader-2 columns is one study-wide error per missing column
    pd.read_csv(study, dtype=str, keep_default_na=False).drop(columns=["lnld_mm_r2"]).to_csv(study, index=False)
    lines = _lines(validate_manifest(study, _params(), check_images=False))
    assert any(line.startswith("error: column lnld_mm_r2: optional reader columns come as a set") for line in lines)
    # without any optional column the manifest is still valid
    df = pd.read_csv(study, dtype=str, keep_default_na=False)
    from dlrc_lib.study.schema import ACQUISITION_COLUMNS

    df.drop(columns=[c for c in df.columns if c.endswith("_r2") and not c.startswith("mask")] + list(ACQUISITION_COLUMNS)).to_csv(study, index=False)
    assert [p for p in validate_manifest(study, _params(), check_images=False) if p.severity == "error"] == []


def test_digest_and_id_columns_are_read_as_text_without_crashing(study, tmp_path):
    """A SHA-256 digest like the one below reads to pandas' C float parser as a number with a
    16-digit exponent, and pandas 2.3 kills the process on it (segmentation fault). The run's
    own ``study_manifest.csv`` carries such digests, so every manifest reader keeps digest,
    path and id columns as text. Read in a child process so that a crash fails this test
    instead of the test session."""
    import subprocess
    import sys

    digest = "389e230351498937e7f006f9dad42686f8829091a1e0a5a3b08d3ae9b765b746"
    df = pd.read_csv(study, dtype=str, keep_default_na=False)
    df["sha256_mask_CET1"] = digest
    df.loc[0, "patient_id"] = "007"
    path = tmp_path / "with_digests.csv"
    df.to_csv(path, index=False)
    code = (
        "import sys\n"
        "from dlrc_lib.study.manifest import load_study, read_manifest\n"
        "m = read_manifest(sys.argv[1]); s = load_study(sys.argv[1])\n"
        "print(m['sha256_mask_CET1'].iloc[0], m['patient_id'].iloc[0], len(s))\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=300, check=False)
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr[-2000:]}"
    assert run.stdout.split() == [digest, "007", str(len(df))]
