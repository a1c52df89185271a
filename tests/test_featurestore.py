"""Tests of the Parquet feature store: round trip, atomic shards, resume after a kill,
compaction, invalidation by key, digests."""
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

from dlrc_lib.features.store import FeatureStore, file_digest


def _feats(rng, n=5, prefix="f"):
    return {f"{prefix}{i}": float(v) for i, v in enumerate(rng.normal(size=n))}


def test_make_key_is_stable_and_order_sensitive():
    k1 = FeatureStore.make_key("a", "b", '{"x": 1}', "3.0.1")
    assert k1 == FeatureStore.make_key("a", "b", '{"x": 1}', "3.0.1")
    assert len(k1) == 64
    assert k1 != FeatureStore.make_key("b", "a", '{"x": 1}', "3.0.1")
    # part boundaries matter: ("ab", "c") != ("a", "bc")
    assert FeatureStore.make_key("ab", "c") != FeatureStore.make_key("a", "bc")


def test_put_get_missing_meta_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    store = FeatureStore(tmp_path, "radiomics")
    keys = [FeatureStore.make_key(str(i)) for i in range(4)]
    feats = {k: _feats(rng) for k in keys[:3]}
    for i, k in enumerate(keys[:3]):
        store.put(k, feats[k], {"patient_id": f"P{i:03d}", "sequence": "CET1"})
    assert store.missing(keys) == [keys[3]]
    got = store.get(list(reversed(keys)))
    assert list(got.index) == [keys[2], keys[1], keys[0]]  # given order, present only
    assert list(got.columns) == [f"f{i}" for i in range(5)]
    for k in keys[:3]:
        assert got.loc[k].to_dict() == feats[k]
    meta = store.get_meta(keys)
    assert meta.loc[keys[1], "patient_id"] == "P001"
    assert "__meta__" not in got.columns
    assert store.get([keys[3]]).empty


def test_compaction_keeps_values_and_merges_shards(tmp_path):
    rng = np.random.default_rng(2)
    store = FeatureStore(tmp_path, "radiomics")
    keys = [FeatureStore.make_key(str(i)) for i in range(10)]
    feats = {}
    for k in keys[:6]:
        feats[k] = _feats(rng)
        store.put(k, feats[k], {"i": 1})
    for k in keys[6:]:  # a second schema (other feature set) in the same namespace
        feats[k] = _feats(rng, 3, prefix="g")
        store.put(k, feats[k], {"i": 2})
    before = store.get(keys)
    assert store.compact() == 10
    assert store._shard_paths() == []
    assert len(store._part_paths()) == 2
    after = FeatureStore(tmp_path, "radiomics").get(keys)
    pd.testing.assert_frame_equal(before, after)
    assert np.isnan(after.loc[keys[0], "g0"]) and np.isnan(after.loc[keys[7], "f0"])
    # new shards after compaction are merged into the existing part
    k_new = FeatureStore.make_key("new")
    store.put(k_new, _feats(rng), {})
    assert store.missing(keys + [k_new]) == []
    assert store.compact() == 1
    assert len(store.get(keys + [k_new])) == 11
    assert store.compact() == 0


def test_compaction_is_byte_deterministic(tmp_path):
    rng = np.random.default_rng(3)
    items = [(FeatureStore.make_key(str(i)), _feats(rng)) for i in range(5)]
    blobs = []
    for order, sub in ((items, "a"), (items[::-1], "b")):
        store = FeatureStore(tmp_path / sub, "ns")
        for k, f in order:
            store.put(k, f, {"x": 1})
        store.compact()
        blobs.append(b"".join(p.read_bytes() for p in store._part_paths()))
    assert blobs[0] == blobs[1]


def test_invalidation_by_key_and_delete(tmp_path):
    rng = np.random.default_rng(4)
    store = FeatureStore(tmp_path, "radiomics")
    old = FeatureStore.make_key("img", "mask", '{"binWidth": 5}', "3.0.1")
    new = FeatureStore.make_key("img", "mask", '{"binWidth": 10}', "3.0.1")
    store.put(old, _feats(rng), {})
    assert store.missing([new]) == [new]  # other settings -> other key -> recomputed
    store.put(new, _feats(rng), {})
    store.compact()
    assert store.prune([new]) == 1
    assert store.keys() == [new]
    assert store.delete([new]) == 1
    assert store.keys() == []


def test_namespaces_are_separate(tmp_path):
    a = FeatureStore(tmp_path, "radiomics")
    b = FeatureStore(tmp_path, "deep-ResNet50_2D")
    k = FeatureStore.make_key("x")
    a.put(k, {"v": 1.0}, {})
    assert b.missing([k]) == [k]
    with pytest.raises(ValueError):
        FeatureStore(tmp_path, "../escape")


def test_reserved_names_and_bad_keys(tmp_path):
    store = FeatureStore(tmp_path, "ns")
    with pytest.raises(ValueError):
        store.put(FeatureStore.make_key("x"), {"key": 1.0}, {})
    with pytest.raises(ValueError):
        store.put("not a key!", {"v": 1.0}, {})


def test_file_digest_file_and_directory(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"hello")
    import hashlib

    assert file_digest(f) == hashlib.sha256(b"hello").hexdigest()
    d = tmp_path / "dir"
    (d / "sub").mkdir(parents=True)
    (d / "x.txt").write_bytes(b"1")
    (d / "sub" / "y.txt").write_bytes(b"2")
    d1 = file_digest(d)
    time.sleep(0.01)
    (d / "sub" / "y.txt").write_bytes(b"3")  # content change -> new digest (mtime/size memo)
    os.utime(d / "sub" / "y.txt", ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert file_digest(d) != d1
    with pytest.raises(FileNotFoundError):
        file_digest(tmp_path / "nope")


_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from dlrc_lib.features.store import FeatureStore
    store = FeatureStore(sys.argv[1], "radiomics")
    rng = np.random.default_rng(0)
    for i in range(100000):
        k = FeatureStore.make_key(str(i))
        store.put(k, {f"f{j}": float(i) for j in range(200)}, {"i": i})
        if i % 7 == 6:
            store.compact()
        print(i, flush=True)
    """
)


def test_store_survives_sigkill_mid_write(tmp_path):
    """Kill a writer (which also compacts) at an arbitrary moment: every entry the store
    reports is complete and correct, nothing is half-written, and writing resumes."""
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "store")],
                            stdout=subprocess.PIPE, env=env, text=True)
    n_done = 0
    deadline = time.time() + 60
    for line in proc.stdout:  # wait until a few compactions happened
        n_done = int(line) + 1
        if n_done >= 25 or time.time() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = FeatureStore(tmp_path / "store", "radiomics")
    keys = store.keys()
    assert len(keys) >= n_done
    df = store.get(keys)
    meta = store.get_meta(keys)
    for k in keys:
        i = int(meta.loc[k, "i"])
        assert k == FeatureStore.make_key(str(i))
        assert (df.loc[k].to_numpy() == float(i)).all()
    done = {int(i) for i in meta["i"]}
    assert done == set(range(len(done)))  # a prefix, no holes
    # resume: the next writer only needs the rest, and compaction still works
    todo = store.missing([FeatureStore.make_key(str(i)) for i in range(len(done) + 3)])
    assert len(todo) == 3
    store.compact()
    assert store.keys() == keys
