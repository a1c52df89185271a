"""The cache of fitted score pipelines and diagnostics (dlrc_lib.core.memo)."""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from dlrc_lib.scores import diagnostics as D
from dlrc_lib.core import memo as M
from dlrc_lib.core.config import HarmonisationParams, SelectionParams
from dlrc_lib.scores.pipeline import EmptySelectionError, FeatureScore

from featuredata import make_features, make_study


def assert_same(a, b, path="result"):
    """Deep equality: frames exactly (values, dtypes, index), arrays by dtype and bytes,
    dataclasses field by field, scalars by type and value."""
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=path)
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b, check_exact=True, obj=path)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), path
    elif isinstance(a, FeatureScore):  # the fitted attributes (trailing underscore)
        assert type(a) is type(b), path
        fitted = sorted(k for k in vars(a) if k.endswith("_"))
        assert fitted == sorted(k for k in vars(b) if k.endswith("_")), path
        for k in fitted:
            assert_same(getattr(a, k), getattr(b, k), f"{path}.{k}")
    elif dataclasses.is_dataclass(a):
        assert type(a) is type(b), path
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b)):
            assert_same(u, v, f"{path}[{i}]")
    else:
        assert type(a) is type(b), (path, type(a), type(b))
        assert a == b or (a != a and b != b), (path, a, b)


@pytest.fixture(scope="module")
def data():
    study = make_study(260, seed=31)
    X = make_features(study, n_noise=20, effect=1.0, seed=32)
    return study, X


def _fit(X, study, cache_dir, memo=None, **kw):
    args = dict(harmonisation=HarmonisationParams(mode="all"), selection=SelectionParams(), seed=5)
    args.update(kw)
    keep = args.pop("keep", None)
    return FeatureScore(args.pop("harmonisation"), args.pop("selection"), cache_dir=cache_dir, memo=memo,
                        **args).fit(X, study, keep=keep)


def test_cached_fit_is_identical_and_not_refitted(data, tmp_path, monkeypatch):
    study, X = data
    plain = _fit(X, study, None)
    first = M.Memo(tmp_path, "feature_score")
    cold = _fit(X, study, tmp_path, memo=first)
    assert (first.hits, first.misses) == (0, 1)
    assert_same(plain, cold)

    import dlrc_lib.scores.pipeline as P

    def boom(*a, **k):
        raise AssertionError("refitted although the inputs are unchanged")

    monkeypatch.setattr(P, "_fit_feature_score", boom)
    second = M.Memo(tmp_path, "feature_score")
    warm = _fit(X, study, tmp_path, memo=second)
    assert (second.hits, second.misses) == (1, 0)
    assert_same(plain, warm)
    # the frame held twice (harmonised features) is stored once and shared again on load
    assert warm.harmonised_ is warm.harmonisation_.features
    assert warm.to_dict() == plain.to_dict()
    json.dumps(warm.to_dict())  # still JSON-able for the model file


@pytest.mark.parametrize("change", ["value", "seed", "selection", "harmonisation", "label", "keep"])
def test_any_changed_input_refits(data, tmp_path, change):
    study, X = data
    _fit(X, study, tmp_path)
    X2, study2, kw = X, study, {}
    if change == "value":
        X2 = X.copy()
        X2.iloc[7, 3] += 1e-9
    elif change == "seed":
        kw["seed"] = 6
    elif change == "selection":
        kw["selection"] = SelectionParams(spearman_r=0.9)
    elif change == "harmonisation":
        kw["harmonisation"] = HarmonisationParams(mode="train_reference")
    elif change == "label":
        study2 = study.copy()
        study2.loc[study2.index[0], "lnm"] = 1 - study2.loc[study2.index[0], "lnm"]
    elif change == "keep":
        kw["keep"] = list(X.columns[:-1])
    m = M.Memo(tmp_path, "feature_score")
    _fit(X2, study2, tmp_path, memo=m, **kw)
    assert (m.hits, m.misses) == (0, 1)


def test_lambda_rules_share_the_cross_validated_path(data, tmp_path, monkeypatch):
    # the 1se and min rules refit nothing of the LASSO cross-validation (a sweep's commonest
    # pair of variants), and what the cached path gives equals a fit without any cache
    import dlrc_lib.stats.lasso as S

    study, X = data
    calls = []
    cv_path = S._cv_path
    monkeypatch.setattr(S, "_cv_path", lambda *a, **k: calls.append(1) or cv_path(*a, **k))
    one = _fit(X, study, tmp_path, selection=SelectionParams(lasso_rule="1se"))
    other = _fit(X, study, tmp_path, selection=SelectionParams(lasso_rule="min"))
    assert len(calls) == 1
    assert len(list((tmp_path / "memo" / "lasso_cv").iterdir())) == 1
    assert other.selection_.lasso.rule == "min" and one.selection_.lasso.rule == "1se"
    assert other.selection_.lasso.lambda_min == one.selection_.lasso.lambda_min
    assert_same(_fit(X, study, None, selection=SelectionParams(lasso_rule="min")), other)
    # other settings of the cross-validation (here its folds) are a different path
    before = len(calls)
    _fit(X, study, tmp_path, selection=SelectionParams(lasso_folds=5))
    assert len(calls) == before + 1


def test_empty_selection_is_cached_and_raised_again(data, tmp_path):
    study, X = data
    kw = dict(selection=SelectionParams(mw_p=1e-12))
    with pytest.raises(EmptySelectionError) as first:
        _fit(X, study, tmp_path, **kw)
    m = M.Memo(tmp_path, "feature_score")
    with pytest.raises(EmptySelectionError) as again:
        _fit(X, study, tmp_path, memo=m, **kw)
    assert m.hits == 1 and str(again.value) == str(first.value)
    assert_same(first.value.estimator.funnel_, again.value.estimator.funnel_)


def test_unreadable_entry_is_recomputed(data, tmp_path):
    study, X = data
    _fit(X, study, tmp_path)
    (entry,) = list((tmp_path / "memo" / "feature_score").iterdir())
    next((entry / "frames").iterdir()).write_bytes(b"not parquet")
    m = M.Memo(tmp_path, "feature_score")
    _fit(X, study, tmp_path, memo=m)
    assert (m.hits, m.misses) == (0, 1)


def test_failed_write_leaves_no_entry(tmp_path):
    m = M.Memo(tmp_path, "x")
    with pytest.raises(TypeError, match="cannot store a set"):
        m.get_or_compute("k", lambda: {"a": pd.DataFrame({"v": [1.0]}), "b": {1, 2}})
    assert list((tmp_path / "memo" / "x").iterdir()) == []
    assert m.load("k") == (False, None)


def test_only_dlrc_dataclasses_are_rebuilt(tmp_path):
    M.save_object({"x": 1.5}, tmp_path)
    doc = json.loads((tmp_path / "object.json").read_text())
    doc["object"] = {"__dataclass__": "subprocess:Popen", "fields": {"args": "true"}}
    (tmp_path / "object.json").write_text(json.dumps(doc))
    with pytest.raises(M.DamagedEntry, match="object.json differs from its checksum"):
        M.load_object(tmp_path)
    with pytest.raises(ValueError, match="refusing"):  # even past the checksum
        M.load_object(tmp_path, verify=False)


def test_least_recently_used_entries_are_evicted(tmp_path):
    m = M.Memo(tmp_path, "x", max_entries=2)
    for k in "abc":
        m.get_or_compute(k, lambda: {"k": k})
    assert sorted(p.name for p in (tmp_path / "memo" / "x").iterdir()) == ["b", "c"]


def test_diagnostics_are_cached(data, tmp_path):
    study, X = data
    after = _fit(X, study, None).harmonised_
    X = X.loc[after.index, after.columns]
    for fn, kw in ((D.harmonisation_summary, {"seed": 1}), (D.pca_frame, {})):
        plain = fn(X, after, study, **kw)
        cold = fn(X, after, study, cache_dir=tmp_path, **kw)
        warm = fn(X, after, study, cache_dir=tmp_path, **kw)
        pd.testing.assert_frame_equal(plain, cold, check_exact=True)
        pd.testing.assert_frame_equal(plain, warm, check_exact=True)
    assert len(list((tmp_path / "memo" / "diagnostics").iterdir())) == 2


def test_no_caching_when_the_code_on_disk_is_newer_than_the_running_code(data, tmp_path, monkeypatch):
    study, X = data
    monkeypatch.setattr(M, "_LOADED_AT", 0.0)  # every module file "changed" after the start
    assert M.code_fingerprint(["dlrc_lib.scores.pipeline"]) is None
    m = M.Memo(tmp_path, "feature_score")
    _fit(X, study, tmp_path, memo=m)
    assert m.misses == 1 and not (tmp_path / "memo" / "feature_score").exists()


def test_unwritable_cache_only_warns(tmp_path):
    (tmp_path / "memo").write_text("a file where the cache folder should be")
    m = M.Memo(tmp_path, "x")
    with pytest.warns(UserWarning, match="could not cache"):
        assert m.get_or_compute("k", lambda: {"v": 1.0}) == {"v": 1.0}


def test_index_names_and_object_values_are_part_of_the_key():
    a = pd.DataFrame({"v": [1.0, 2.0]}, index=pd.Index(["p1", "p2"], name="patient_id"))
    b = a.rename_axis("other")
    assert M.digest(a) != M.digest(b)
    assert M.digest(pd.Series([None, "x"], dtype=object)) != M.digest(pd.Series(["None", "x"], dtype=object))
    assert M.digest(pd.Series([1, "x"], dtype=object)) != M.digest(pd.Series(["1", "x"], dtype=object))


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "bool"])
def test_wide_feature_matrices_are_stored_as_arrays_and_round_trip_exactly(tmp_path, dtype):
    rng = np.random.default_rng(4)
    values = rng.normal(size=(30, 200))
    values[3, 7] = np.nan if dtype.startswith("float") else values[3, 7]
    idx = pd.Index([f"P{i:03d}" for i in range(30)], name="patient_id")
    cols = pd.Index([f"CET1_F{i}" for i in range(200)], name="feature")
    wide = pd.DataFrame(values.astype(dtype) if dtype != "bool" else values > 0, index=idx, columns=cols)
    narrow = wide.iloc[:, :3].copy()
    obj = {"wide": wide, "again": wide, "narrow": narrow, "int_index": wide.reset_index(drop=True)}
    M.save_object(obj, tmp_path)
    files = sorted(p.name for p in (tmp_path / "frames").iterdir())
    # the same frame twice is stored once; wide frames as .npy + index, narrow ones as Parquet
    assert files == ["000.index.parquet", "000.npy", "001.parquet", "002.index.parquet", "002.npy"]
    back = M.load_object(tmp_path)
    assert_same(obj, back)
    assert back["wide"].columns.name == "feature" and back["wide"].index.name == "patient_id"
    # a changed byte of the array is a damaged entry, as for any member
    raw = bytearray((tmp_path / "frames" / "000.npy").read_bytes())
    raw[-1] ^= 1
    (tmp_path / "frames" / "000.npy").write_bytes(bytes(raw))
    with pytest.raises(M.DamagedEntry, match="000.npy differs"):
        M.load_object(tmp_path)


def test_frame_digest_sees_every_value_column_order_and_dtype():
    rng = np.random.default_rng(5)
    df = pd.DataFrame(rng.normal(size=(20, 100)), columns=[f"f{i}" for i in range(100)])
    base = M.digest(df)
    changed = df.copy()
    changed.iloc[19, 99] = np.nextafter(changed.iloc[19, 99], 1)
    swapped = df.copy()
    swapped[["f0", "f1"]] = swapped[["f1", "f0"]].to_numpy()  # same names, values exchanged
    assert len({base, M.digest(changed), M.digest(swapped), M.digest(df.astype("float32"))}) == 4
    assert M.digest(df.copy()) == base
    # a mixed frame (one column of another dtype) takes the column-by-column form
    mixed = df.copy()
    mixed["f0"] = mixed["f0"].astype("float32")
    assert M.digest(mixed) not in (base, M.digest(df.astype("float32")))
