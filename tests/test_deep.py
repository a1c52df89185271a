"""Deep features: preprocessing geometry, I3D inflation, weights, caching, benchmark."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch

from dlrc_lib.run.artifacts import Artifacts
from dlrc_lib.core.config import DeepParams
from dlrc_lib.features.deep import extract as dx
from dlrc_lib.features.deep import networks as dn
from dlrc_lib.features.deep import preprocess as dp
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.study import keys as K

REPO = Path(__file__).resolve().parents[1]
SEQS = ("CET1", "DWI", "T2FS")


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No test may download: offline flag, an empty torch cache, and a trap on the downloader."""
    monkeypatch.setenv("DLRC_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def trap(*a, **k):
        raise AssertionError("a test tried to download weights")

    monkeypatch.setattr(dn, "_download_imagenet", trap)
    torch.set_num_threads(1)


def _write(arr_zyx: np.ndarray, spacing, path: Path) -> str:
    img = sitk.GetImageFromArray(arr_zyx)
    img.SetSpacing(spacing)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))
    return str(path)


def _ellipsoid(shape, centre, radii_vox):
    z, y, x = np.indices(shape)
    r = sum(((g - c) / r) ** 2 for g, c, r in zip((z, y, x), centre, radii_vox))
    return (r <= 1).astype(np.uint8)


def make_study(root: Path, n: int = 4, icc: int = 2, seed: int = 0) -> pd.DataFrame:
    """Tiny synthetic study: anisotropic volumes (x 0.8 mm, y 1.0 mm, z 4 mm) with a tumour."""
    rng = np.random.default_rng(seed)
    shape, spacing = (7, 40, 48), (0.8, 1.0, 4.0)
    rows = []
    for i in range(n):
        pid = f"P{i:03d}"
        row = {"patient_id": pid, "cohort": ["train", "internal", "external"][i % 3], "lnm": i % 2,
               "centre": "A", "scanner": "S1"}
        centre = (3 + (i % 2), 20 + rng.integers(-2, 3), 24 + rng.integers(-2, 3))
        mask = _ellipsoid(shape, centre, (2.2, 6 + i % 3, 7.5))
        for s, seq in enumerate(SEQS):
            img = rng.normal(100 + 10 * s, 10, shape).astype(np.float32) + 60 * mask
            row[f"image_{seq}"] = _write(img, spacing, root / pid / f"{seq}.nii.gz")
            row[f"mask_{seq}"] = _write(mask, spacing, root / pid / f"{seq}_mask.nii.gz")
            if i < icc:
                m2 = _ellipsoid(shape, centre, (2.2, 6 + i % 3, 8.5))
                row[f"mask_r2_{seq}"] = _write(m2, spacing, root / pid / f"{seq}_mask_r2.nii.gz")
                row[f"mask_rep_{seq}"] = _write(mask, spacing, root / pid / f"{seq}_mask_rep.nii.gz")
            else:
                row[f"mask_r2_{seq}"] = np.nan
                row[f"mask_rep_{seq}"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def tiny_params(**kw) -> DeepParams:
    base = dict(models=["ResNet50_2D", "ResNet50_3D"], weights="random", device="cpu", input_size=64,
                shape_3d=(3, 32, 32), batch_size=4, workers=1)
    base.update(kw)
    return DeepParams(**base)


# ------------------------------------------------------------------ preprocessing
def test_largest_area_slice_and_ties():
    m = np.zeros((6, 10, 10), bool)
    m[1, 2:5, 2:5] = True  # 9
    m[3, 1:6, 1:6] = True  # 25
    m[4, 2:7, 2:7] = True  # 25 (tie)
    m[5, 0:2, 0:2] = True  # 4
    # centroid along z: (9*1 + 25*3 + 25*4 + 4*5) / 63 = 3.24 -> slice 3 wins the tie
    assert dp.largest_area_slice(m) == 3
    m[4, 0, 0] = True
    assert dp.largest_area_slice(m) == 4


def test_crop_2d_square_in_mm_on_anisotropic_pixels():
    # x spacing 0.5 mm, y spacing 1.0 mm: a 20 x 10 pixel box is 10 mm x 10 mm
    img = np.zeros((3, 60, 80), np.float32)
    mask = np.zeros_like(img, dtype=bool)
    mask[1, 20:30, 30:50] = True  # rows y 20..29 (10 px = 10 mm), cols x 30..49 (20 px = 10 mm)
    mask[0, 24:26, 38:42] = True
    img[1] = np.arange(80, dtype=np.float32)[None, :] * 0.5  # intensity = x position in mm
    size, margin = 40, 0.25
    crop = dp.crop_2d(img, mask, (0.5, 1.0, 3.0), size, margin, (0.0, 100.0))
    assert crop.slice_index == 1
    assert crop.image.shape == crop.mask.shape == (size, size)
    assert crop.extent_mm == pytest.approx((15.0, 15.0))  # 10 mm * (1 + 2 * 0.25)
    rows = np.flatnonzero(crop.mask.any(axis=1))
    cols = np.flatnonzero(crop.mask.any(axis=0))
    # the tumour is square in the network input and spans 1 / 1.5 of it
    assert rows.size == cols.size
    assert abs(rows.size - size / 1.5) <= 1
    assert abs((rows[0] + rows[-1]) / 2 - (size - 1) / 2) <= 1
    # intensity is linear in physical x across the crop: equal steps in mm per output pixel
    row = crop.image[size // 2]
    assert np.allclose(np.diff(row), np.diff(row)[0], atol=1e-5)
    assert row[-1] > row[0]


def test_crop_3d_geometry_and_intensity():
    img = np.random.default_rng(1).normal(0, 1, (10, 40, 40)).astype(np.float32)
    mask = np.zeros(img.shape, bool)
    mask[3:7, 10:30, 15:25] = True  # 4 slices x 20 px x 10 px; spacing y 0.5 -> 10 mm, x 1 -> 10 mm
    crop = dp.crop_3d(img, mask, (1.0, 0.5, 5.0), (8, 32, 32), 0.0, (1.0, 99.0))
    assert crop.image.shape == (8, 32, 32)
    assert crop.extent_mm == pytest.approx((20.0, 10.0, 10.0))
    assert crop.mask.all()  # margin 0: the crop is the tumour box
    assert crop.image.min() >= 0 and crop.image.max() <= 1
    crop = dp.crop_3d(img, mask, (1.0, 0.5, 5.0), (8, 32, 32), 0.5, (1.0, 99.0))
    depth_frac = crop.mask.any(axis=(1, 2)).mean()
    assert depth_frac == pytest.approx(0.5, abs=1 / 8)
    x = dp.to_network_input(np.full((2, 2), 0.5, np.float32))
    assert x.shape == (3, 2, 2)
    assert np.allclose(x[:, 0, 0], (0.5 - dp.IMAGENET_MEAN) / dp.IMAGENET_STD)


def test_read_case_errors_name_patient_and_file(tmp_path):
    a = _write(np.zeros((4, 8, 8), np.float32), (1, 1, 1), tmp_path / "img.nii.gz")
    # another size on another spacing is no crop of the image's grid (a crop is placed on it)
    b = _write(np.ones((4, 8, 9), np.uint8), (1, 1, 2), tmp_path / "mask.nii.gz")
    with pytest.raises(DlrcError, match=r"patient P9, file .*mask.nii.gz: mask size \(9, 8, 4\) != image size"):
        dp.read_case(a, b, "P9")
    c = _write(np.zeros((4, 8, 8), np.uint8), (1, 1, 1), tmp_path / "empty.nii.gz")
    with pytest.raises(DlrcError, match="patient P9, file .*empty.nii.gz: mask is empty"):
        dp.read_case(a, c, "P9")


# ---------------------------------------------------------------------- inflation
def test_inflated_net_equals_2d_net_on_depth_constant_volume():
    info = dn.resolve_weights("ResNet50", "random", 7)
    net2 = dn.build_resnet2d("ResNet50", info, 7)
    net3 = dn.inflate(net2)
    acts = {}
    net2.layer4.register_forward_hook(lambda m, i, o: acts.__setitem__("2d", o))
    net3.layer4.register_forward_hook(lambda m, i, o: acts.__setitem__("3d", o))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    vol = x.unsqueeze(2).repeat(1, 1, 5, 1, 1)  # constant along depth (5 slices)
    with torch.inference_mode():
        f2, f3 = net2(x), net3(vol)
    a2, a3 = acts["2d"], acts["3d"]
    assert a3.shape == (2, 2048, 5, 2, 2)
    scale = a2.abs().max().item()
    for d in range(5):  # every depth, the central one included
        assert torch.allclose(a3[:, :, d], a2, atol=1e-5 * scale, rtol=1e-4)
    assert f3.shape == f2.shape == (2, 2048)
    assert torch.allclose(f3, f2, atol=1e-5 * f2.abs().max().item(), rtol=1e-4)
    # the production extractor (batch norms folded into the convolutions, channels-last)
    ext3 = dn.build_extractor("ResNet50_3D", info, 7, device="cpu")
    assert torch.allclose(ext3.features(vol), f2, atol=1e-4 * f2.abs().max().item(), rtol=1e-4)
    # the kernels: k x k -> 3 x k x k, each depth slice the 2D kernel / 3
    w3 = net3.conv1[1].weight
    assert w3.shape[2] == 3 and torch.allclose(w3.sum(dim=2), net2.conv1.weight, atol=1e-6)


# ------------------------------------------------------------------------ weights
def test_auto_weights_fall_back_to_random_and_are_recorded(tmp_path):
    study = make_study(tmp_path / "study", n=2, icc=0)
    art = Artifacts(tmp_path / "run", notebook="04_deep_learning")
    log = dx.ExtractionLog()
    feats = dx.extract_study(study, tiny_params(weights="auto", models=["ResNet50_2D"]), tmp_path / "cache",
                             3, warn=art.warn, progress=False, log=log)
    res = json.loads((tmp_path / "run" / "results" / "04_deep_learning.json").read_text())
    assert any("RANDOM WEIGHTS" in w and "ResNet50" in w for w in res["warnings"])
    assert log.weights["ResNet50"].source == "random" and log.warnings
    assert feats["ResNet50_2D"].shape == (2, 3 * 2048)
    # same seed -> same random network -> same features as weights=random
    again = dx.extract_study(study, tiny_params(weights="random", models=["ResNet50_2D"]), tmp_path / "c2",
                             3, progress=False)
    pd.testing.assert_frame_equal(feats["ResNet50_2D"], again["ResNet50_2D"])
    with pytest.raises(DlrcError, match="imagenet weights of ResNet50 not found"):
        dn.resolve_weights("ResNet50", "imagenet", 3)


def test_imagenet_cache_and_weights_file(tmp_path):
    net = dn.build_resnet2d("ResNet50", dn.resolve_weights("ResNet50", "random", 5), 5)
    state = {k: v for k, v in net.state_dict().items()}
    state["fc.weight"] = torch.zeros(1000, 2048)
    state["fc.bias"] = torch.zeros(1000)
    ckpt = dn.imagenet_checkpoint_path("ResNet50")  # under the test's TORCH_HOME
    ckpt.parent.mkdir(parents=True)
    torch.save(state, ckpt)
    info = dn.resolve_weights("ResNet50", "auto", 0)
    assert info.source == "imagenet" and info.warning is None and info.path == str(ckpt)
    f_info = dn.resolve_weights("ResNet50", str(ckpt), 0)
    assert f_info.source == "file" and f_info.identity.split(":")[-1] == info.identity.split(":")[-1]
    loaded = dn.build_extractor("ResNet50_2D", f_info, seed=0, device="cpu")
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(loaded.features(x), net(x), atol=1e-4, rtol=1e-4)
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(DlrcError, match="bad.pth: not a ResNet50 state_dict"):
        dn.build_extractor("ResNet50_2D", str(bad), device="cpu")
    with pytest.raises(DlrcError, match="deep.weights"):
        dn.resolve_weights("ResNet50", str(tmp_path / "nope.pth"), 0)


# ------------------------------------------------------------------------ caching
def test_extraction_is_cached_and_keyed_by_settings(tmp_path, monkeypatch):
    study = make_study(tmp_path / "study", n=3, icc=1)
    params = tiny_params()
    log1 = dx.ExtractionLog()
    first = dx.extract_study(study, params, tmp_path / "cache", 1, progress=False, log=log1)
    assert set(first) == {"ResNet50_2D", "ResNet50_3D"}
    for df in first.values():
        assert df.shape == (3, 3 * 2048) and list(df.index) == ["P000", "P001", "P002"]
        assert df.columns[0] == "CET1_F0" and df.columns[-1] == "T2FS_F2047"
        assert np.isfinite(df.to_numpy()).all()
    assert log1.computed == {"ResNet50_2D": 9, "ResNet50_3D": 9}

    def no_build(*a, **k):
        raise AssertionError("a cached run must not build a network")

    monkeypatch.setattr(dx, "build_extractor", no_build)
    log2 = dx.ExtractionLog()
    second = dx.extract_study(study, params, tmp_path / "cache", 1, progress=False, log=log2)
    assert log2.computed == {"ResNet50_2D": 0, "ResNet50_3D": 0} and log2.cached["ResNet50_2D"] == 9
    for m in first:
        pd.testing.assert_frame_equal(first[m], second[m])
    monkeypatch.undo()
    monkeypatch.setenv("DLRC_OFFLINE", "1")
    # a preprocessing setting is part of the key: new margin -> recomputed
    log3 = dx.ExtractionLog()
    dx.extract_study(study, tiny_params(margin=0.3, models=["ResNet50_2D"]), tmp_path / "cache", 1,
                     progress=False, log=log3)
    assert log3.computed == {"ResNet50_2D": 9}
    # reader-2 / repeat features of the reproducibility subset
    rat = dx.extract_raters(study, params, tmp_path / "cache", 1, progress=False)
    assert set(rat["ResNet50_2D"]) == {"r1", "r2", "rep"}
    r1, rep = rat["ResNet50_2D"]["r1"], rat["ResNet50_2D"]["rep"]
    assert list(r1.index) == ["P000"]
    pd.testing.assert_frame_equal(r1, rep)  # the repeat mask is identical here
    assert not np.allclose(rat["ResNet50_2D"]["r2"].to_numpy(), r1.to_numpy())
    pd.testing.assert_frame_equal(r1, first["ResNet50_2D"].loc[["P000"]])


def test_missing_mask_path_is_refused(tmp_path):
    study = make_study(tmp_path / "study", n=2, icc=0)
    study.loc[1, "mask_DWI"] = np.nan
    with pytest.raises(DlrcError, match="patient P001, column mask_DWI: path missing"):
        dx.study_cases(study)


# ---------------------------------------------------------------------- benchmark
def test_benchmark_script_runs_tiny(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("deep_throughput", REPO / "benchmarks" / "deep_throughput.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert bench.main(["--tiny", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["ratio"] > 0 and [r["model"] for r in res["models"]] == ["ResNet50_2D", "ResNet50_3D"]
    assert all(r["bare_img_s"] > 0 and r["e2e_img_s"] > 0 for r in res["models"])
    assert "end-to-end / bare throughput" in capsys.readouterr().out


# ---------------------------------------------------------------- models / Table 3
def _scores_frame(n: int = 90, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    cohort = np.array(["train", "internal", "external"])[np.arange(n) % 3]
    lnm = (rng.random(n) < 0.35).astype(int)
    study = pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(n)], "cohort": cohort, "lnm": lnm})
    scores = study.set_index("patient_id")[["cohort", "lnm"]].copy()
    for k, m in enumerate(dn.MODEL_NAMES):
        scores[m] = lnm * (0.2 + 0.1 * k) + rng.normal(0, 1, n)
    # ResNet50_3D: excellent in external validation only (what the leaking rule rewards)
    ext = scores["cohort"].eq("external")
    scores.loc[ext, "ResNet50_3D"] = scores.loc[ext, "lnm"] * 10 + rng.normal(0, 0.1, int(ext.sum()))
    return study, scores


def test_table3_rows_reproduce_keys_and_best_model_rules():
    from dlrc_lib.scores import deep_models as dm

    study, scores = _scores_frame()
    perf = dm.table3(scores, study)
    assert len(perf) == 18
    assert list(perf["model"][:6]) == list(dn.MODEL_NAMES) and list(perf["cohort"][::6]) == ["train", "internal", "external"]
    # one cut-off per model, found in training and shared by its validation rows
    assert perf.groupby("model")["cutoff"].nunique().eq(1).all()
    from dlrc_lib import stats

    tr = scores[scores["cohort"] == "train"]
    a = stats.auc_ci(tr["lnm"].to_numpy(), tr["ResNet152_2D"].to_numpy())
    row = perf[(perf["model"] == "ResNet152_2D") & (perf["cohort"] == "train")].iloc[0]
    assert row["auc"] == pytest.approx(float(a[0])) and row["auc_lower"] == pytest.approx(float(a[1]))
    rep = K.values(dm.table3_rows(perf))
    assert len(rep["table3.external.ResNet101_3D.auc"]) == 3 and "table3.internal.ResNet50_2D.npv" in rep
    shown = dm.format_table3(perf)
    assert list(shown.columns[:3]) == ["Cohort", "DL model", "AUC (95% CI)"]
    best, ranking = dm.choose_best(perf, "train_auc")
    train_auc = perf[perf["cohort"] == "train"].set_index("model")["auc"]
    assert best == train_auc.idxmax() and ranking["best"].sum() == 1
    leaky, _ = dm.choose_best(perf, "train_and_external_auc")
    assert leaky == "ResNet50_3D" != best
    with pytest.raises(DlrcError, match="best_model_rule"):
        dm.choose_best(perf, "external_auc")
    assert "leak" in dm.RULES["train_and_external_auc"]


def test_roc_plot_and_icc_filter():
    from dlrc_lib.scores import deep_models as dm

    study, scores = _scores_frame()
    display = dm.roc_display(scores)
    roc = display.curves
    assert set(roc["model"]) == set(dn.MODEL_NAMES) and roc["cohort"].nunique() == 3
    assert roc.groupby(["cohort", "model"], observed=True)["tpr"].max().eq(1).all()
    from dlrc_lib.core.figures import render

    gg = display.plot()
    assert gg.__class__.__name__ == "ggplot"
    fig = render(gg)
    assert len([a for a in fig.axes if a.get_visible()]) == 3
    __import__("matplotlib.pyplot").pyplot.close(fig)
    rng = np.random.default_rng(0)
    truth = rng.normal(0, 1, (8, 4))
    r1 = pd.DataFrame(truth, index=[f"P{i}" for i in range(8)], columns=["CET1_F0", "CET1_F1", "DWI_F0", "DWI_F1"])
    r2 = r1 + rng.normal(0, 0.05, r1.shape)
    rep = r1 + rng.normal(0, 0.05, r1.shape)
    r2["DWI_F1"] = rng.normal(0, 1, 8)  # not reproducible between readers
    rep["CET1_F1"] = 0.0 * rep["CET1_F1"] + rng.normal(0, 1, 8)  # not reproducible within reader
    t = dm.icc_table({"r1": r1, "r2": r2, "rep": rep}, threshold=0.75, min_cases=5)
    assert list(t.index[t["keep"]]) == ["CET1_F0", "DWI_F0"]
    assert dm.icc_table({"r1": r1.iloc[:3], "r2": r2, "rep": rep}, min_cases=5) is None
    assert dm.kept_features({"ResNet50_2D": t, "ResNet50_3D": None}) == {"ResNet50_2D": ["CET1_F0", "DWI_F0"], "ResNet50_3D": None}


def test_table3_keeps_a_model_without_score():
    from dlrc_lib.scores import deep_models as dm

    study, scores = _scores_frame()
    scores["ResNet152_3D"] = np.nan
    perf = dm.table3(scores, study)
    assert len(perf) == 18
    shown = dm.format_table3(perf)
    row = shown[(shown["DL model"] == "ResNet152_3D")].iloc[0]
    assert row["AUC (95% CI)"] == "no feature selected"
    assert not any(k.startswith("table3.train.ResNet152_3D") for k in K.values(dm.table3_rows(perf)))
    assert dm.choose_best(perf, "train_auc")[0] != "ResNet152_3D"


def test_extract_for_model_uses_the_stored_weights(tmp_path):
    from dlrc_lib.scores import deep_models as dm

    study = make_study(tmp_path / "study", n=2, icc=0)
    params = tiny_params(weights="auto", models=["ResNet50_2D"])
    log = dx.ExtractionLog()
    feats = dx.extract_study(study, params, tmp_path / "cache", 11, progress=False, log=log)["ResNet50_2D"]
    record = dm.weights_record(log.weights, params.weights, 11, params.models)["ResNet50_2D"]
    assert record["source"] == "random" and record["random_fallback"] and record["seed"] == 11
    prep = {k: getattr(params, k) for k in ("weights", "input_size", "margin", "shape_3d", "batch_size",
                                            "clip_percentiles", "device")}
    again = dx.extract_for_model(study, "ResNet50_2D", prep, record, tmp_path / "cache2", progress=False)
    pd.testing.assert_frame_equal(feats, again)
    wrong = dict(record, source="file", spec="random", identity="file:" + "0" * 64)
    with pytest.raises(DlrcError, match="fitted with weights file:0+"):
        dx.extract_for_model(study, "ResNet50_2D", prep, wrong, tmp_path / "cache2", progress=False)


def test_interrupted_extraction_resumes(tmp_path, monkeypatch):
    study = make_study(tmp_path / "study", n=3, icc=0)
    params = tiny_params(models=["ResNet50_2D"], batch_size=4)
    calls = {"n": 0}
    orig = dn.Extractor.features

    def flaky(self, batch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return orig(self, batch)

    monkeypatch.setattr(dn.Extractor, "features", flaky)
    with pytest.raises(KeyboardInterrupt):
        dx.extract_study(study, params, tmp_path / "cache", 2, progress=False)
    monkeypatch.undo()
    monkeypatch.setenv("DLRC_OFFLINE", "1")
    log = dx.ExtractionLog()
    resumed = dx.extract_study(study, params, tmp_path / "cache", 2, progress=False, log=log)
    assert log.computed == {"ResNet50_2D": 5} and log.cached == {"ResNet50_2D": 4}
    fresh = dx.extract_study(study, params, tmp_path / "fresh", 2, progress=False)
    np.testing.assert_allclose(resumed["ResNet50_2D"].to_numpy(), fresh["ResNet50_2D"].to_numpy(), rtol=1e-5, atol=1e-5)
    store = dx.store_for(tmp_path / "cache", "ResNet50_2D")
    assert not list((store.dir / "shards").glob("*/*.parquet"))  # everything compacted into the part


def test_shards_left_by_a_killed_extraction_are_compacted_by_the_next_one(tmp_path, monkeypatch):
    # a SIGKILLed extraction never reaches its compaction: its cases stay one file each, and
    # every later run would read them one by one (thousands at paper scale)
    study = make_study(tmp_path / "study", n=3, icc=0)
    params = tiny_params(models=["ResNet50_2D"], batch_size=4)
    monkeypatch.setattr(dx.VectorStore, "absorb", lambda self, *a, **k: None)  # killed before it
    first = dx.extract_study(study, params, tmp_path / "cache", 2, progress=False)["ResNet50_2D"]
    store = dx.store_for(tmp_path / "cache", "ResNet50_2D")
    assert len(list((store.dir / "shards").glob("*/*.parquet"))) == 9
    monkeypatch.undo()
    monkeypatch.setenv("DLRC_OFFLINE", "1")
    reads = []
    orig = dx.VectorStore._table
    monkeypatch.setattr(dx.VectorStore, "_table", lambda self, path: reads.append(path) or orig(self, path))
    log = dx.ExtractionLog()
    again = dx.extract_study(study, params, tmp_path / "cache", 2, progress=False, log=log)["ResNet50_2D"]
    assert log.computed == {"ResNet50_2D": 0} and log.cached == {"ResNet50_2D": 9}
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    assert not list((store.dir / "shards").glob("*/*.parquet"))
    reads.clear()
    dx.extract_study(study, params, tmp_path / "cache", 2, progress=False)
    assert {p.parent.name for p in reads} == {"parts"}  # no shard left to read


def test_prefetch_keeps_order_and_runs_ahead():
    import threading
    import time

    started = []
    lock = threading.Lock()

    def work(i):
        with lock:
            started.append(i)
        time.sleep(0.01)
        return i * i

    gen = dx.prefetch(work, range(10), workers=1, lookahead=2)
    first = next(gen)
    time.sleep(0.05)
    with lock:
        ahead = len(started)
    assert first == 0 and ahead >= 2  # the next batches are prepared while the first is used
    assert [first] + list(gen) == [i * i for i in range(10)]
    assert list(dx.prefetch(work, range(4), workers=0)) == [0, 1, 4, 9]


def test_extract_cli_fills_every_case_notebook_04_reads(tmp_path, monkeypatch):
    """`dlrc extract` (deep part) stores reader-1 and the reader-2/repeat cases: notebook 04
    then builds no network."""
    from types import SimpleNamespace

    from dlrc_lib.run.extract import extract_deep_cli

    study = make_study(tmp_path / "study", n=3, icc=1)
    params = SimpleNamespace(deep=tiny_params(), cache_dir=str(tmp_path / "cache"), seed=1,
                             radiomics=SimpleNamespace(progress=False))
    out = tmp_path / "log.txt"
    with open(out, "w") as fh:
        assert extract_deep_cli(params, study, out=fh)
    assert "reader-2/repeat masks of 1 patients" in out.read_text()

    def no_build(*a, **k):
        raise AssertionError("everything should come from the store")

    monkeypatch.setattr(dx, "build_extractor", no_build)
    log = dx.ExtractionLog()
    dx.extract_study(study, params.deep, params.cache_dir, 1, progress=False, log=log)
    raters = dx.extract_raters(study, params.deep, params.cache_dir, 1, progress=False, log=log)
    assert sum(log.computed.values()) == 0
    assert len(raters["ResNet50_2D"]["r2"]) == 1 and len(raters["ResNet50_2D"]["rep"]) == 1


def test_dask_cluster_gives_the_local_features_and_builds_each_network_once_per_worker(tmp_path):
    """deep.dask_scheduler: one task per batch on the workers (here a 2-process LocalCluster),
    the features written here equal the local ones; radiomics' scheduler is inherited."""
    distributed = pytest.importorskip("dask.distributed")
    from dlrc_lib.core.config import Params

    study = make_study(tmp_path / "study", n=5, icc=0)
    local = dx.extract_study(study, tiny_params(), tmp_path / "local", 1, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        address = cluster.scheduler_address
        inherited = Params.model_validate({"radiomics": {"dask_scheduler": address}}).deep
        assert inherited.dask_scheduler == address
        log = dx.ExtractionLog()
        remote = dx.extract_study(study, tiny_params(dask_scheduler=address), tmp_path / "dask", 1,
                                  progress=False, log=log)
        assert log.computed == {"ResNet50_2D": 15, "ResNet50_3D": 15} and log.forward_s["ResNet50_3D"] > 0
        built = client.run(lambda: sorted(k[0] for k in dx._WORKER_EXTRACTORS))
        assert all(names in ([], ["ResNet50_2D", "ResNet50_3D"]) for names in built.values())
        assert client.run(torch.get_num_threads) == {w: max(1, dx._cpu_count() // 2) for w in built}
    for m in local:
        np.testing.assert_allclose(remote[m].to_numpy(), local[m].to_numpy(), rtol=1e-5, atol=1e-5)
    # "local" keeps deep features on this machine although radiomics uses a cluster
    here = Params.model_validate({"radiomics": {"dask_scheduler": "tcp://127.0.0.1:9"},
                                  "deep": {"dask_scheduler": "local"}}).deep
    assert dx.cluster_address(here) is None


def test_unreachable_deep_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(dx, "DASK_TIMEOUT_S", 1.0)
    study = make_study(tmp_path / "study", n=1, icc=0)
    with pytest.raises(DlrcError, match=r"deep.dask_scheduler tcp://127.0.0.1:9: cannot connect"):
        dx.extract_study(study, tiny_params(dask_scheduler="tcp://127.0.0.1:9"), tmp_path / "c", 1, progress=False)
