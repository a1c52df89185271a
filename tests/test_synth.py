"""The synthetic twin: Table 1 and SRA counts, scaling, determinism, images and masks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dlrc_lib.core.config import Params
from dlrc_lib.study.schema import SEQUENCES
from dlrc_lib.study.manifest import load_study
from dlrc_lib.twin import build_clinical_table, generate_study
from dlrc_lib.study.schema import parity_group
from dlrc_lib.twin.clinical import apportion
from dlrc_lib.twin.nodes import sra_positive

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = yaml.safe_load((ROOT / "params" / "published_values.yaml").read_text())


def _params(**study) -> Params:
    return Params.model_validate({"published_values": str(ROOT / "params" / "published_values.yaml"),
                                  "study": study})


@pytest.fixture(scope="module")
def full_study(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("twin_full")
    manifest = generate_study(_params(scale=1.0), out, clinical_only=True, progress=False)
    return load_study(manifest)


def _level(df: pd.DataFrame, var: str) -> pd.Series:
    if var == "parity":
        return parity_group(df["parity"])
    if var == "c_lnm":
        return df["c_lnm"].map({0: "No", 1: "Yes"})
    return df[var]


def test_table1_categorical_counts_exact(full_study):
    for var, spec in PUBLISHED["table1"]["categorical"].items():
        lev = _level(full_study, var)
        for level, by_cohort in spec["levels"].items():
            for cohort, (neg, pos) in by_cohort.items():
                sel = (full_study["cohort"] == cohort) & (lev == level)
                got = [int((sel & (full_study["lnm"] == 0)).sum()), int((sel & (full_study["lnm"] == 1)).sum())]
                assert got == [neg, pos], (var, level, cohort, got)


def test_cohorts_and_centres_as_published(full_study):
    for cohort, (neg, pos) in PUBLISHED["table1"]["n"].items():
        sub = full_study[full_study["cohort"] == cohort]
        assert [int((sub["lnm"] == 0).sum()), int((sub["lnm"] == 1).sum())] == [neg, pos]
    assert full_study["centre"].value_counts().to_dict() == PUBLISHED["study"]["centres"]
    assert set(full_study.loc[full_study["cohort"] != "external", "centre"]) == {"A"}
    assert full_study["scanner"].nunique() == PUBLISHED["study"]["scanners"]
    assert full_study["patient_id"].is_unique


def test_ages_within_a_year_of_published_quartiles(full_study):
    for var in ("age", "age_at_menopause"):
        for cohort, spec in PUBLISHED["table1"][var].items():
            for key, lnm in (("neg", 0), ("pos", 1)):
                med, q1, q3 = spec[key]
                x = full_study.loc[(full_study["cohort"] == cohort) & (full_study["lnm"] == lnm), var].dropna()
                got = np.quantile(x, [0.5, 0.25, 0.75])
                assert np.all(np.abs(got - [med, q1, q3]) <= 1.0), (var, cohort, key, got)


def test_menopause_consistency(full_study):
    post = full_study["menopause"] == "Yes"
    assert full_study.loc[post, "age_at_menopause"].notna().all()
    assert full_study.loc[~post, "age_at_menopause"].isna().all()
    assert (full_study.loc[post, "age_at_menopause"] <= full_study.loc[post, "age"]).all()
    assert full_study.loc[post, "age"].median() > full_study.loc[~post, "age"].median() + 5


def test_sra_confusion_counts_exact(full_study):
    df = full_study
    sra = sra_positive(df["lnsd_mm"], df["lnld_mm"], df["node_necrosis"])
    assert (df["c_lnm"] == (df["lnsd_mm"] >= 10)).all()
    assert (df["lnld_mm"] >= df["lnsd_mm"]).all()
    for cohort, spec in PUBLISHED["implied_confusion"]["SRA"].items():
        for sub, (tp, fn, tn, fp) in spec.items():
            sel = (df["cohort"] == cohort).to_numpy()
            if sub == "lnsd_below_10mm":
                sel &= (df["lnsd_mm"] < 10).to_numpy()
            elif sub == "lnsd_10mm_or_more":
                sel &= (df["lnsd_mm"] >= 10).to_numpy()
            y = df["lnm"].to_numpy()[sel] == 1
            s = sra[sel]
            got = [int((s & y).sum()), int((~s & y).sum()), int((~s & ~y).sum()), int((s & ~y).sum())]
            assert got == [tp, fn, tn, fp], (cohort, sub, got)


def test_tumour_diameter_follows_figo(full_study):
    rng = {"IB1": (0, 20), "IB2": (20, 40), "IB3": (40, 99), "IIA1": (0, 40), "IIA2": (40, 99)}
    for stage, (lo, hi) in rng.items():
        d = full_study.loc[full_study["figo_stage"] == stage, "tumour_diameter_mm"]
        assert ((d > lo) & (d <= hi)).all(), stage


def test_apportion_sums_and_is_proportional():
    assert apportion(10, [1, 1, 1]).tolist() == [4, 3, 3]
    assert apportion(7, [0, 5, 2]).sum() == 7
    assert apportion(0, [3, 4]).tolist() == [0, 0]


def test_quick_scale_keeps_classes_and_batches():
    df = build_clinical_table(_params(scale=0.05, volume_shape=(64, 64, 12), icc_cases=8))
    assert 45 <= len(df) <= 65
    for cohort in ("train", "internal", "external"):
        assert (df.loc[df["cohort"] == cohort, "lnm"].value_counts() >= 2).all()
        assert df.loc[df["cohort"] == cohort, "lnm"].nunique() == 2
    assert (df["scanner"].value_counts() >= 2).all()
    assert (df["centre"].value_counts() >= 2).all()
    assert set(df["centre"]) == {"A", "B", "C", "D", "E"}
    # proportions roughly kept: LNM rate close to the paper's 31 %
    assert abs(df["lnm"].mean() - 339 / 1095) < 0.05


def test_clinical_table_deterministic():
    a = build_clinical_table(_params(scale=0.2))
    b = build_clinical_table(_params(scale=0.2))
    pd.testing.assert_frame_equal(a, b)
    c = build_clinical_table(Params.model_validate({"seed": 7, "published_values": str(ROOT / "params" / "published_values.yaml"),
                                                     "study": {"scale": 0.2}}))
    assert not a[["age", "lnsd_mm"]].equals(c[["age", "lnsd_mm"]])


def _tiny(**study) -> Params:
    base = {"scale": 0.02, "volume_shape": (32, 32, 8), "icc_cases": 3, "n_jobs": 1}
    base.update(study)
    return _params(**base)


def _arr(path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture(scope="module")
def tiny_twin(tmp_path_factory) -> Path:
    return generate_study(_tiny(), tmp_path_factory.mktemp("tiny"), progress=False)


def test_determinism_manifest_and_voxels(tiny_twin, tmp_path):
    other = generate_study(_tiny(n_jobs=2), tmp_path / "again", progress=False)
    assert tiny_twin.read_bytes() == other.read_bytes()
    a, b = load_study(tiny_twin), load_study(other)
    for i in (0, len(a) - 1):
        for col in [f"image_{s}" for s in SEQUENCES] + [f"mask_{s}" for s in SEQUENCES]:
            np.testing.assert_array_equal(_arr(a.at[i, col]), _arr(b.at[i, col]))


def test_single_patient_regenerates_identically(tiny_twin):
    from dlrc_lib.twin.anatomy import render_patient
    from dlrc_lib.twin.scanners import SCANNER_BY_NAME

    p = _tiny()
    df = load_study(tiny_twin)
    i = 5
    row = df.iloc[i].to_dict()
    vols = render_patient(row, SCANNER_BY_NAME[row["scanner"]], (32, 32, 8), p.study.signal,
                          p.study.scanner_effect, p.seed, i, False)
    for seq in SEQUENCES:
        np.testing.assert_array_equal(vols[seq]["image"], _arr(row[f"image_{seq}"]))
        np.testing.assert_array_equal(vols[seq]["masks"]["r1"], _arr(row[f"mask_{seq}"]))


def test_geometry_and_masks(tiny_twin):
    import SimpleITK as sitk

    df = load_study(tiny_twin)
    meta = __import__("json").loads((tiny_twin.parent / "study.json").read_text())
    assert meta["generator_version"] and meta["seed"] == 20240601
    assert "simulated" in (tiny_twin.parent / "README.md").read_text()
    for _, row in df.iterrows():
        ce = sitk.ReadImage(row["image_CET1"])
        dwi = sitk.ReadImage(row["image_DWI"])
        assert ce.GetSize() == (32, 32, 8)
        assert dwi.GetSpacing()[0] > ce.GetSpacing()[0]  # DWI grid is coarser
        assert ce.GetPixelID() == sitk.sitkInt16
        for seq in SEQUENCES:
            m = sitk.ReadImage(row[f"mask_{seq}"])
            img = sitk.ReadImage(row[f"image_{seq}"])
            assert m.GetSize() == img.GetSize() and m.GetOrigin() == img.GetOrigin()
            assert m.GetDirection() == img.GetDirection()
            assert _arr(row[f"mask_{seq}"]).sum() > 0
    icc = df.dropna(subset=["mask_r2_CET1"])
    assert len(icc) == 3
    dices = []
    for _, row in icc.iterrows():
        for seq in SEQUENCES:
            a, b, c = (_arr(row[k]).astype(bool) for k in (f"mask_{seq}", f"mask_r2_{seq}", f"mask_rep_{seq}"))
            dices += [2 * (a & o).sum() / (a.sum() + o.sum()) for o in (b, c)]
    assert min(dices) > 0.4 and min(dices) < 1.0  # readers disagree at the boundary


def test_tumour_greatest_diameter_matches_target():
    from dlrc_lib.twin.anatomy import patient_model

    p = _params()
    df = build_clinical_table(_params(scale=0.05))
    for i in range(0, 50, 7):
        row = df.iloc[i].to_dict()
        pm = patient_model(row, p.study.signal, p.seed, i)
        assert pm.tumour.greatest_diameter(seed=99) == pytest.approx(row["tumour_diameter_mm"], rel=0.03)


def test_lnm_shifts_latent_traits():
    from dlrc_lib.twin.anatomy import latent_properties

    p = _params()
    rng = np.random.default_rng(0)
    neg = np.array([list(latent_properties(0, p.study.signal, rng).values()) for _ in range(2000)])
    pos = np.array([list(latent_properties(1, p.study.signal, rng).values()) for _ in range(2000)])
    s = p.study.signal
    want = [s.heterogeneity, s.enhancement, s.diffusion, s.irregularity]
    np.testing.assert_allclose(pos.mean(0) - neg.mean(0), want, atol=0.1)


def test_interrupted_generation_is_not_complete_and_resumes(tmp_path, monkeypatch):
    from dlrc_lib.twin import writer

    out = tmp_path / "twin"
    real = writer._generate_one
    calls = {"n": 0}

    def flaky(job):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(writer, "_generate_one", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate_study(_tiny(), out, progress=False)
    assert not (out / "study.json").exists() and not (out / "manifest.csv").exists()
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("patients/*/.done")}
    assert len(done_before) == 5
    monkeypatch.setattr(writer, "_generate_one", real)
    manifest = generate_study(_tiny(), out, progress=False)
    assert (out / "study.json").is_file()
    done_after = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("patients/*/.done")}
    assert all(done_after[k] == v for k, v in done_before.items())  # finished patients kept
    assert len(done_after) == len(load_study(manifest))


def test_smallest_tumours_are_analysable_with_the_paper_settings(full_study):
    """The paper analysed every patient: the twin's smallest tumours (IB1, about 8 mm) pass
    PyRadiomics' mask checks with params/radiomics.yaml on every sequence, including each
    scanner's coarser DWI grid (resampled to 2 x 2 x 4 mm as the extraction does)."""
    import logging

    import SimpleITK as sitk
    from radiomics import imageoperations

    from dlrc_lib.twin.anatomy import render_patient
    from dlrc_lib.twin.scanners import SCANNERS

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    settings = yaml.safe_load((ROOT / "params" / "radiomics.yaml").read_text())["setting"]
    check = {k: settings[k] for k in ("minimumROIDimensions", "minimumROISize") if k in settings}
    p = _params()
    df = build_clinical_table(p)
    smallest = df.nsmallest(4, "tumour_diameter_mm")
    assert smallest["tumour_diameter_mm"].max() < 9.5
    coarsest = min(SCANNERS, key=lambda s: s.dwi_factor[0] * s.dwi_factor[1] * 1e6 / np.prod(s.fov_mm))
    for idx, row in smallest.iterrows():
        # each on its own scanner and on the scanner with the coarsest DWI voxels
        for scanner in {next(s for s in SCANNERS if s.name == row["scanner"]), coarsest}:
            vols = render_patient(row, scanner, tuple(p.study.volume_shape), p.study.signal, 1.0, p.seed,
                                  idx, False)
            for seq, v in vols.items():
                g = v["grid"]
                images = []
                for a in (v["image"].astype(np.float32), v["masks"]["r1"]):
                    im = sitk.GetImageFromArray(a)
                    im.SetSpacing(g.spacing), im.SetOrigin(g.origin), im.SetDirection(g.direction)
                    images.append(im)
                im, mk = imageoperations.resampleImage(*images, resampledPixelSpacing=settings["resampledPixelSpacing"],
                                                       interpolator=sitk.sitkBSpline, label=1, padDistance=5)
                bbox, _ = imageoperations.checkMask(im, mk, label=1, **check)
                assert bbox is not None, (row["patient_id"], row["tumour_diameter_mm"], scanner.name, seq)


def test_second_reader_disagrees_realistically_and_leaves_reader1(full_study):
    """Reader 2 (Method S1): a realistic, not perfect, agreement with reader 1, whose reading
    (the final one, reproducing the paper's SRA counts) stays as it was."""
    from dlrc_lib import stats
    from dlrc_lib.twin.nodes import add_second_reader

    df = full_study
    assert df[["lnsd_mm_r2", "lnld_mm_r2", "node_necrosis_r2"]].notna().all().all()
    assert (df["lnsd_mm_r2"] <= df["lnld_mm_r2"]).all() and (df["lnsd_mm_r2"] > 0).all()
    assert (df["lnsd_mm_r2"] != df["lnsd_mm"]).mean() > 0.5
    icc = stats.icc(df[["lnsd_mm", "lnsd_mm_r2"]].to_numpy()).icc
    assert 0.90 < icc < 0.99
    s1 = sra_positive(df["lnsd_mm"], df["lnld_mm"], df["node_necrosis"]).astype(int)
    s2 = sra_positive(df["lnsd_mm_r2"], df["lnld_mm_r2"], df["node_necrosis_r2"]).astype(int)
    k_sra = stats.cohen_kappa(s1, s2).kappa
    k_c = stats.cohen_kappa(df["c_lnm"], (df["lnsd_mm_r2"] >= 10).astype(int)).kappa
    assert 0.6 < k_sra < 0.9 and 0.65 < k_c < 0.95
    # reader 1's columns untouched by adding reader 2 (own random stream)
    base = df.drop(columns=["lnsd_mm_r2", "lnld_mm_r2", "node_necrosis_r2"])
    again = add_second_reader(base, seed=1)
    pd.testing.assert_frame_equal(again[base.columns], base)
    assert not np.array_equal(again["lnsd_mm_r2"], df["lnsd_mm_r2"])  # the seed matters


def test_study_json_says_what_the_twin_was_built_from_and_calibrated_towards(tmp_path):
    """study.json lists the published numbers the twin is built from and those its knobs were
    tuned towards; every pattern names a real published value or claim (test_claims checks
    that the verdict reads them: ``calibrated``, never ``holds``)."""
    import fnmatch
    import json

    from dlrc_lib.reporting.claims import load_claims
    from dlrc_lib.reporting.report import flatten_published
    from dlrc_lib.twin.writer import BUILT_FROM, CALIBRATED_TOWARDS

    generate_study(_params(scale=0.05), tmp_path, clinical_only=True, progress=False)
    doc = json.loads((tmp_path / "study.json").read_text(encoding="utf-8"))
    assert doc["built_from"] == BUILT_FROM and doc["calibrated_towards"] == CALIBRATED_TOWARDS
    published = list(flatten_published(PUBLISHED))
    _, claims = load_claims(ROOT / "params" / "claims.yaml")
    ids = [c["id"] for c in claims]
    for pattern in [*BUILT_FROM, *CALIBRATED_TOWARDS]:
        assert any(fnmatch.fnmatchcase(k, pattern) for k in published + ids), f"{pattern} matches nothing"
    # nothing is both an input and a calibration target
    for pattern in CALIBRATED_TOWARDS:
        assert not any(fnmatch.fnmatchcase(k, b) for b in BUILT_FROM for k in published
                       if fnmatch.fnmatchcase(k, pattern)), pattern
    # the calibration targets cover the radiomics and DLRC AUCs of every cohort, and HL
    for cohort in ("train", "internal", "external"):
        for key in (f"table2.{cohort}.radiomics.auc", f"table2.{cohort}.DLRC.auc",
                    f"calibration_hosmer_lemeshow_p.{cohort}"):
            assert any(fnmatch.fnmatchcase(key, p) for p in CALIBRATED_TOWARDS), key


def test_size_within_stage_knob():
    """0: a tumour's diameter within its FIGO substage's range does not depend on LNM; the
    default makes LNM(+) tumours larger within the range (Table 1's counts are the same)."""
    from dlrc_lib.twin.writer import FIGO_DIAMETER

    def rel_position(s: float) -> pd.DataFrame:
        p = _params(scale=1.0, signal={"size_within_stage": s})
        df = build_clinical_table(p)
        lo = df["figo_stage"].map(lambda k: FIGO_DIAMETER[k][0])
        hi = df["figo_stage"].map(lambda k: FIGO_DIAMETER[k][1])
        df["u"] = (df["tumour_diameter_mm"] - lo) / (hi - lo)
        return df

    off, on = rel_position(0.0), rel_position(1.0)
    gap_off = off.loc[off.lnm == 1, "u"].mean() - off.loc[off.lnm == 0, "u"].mean()
    gap_on = on.loc[on.lnm == 1, "u"].mean() - on.loc[on.lnm == 0, "u"].mean()
    assert abs(gap_off) < 0.04 and gap_on > 0.07
    pd.testing.assert_series_equal(off["figo_stage"], on["figo_stage"])  # the clinical table is untouched


def test_lnm_independent_variation_only_changes_the_tumour():
    """coarse_texture and patient_variation act inside the tumour only (after the scanner's
    blur, within three voxels of reader 1's outline); everything else in the image is the same."""
    from scipy import ndimage

    from dlrc_lib.twin.anatomy import render_patient
    from dlrc_lib.twin.scanners import SCANNERS

    df = build_clinical_table(_params(scale=0.05))
    row = df.iloc[3].to_dict()
    plain = _params().study.signal.model_copy(update={"coarse_texture": 0.0, "patient_variation": 0.0})
    varied = plain.model_copy(update={"coarse_texture": 0.2, "patient_variation": 0.2})
    a = render_patient(row, SCANNERS[0], (48, 48, 10), plain, 1.0, 7, 3, False)
    b = render_patient(row, SCANNERS[0], (48, 48, 10), varied, 1.0, 7, 3, False)
    for seq in SEQUENCES:
        diff = a[seq]["image"] != b[seq]["image"]
        near = ndimage.distance_transform_edt(~a[seq]["masks"]["r1"].astype(bool)) <= 3
        assert diff.any() and not (diff & ~near).any(), seq


def test_trait_visibility_and_texture_amplitude_act_on_the_tumour_as_named():
    """trait_visibility moves the image further along the patient's latent traits (brighter
    CE-T1WI for a positive enhancement trait, brighter DWI for a positive diffusion-restriction
    trait); texture_amplitude raises the texture inside the tumour; neither touches anything
    but the tumour."""
    from scipy import ndimage

    from dlrc_lib.twin.anatomy import patient_model, render_patient
    from dlrc_lib.twin.scanners import SCANNERS

    df = build_clinical_table(_params(scale=0.05))
    signal = _params().study.signal
    # a patient whose enhancement and diffusion traits are clearly positive
    index = next(i for i in range(len(df))
                 if min(patient_model(df.iloc[i].to_dict(), signal, 7, i).latent[k]
                        for k in ("enhancement", "diffusion")) > 0.7)
    row = df.iloc[index].to_dict()

    def render(**update):
        return render_patient(row, SCANNERS[0], (96, 96, 16), signal.model_copy(update=update), 0.0, 7, index, False)

    base = render(trait_visibility=1.0, texture_amplitude=0.09)
    visible = render(trait_visibility=2.5, texture_amplitude=0.09)
    textured = render(trait_visibility=1.0, texture_amplitude=0.3)

    def tumour(img, seq):
        inner = ndimage.binary_erosion(img[seq]["masks"]["r1"].astype(bool))
        return img[seq]["image"][inner].astype(float)

    assert tumour(visible, "CET1").mean() > 1.05 * tumour(base, "CET1").mean()
    assert tumour(visible, "DWI").mean() > 1.05 * tumour(base, "DWI").mean()
    assert tumour(textured, "T2FS").std() > 1.5 * tumour(base, "T2FS").std()
    for other in (visible, textured):
        for seq in SEQUENCES:
            diff = other[seq]["image"] != base[seq]["image"]
            near = ndimage.distance_transform_edt(~base[seq]["masks"]["r1"].astype(bool)) <= 4
            assert diff.any() and not (diff & ~near).any(), seq


def test_texture_octaves_gives_every_tumour_the_same_broadband_spectrum_and_changes_nothing_else():
    """texture_octaves 0 keeps generator 1.4's narrow, per-tumour random texture spectrum;
    > 0 spreads the LNM-linked texture over that many octaves around texture_scale_mm, with the
    same spectrum (one wave per stratum of log-frequency, equal amplitudes) in every tumour, and
    draws nothing extra: the patients' other properties are unchanged."""
    from dlrc_lib.twin.anatomy import _waves, patient_model

    df = build_clinical_table(_params(scale=0.05))
    signal = _params().study.signal
    narrow, broad = signal.model_copy(update={"texture_octaves": 0.0, "texture_scale_mm": 3.0}), signal.model_copy(
        update={"texture_octaves": 3.0, "texture_scale_mm": 4.0})
    pts = np.stack(np.meshgrid(*(np.arange(0.0, 40.0, 0.5),) * 2, [0.0, 2.0], indexing="ij"), -1).astype(np.float32)
    power = {"narrow": [], "broad": []}
    for i in range(12):
        row = df.iloc[i].to_dict()
        a, b = patient_model(row, narrow, 7, i), patient_model(row, broad, 7, i)
        assert a.latent == b.latent and np.array_equal(a.nuisance, b.nuisance)
        assert np.array_equal(a.texture[1], b.texture[1]) and np.array_equal(a.coarse_texture[0], b.coarse_texture[0])
        # coarse_octaves does the same to the LNM-independent coarse texture
        c = patient_model(row, narrow.model_copy(update={"coarse_octaves": 1.5}), 7, i)
        assert np.array_equal(c.texture[0], a.texture[0]) and np.allclose(np.abs(c.coarse_texture[2]), np.sqrt(2.0 / 16))
        assert np.array_equal(np.sign(c.coarse_texture[2]), np.sign(a.coarse_texture[2]))
        # the same directions; broadband wavelengths: 4 mm x 2^(+-1.5), one per 1/32 of the range
        ka, kb = a.texture[0], b.texture[0]
        assert np.allclose(ka / np.linalg.norm(ka, axis=1, keepdims=True), kb / np.linalg.norm(kb, axis=1, keepdims=True))
        octave = np.sort(np.log2(4.0 * np.linalg.norm(kb, axis=1)))
        assert octave.min() >= -1.5 and octave.max() <= 1.5
        assert np.all(np.floor((octave + 1.5) / 3.0 * 32) == np.arange(32))
        assert np.allclose(np.abs(b.texture[2]), np.sqrt(2.0 / 32))
        wl = 1.0 / np.linalg.norm(ka, axis=1)
        assert wl.min() >= 3.0 / 1.6 and wl.max() <= 3.0 / 0.6
        power["narrow"].append(_waves(pts, a.texture).var())
        power["broad"].append(_waves(pts, b.texture).var())
    # the narrow spectrum's random amplitudes make the texture's strength differ between
    # tumours with the same trait; the broadband one does not
    cv = {k: np.std(v) / np.mean(v) for k, v in power.items()}
    assert cv["broad"] < 0.5 * cv["narrow"], cv
