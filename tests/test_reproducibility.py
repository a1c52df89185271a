"""Tests of the ICC filter (inter/intra-observer reproducibility) and `dlrc extract`."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _tinystudy import make_study
from dlrc_lib.features import reproducibility as R
from dlrc_lib.core.config import Params
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.stats import icc

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "params" / "radiomics_quick.yaml"


def _frames(n=12, seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id")
    truth = rng.normal(size=n)
    r1 = pd.DataFrame({
        "CET1_original_firstorder_Mean": truth,
        "CET1_wavelet-HLH_glcm_Idm": rng.normal(size=n),
        "DWI_original_shape_Sphericity": np.full(n, 0.7),
        "DWI_log-sigma-2-0-mm-3D_gldm_DependenceEntropy": truth * 2,
    }, index=idx)
    r2 = r1.copy()
    r2["CET1_wavelet-HLH_glcm_Idm"] = rng.normal(size=n)  # unrelated -> low inter ICC
    r2["DWI_log-sigma-2-0-mm-3D_gldm_DependenceEntropy"] += 0.05 * rng.normal(size=n)
    rep = r1.copy()
    rep["DWI_log-sigma-2-0-mm-3D_gldm_DependenceEntropy"] += 3.0 * rng.normal(size=n)  # poor intra
    return r1, r2, rep


def test_icc_table_matches_icc_and_filters_both():
    r1, r2, rep = _frames()
    t = R.icc_table(r1, r2, rep.iloc[::-1], threshold=0.75)  # row order must not matter
    assert t.index.name == "feature" and list(t.columns) == ["icc_inter", "icc_intra", "keep"]
    f = "CET1_wavelet-HLH_glcm_Idm"
    assert t.loc[f, "icc_inter"] == pytest.approx(icc(np.c_[r1[f], r2[f]], "ICC(2,1)").icc, abs=1e-10)
    assert t.loc["CET1_original_firstorder_Mean", "icc_inter"] == pytest.approx(1.0)
    assert t.loc["CET1_original_firstorder_Mean", "keep"]
    assert not t.loc[f, "keep"]
    g = "DWI_log-sigma-2-0-mm-3D_gldm_DependenceEntropy"
    assert t.loc[g, "icc_inter"] > 0.75 and t.loc[g, "icc_intra"] < 0.75 and not t.loc[g, "keep"]
    assert np.isnan(t.loc["DWI_original_shape_Sphericity", "icc_inter"])  # constant: undefined
    assert not t.loc["DWI_original_shape_Sphericity", "keep"]


def test_icc_table_form_and_threshold_are_parameters():
    r1, r2, rep = _frames()
    t3 = R.icc_table(r1, r2, rep, form="ICC(3,1)", threshold=0.0)
    f = "CET1_wavelet-HLH_glcm_Idm"
    assert t3.loc[f, "icc_inter"] == pytest.approx(icc(np.c_[r1[f], r2[f]], "ICC(3,1)").icc, abs=1e-10)
    strict = R.icc_table(r1, r2, rep, threshold=0.9999999)
    assert strict["keep"].sum() <= R.icc_table(r1, r2, rep)["keep"].sum()


def test_icc_table_needs_enough_cases():
    r1, r2, rep = _frames(n=6)
    with pytest.raises(DlrcError, match="only 3 patient"):
        R.icc_table(r1, r2.iloc[:3], rep, min_cases=5)


def test_counts_excluded_and_long_format():
    r1, r2, rep = _frames()
    t = R.icc_table(r1, r2, rep)
    c = R.kept_counts(t)
    total = c[(c["sequence"] == "all") & (c["image_type"] == "all")].iloc[0]
    assert total["features"] == 4 and total["kept"] == 1
    cet1 = c[(c["sequence"] == "CET1") & (c["image_type"] == "Wavelet")].iloc[0]
    assert cet1["kept"] == 0 and cet1["kept_pct"] == 0.0
    ex = R.excluded_features(t, 0.75)
    assert list(ex["feature"])[0] == "DWI_original_shape_Sphericity"  # undefined first
    assert "constant" in ex["reason"].iloc[0]
    assert set(ex["feature"]) == set(t.index[~t["keep"]])
    long = R.icc_long(t)
    assert set(long["comparison"]) == {"inter-observer", "intra-observer"}
    assert len(long) == 6  # NaN ICCs left out
    from dlrc_lib.core.figures import render

    for gg in (R.plot_icc(t, 0.75), R.plot_icc_histogram(t, 0.75)):
        fig = render(gg)
        assert fig.axes
        __import__("matplotlib.pyplot").pyplot.close(fig)


def test_reproducibility_end_to_end(tmp_path):
    st = make_study(tmp_path / "s", n=4, icc=3)
    res = R.reproducibility(st, QUICK, tmp_path / "cache", sequences=("CET1",), min_cases=3, n_jobs=1,
                            progress=False)
    assert res.subset == [f"P{i:03d}" for i in range(3)] and res.cases == res.subset
    assert len(res.icc) == res.extraction.features.shape[1]
    assert res.icc.index.str.startswith("CET1_").all()
    assert 0 < res.icc["keep"].sum() < len(res.icc)
    assert res.icc["icc_intra"].median() > 0.5
    # the reader-1 features of every patient came from the same run (and are cached now)
    assert list(res.extraction.features.index) == list(st["patient_id"])
    assert res.failures.empty


def test_a_study_without_reader_2_masks_has_an_empty_icc_subset():
    assert R.icc_subset(pd.DataFrame({"patient_id": ["P1"]}), ["CET1"]).empty


def test_without_a_reproducibility_subset_every_feature_is_kept_and_the_reason_said(tmp_path):
    """No reader-2/repeat masks (or fewer than icc.min_cases): the run goes on without the ICC
    filter, keeping every feature, and says why (notebook 02 warns, the claims read not testable)."""
    st = make_study(tmp_path / "s", n=3, icc=0)
    st = st[[c for c in st.columns if not c.startswith(("mask_r2_", "mask_rep_"))]]
    res = R.reproducibility(st, QUICK, tmp_path / "cache", sequences=("CET1",), min_cases=3, n_jobs=1,
                            progress=False)
    assert not res.tested and res.cases == [] and res.subset == []
    assert "no patient has reader-2 and repeat masks" in res.skipped and "icc.min_cases=3" in res.skipped
    assert res.icc["keep"].all() and list(res.icc.index) == list(res.extraction.features.columns)
    st2 = make_study(tmp_path / "s2", n=3, icc=2)
    res2 = R.reproducibility(st2, QUICK, tmp_path / "cache", sequences=("CET1",), min_cases=3, n_jobs=1,
                             progress=False)
    assert not res2.tested and "only 2 re-segmented patient(s)" in res2.skipped and res2.icc["keep"].all()


def test_extract_cli_radiomics_part_reports_failures(tmp_path):
    from dlrc_lib.run.extract import extract_radiomics_cli

    st = make_study(tmp_path / "s", n=2)
    st.at[1, "mask_DWI"] = str(tmp_path / "missing.nii.gz")
    params = Params.model_validate({"cache_dir": str(tmp_path / "cache"),
                                    "radiomics": {"settings": str(QUICK), "n_jobs": 1, "progress": False,
                                                  "sequences": ["CET1", "DWI"]}})
    out = io.StringIO()
    failures = extract_radiomics_cli(params, st, out=out)
    text = out.getvalue()
    assert len(failures) == 1
    assert "1 case(s) could not be extracted; 1 patient(s) will have no radiomics features" in text
    assert "patient P001, DWI (reader1)" in text and "mask file not found" in text
