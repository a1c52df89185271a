"""Tests of the radiomics extraction: settings, naming, cache (resume after a kill,
invalidation), the failures table, the no-silent-filter check, parallel back-ends."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml

from _tinystudy import make_study, write_mask
from dlrc_lib.features import radiomics as rad
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.features.store import FeatureStore

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "params" / "radiomics_quick.yaml"
PAPER = REPO / "params" / "radiomics.yaml"
PAPER_IMAGE_TYPES = {"Original", "Wavelet", "LoG", "LBP2D", "LBP3D", "Gradient"}
ALL_CLASSES = {"shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("study"), n=2, icc=1)


@pytest.fixture(scope="module")
def extracted(study, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    res = rad.extract_radiomics(study, QUICK, cache, masks=("reader1", "reader2", "repeat"),
                                n_jobs=1, progress=False)
    return cache, res


@pytest.mark.parametrize("path", [PAPER, QUICK])
def test_settings_files_mirror_the_paper(path):
    settings = rad.load_settings(path)
    image_types, classes = rad.configured_groups(settings)
    assert set(image_types) == PAPER_IMAGE_TYPES
    assert set(classes) == ALL_CLASSES
    s = settings["setting"]
    assert s["normalize"] and s["preCrop"] and s["binWidth"] > 0
    assert len(s["resampledPixelSpacing"]) == 3
    if path == PAPER:
        assert len(settings["imageType"]["LoG"]["sigma"]) >= 3


def test_settings_errors_are_one_line(tmp_path):
    with pytest.raises(DlrcError, match="not found"):
        rad.load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("imageType: {Original: {}}\nsetting: {binWidth: -3, nonsense: 1}\n")
    with pytest.raises(DlrcError, match="not a valid PyRadiomics parameter file"):
        rad.load_settings(bad)


def test_feature_names_and_diagnostics_apart(extracted, study):
    _, res = extracted
    f = res.features
    assert list(f.index) == list(study["patient_id"])
    assert f.index.name == "patient_id"
    seqs = {c.split("_", 1)[0] for c in f.columns}
    assert seqs == {"CET1", "DWI", "T2FS"}
    assert not any("diagnostics" in c for c in f.columns)
    assert "CET1_wavelet-HLH_gldm_SmallDependenceEmphasis" in f.columns
    assert "DWI_lbp-3D-k_firstorder_Mean" in f.columns and "T2FS_lbp-2D_glcm_Idm" in f.columns
    assert f.dtypes.eq("float64").all()
    per_seq = f.shape[1] // 3
    assert f.shape[1] == 3 * per_seq and per_seq > 1000
    assert all(c.split("_", 1)[0] in seqs for c in res.diagnostics.columns)
    assert "CET1_diagnostics_Versions_PyRadiomics" in res.diagnostics.columns
    groups = rad.feature_groups(f.columns)
    assert set(groups["image_type"]) == PAPER_IMAGE_TYPES
    assert set(groups["feature_class"]) == ALL_CLASSES
    # reader-2 / repeat: only the reproducibility patient, same columns
    assert list(res.by_mask["reader2"].index) == ["P000"]
    assert list(res.by_mask["repeat"].columns) == list(f.columns)
    assert not res.by_mask["reader2"].equals(f.loc[["P000"]])


def test_second_run_is_fully_cached_and_identical(extracted, study):
    cache, res = extracted
    again = rad.extract_radiomics(study, QUICK, cache, masks=("reader1", "reader2", "repeat"),
                                  n_jobs=1, progress=False)
    assert (again.cases["status"] == "cached").all()
    pd.testing.assert_frame_equal(again.features, res.features)
    pd.testing.assert_frame_equal(again.by_mask["repeat"], res.by_mask["repeat"])
    # the summary table says the same for a cold and a warm run; the cache hits are provenance
    pd.testing.assert_frame_equal(again.summary(), res.summary())
    s = again.summary().set_index("mask")
    assert s.loc["reader1", "extracted"] == 6 and s.loc["reader2", "cases"] == 3
    assert again.cache_summary()["by_mask"]["reader1"] == {"cached": 6, "computed": 0}
    assert res.cache_summary()["by_mask"]["reader1"]["computed"] == 6


def test_invalidation_when_settings_change(extracted, study, tmp_path):
    cache, res = extracted
    settings = yaml.safe_load(QUICK.read_text())
    settings["setting"]["binWidth"] = 20
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(settings))
    new = rad.extract_radiomics(study, changed, cache, sequences=("CET1",), n_jobs=1, progress=False)
    assert (new.cases["status"] == "computed").all()
    col = "CET1_original_glcm_Contrast"
    assert not np.allclose(new.features[col], res.features[col])
    # shape does not depend on binning
    pd.testing.assert_series_equal(new.features["CET1_original_shape_VoxelVolume"],
                                   res.features["CET1_original_shape_VoxelVolume"])
    # the old entries are still there: switching back costs nothing
    back = rad.extract_radiomics(study, QUICK, cache, sequences=("CET1",), n_jobs=1, progress=False)
    assert (back.cases["status"] == "cached").all()


def test_changed_image_bytes_recompute_only_that_case(study, extracted, tmp_path):
    cache, _ = extracted
    st = study.copy()
    img = sitk.ReadImage(st.at[1, "image_DWI"])
    arr = sitk.GetArrayFromImage(img)
    arr[0, 0, 0] += 7
    new = sitk.GetImageFromArray(arr)
    new.CopyInformation(img)
    path = tmp_path / "DWI_edited.nii.gz"
    sitk.WriteImage(new, str(path))
    st.at[1, "image_DWI"] = str(path)
    res = rad.extract_radiomics(st, QUICK, cache, n_jobs=1, progress=False)
    computed = res.cases[res.cases["status"] == "computed"]
    assert list(zip(computed["patient_id"], computed["sequence"])) == [("P001", "DWI")]


def test_failures_are_isolated_and_explained(tmp_path):
    st = make_study(tmp_path / "s", n=4)
    # corrupt image (damaged bytes)
    p = Path(st.at[0, "image_DWI"])
    b = p.read_bytes()
    p.write_bytes(b[:100] + b"\0" * 40 + b[140: len(b) // 2])
    # mask outside the image (moved 500 mm away)
    m = sitk.ReadImage(st.at[1, "mask_T2FS"])
    m.SetOrigin((500.0, 0.0, 0.0))
    sitk.WriteImage(m, st.at[1, "mask_T2FS"])
    # tiny mask: 3 voxels in one row
    a = np.zeros((8, 24, 24), np.uint8)
    a[4, 12, 12:15] = 1
    write_mask(Path(st.at[2, "mask_CET1"]), Path(st.at[2, "image_CET1"]), a)
    # missing file
    st.at[2, "image_DWI"] = str(tmp_path / "nope.nii.gz")
    res = rad.extract_radiomics(st, QUICK, tmp_path / "cache", n_jobs=1, progress=False)
    f = res.failures
    assert list(f.columns) == ["patient_id", "sequence", "mask", "file", "reason"]
    got = {(r.patient_id, r.sequence): r.reason for r in f.itertuples()}
    assert set(got) == {("P000", "DWI"), ("P001", "T2FS"), ("P002", "CET1"), ("P002", "DWI")}
    assert got[("P000", "DWI")].startswith("unreadable")
    assert got[("P001", "T2FS")].startswith("mask does not fit the image")
    assert got[("P002", "CET1")].startswith("mask too small")
    assert got[("P002", "DWI")] == "image file not found"
    assert Path(f.set_index("patient_id").loc["P001", "file"]).resolve() == Path(st.at[1, "mask_T2FS"]).resolve()
    # the run went on: the healthy patient has features, the others are listed as lost
    assert list(res.features.index) == ["P003"]
    assert list(res.lost["patient_id"]) == ["P000", "P001", "P002"]
    assert res.lost.set_index("patient_id").loc["P002", "reason"].startswith("CET1: mask too small")
    # the other sequences of a lost patient were still extracted (and cached)
    ok = res.cases[(res.cases["patient_id"] == "P000") & (res.cases["status"] == "computed")]
    assert set(ok["sequence"]) == {"CET1", "T2FS"}


def test_missing_study_column_is_a_clear_error(study, tmp_path):
    with pytest.raises(DlrcError, match="column 'mask_DWI' missing"):
        rad.extract_radiomics(study.drop(columns=["mask_DWI"]), QUICK, tmp_path, n_jobs=1, progress=False)


# ------------------------------------------------------------------ no silent losses
def test_missing_groups_names_what_is_absent(extracted):
    _, res = extracted
    settings = rad.load_settings(QUICK)
    names = [c.split("_", 1)[1] for c in res.features.columns if c.startswith("CET1_")]
    assert rad.missing_groups(names, settings) == []
    no_lbp3d = [n for n in names if not n.startswith("lbp-3D")]
    assert rad.missing_groups(no_lbp3d, settings) == ["LBP3D (lbp-3D-*)"]
    no_glszm_grad = [n for n in names if not n.startswith("gradient_glszm")]
    assert rad.missing_groups(no_glszm_grad, settings) == ["gradient/glszm"]
    paper = rad.load_settings(PAPER)
    assert "LoG (log-sigma-2-0-mm-3D)" in rad.missing_groups(names, paper)


def test_missing_dependency_fails_before_extraction(monkeypatch, study, tmp_path):
    monkeypatch.setitem(sys.modules, "trimesh", None)  # import trimesh -> ImportError
    monkeypatch.setitem(sys.modules, "trimesh.creation", None)
    with pytest.raises(DlrcError, match=r"LBP3D needs trimesh.creation.icosphere \(trimesh\)"):
        rad.extract_radiomics(study, QUICK, tmp_path, n_jobs=1, progress=False)
    assert not (tmp_path / "features" / "radiomics" / "shards").exists()


def test_silently_dropped_filter_is_caught_after_extraction(monkeypatch, study, tmp_path):
    """Simulate PyRadiomics dropping LBP3D (as it does without trimesh or with SciPy >= 1.17)
    while the up-front dependency check passes: the per-case check must catch it."""
    import scipy.special

    monkeypatch.setattr(rad, "check_dependencies", lambda settings: None)
    monkeypatch.delattr(scipy.special, "sph_harm")  # what SciPy 1.17 did
    with pytest.raises(DlrcError, match=r"no case produced features for LBP3D \(lbp-3D-\*\)"):
        rad.extract_radiomics(study, QUICK, tmp_path, n_jobs=1, progress=False)
    # nothing incomplete was cached
    assert FeatureStore(tmp_path / "features", "radiomics").keys() == []


def test_check_dependencies_passes_here():
    rad.check_dependencies(rad.load_settings(PAPER))


# ------------------------------------------------------------------ parallel back-ends
def test_process_pool_matches_serial(extracted, study, tmp_path):
    _, res = extracted
    par = rad.extract_radiomics(study, QUICK, tmp_path, sequences=("CET1", "DWI"), n_jobs=2, progress=True)
    assert par.n_workers == 2
    assert (par.cases["status"] == "computed").all()
    pd.testing.assert_frame_equal(par.features, res.features[[c for c in res.features if not c.startswith("T2FS")]])


def test_dask_scheduler_matches_local(extracted, study, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    _, res = extracted
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        out = rad.extract_radiomics(study.iloc[:1], QUICK, tmp_path, sequences=("CET1",), progress=False,
                                    dask_scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(out.features, res.features.iloc[:1, : out.features.shape[1]])


def test_unreachable_dask_scheduler_is_a_clear_error(study, tmp_path):
    with pytest.raises(DlrcError, match="cannot connect"):
        rad.extract_radiomics(study.iloc[:1], QUICK, tmp_path, progress=False,
                              dask_scheduler="tcp://127.0.0.1:9", dask_timeout_s=1)


# ------------------------------------------------------------------ resume after a kill
_RUNNER = textwrap.dedent(
    """
    import sys, pandas as pd
    from dlrc_lib.features.radiomics import extract_radiomics
    study = pd.read_pickle(sys.argv[1])
    extract_radiomics(study, sys.argv[2], sys.argv[3], n_jobs=2, progress=False)
    print("finished", flush=True)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGKILL, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_resume_after_killing_a_run(study, extracted, tmp_path, sig):
    """Start an extraction in a subprocess, kill it (kill -9 of the whole process group, or
    Ctrl-C) once some cases are stored, then re-run: finished cases are not recomputed,
    the store is intact, and the result equals an uninterrupted run."""
    study.to_pickle(tmp_path / "study.pkl")
    script = tmp_path / "run.py"
    script.write_text(_RUNNER)
    cache = tmp_path / "cache"
    shards = cache / "features" / "radiomics" / "shards"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "study.pkl"), str(QUICK), str(cache)],
                            env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if shards.exists() and len(list(shards.glob("*/*.parquet"))) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, sig)  # kill -9 of the group, or Ctrl-C (reaches the whole foreground group)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    store = FeatureStore(cache / "features", "radiomics")
    stored = store.keys()
    assert 2 <= len(stored) < 6
    assert not store.get(stored).isna().all(axis=1).any()  # every stored case is complete
    resumed = rad.extract_radiomics(study, QUICK, cache, n_jobs=1, progress=False)
    status = resumed.cases.set_index("key")["status"]
    assert (status.loc[stored] == "cached").all()
    assert (status.drop(stored) == "computed").all()
    pd.testing.assert_frame_equal(resumed.features, extracted[1].features)


def test_loss_statement_counts_patients_and_reasons(tmp_path, extracted):
    _, res = extracted
    assert res.loss_statement() is None
    st = make_study(tmp_path / "s", n=2)
    st.at[0, "image_CET1"] = str(tmp_path / "gone.nii.gz")
    st.at[0, "image_DWI"] = str(tmp_path / "gone2.nii.gz")
    out = rad.extract_radiomics(st, QUICK, tmp_path / "c", sequences=("CET1", "DWI"), n_jobs=1, progress=False)
    assert out.loss_statement() == ("1 of 2 patients have no radiomics features (reader1 masks): "
                                    "image file not found (1)")
