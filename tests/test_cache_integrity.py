"""Caches never hand back damaged data: every feature-store file and memo entry is verified
on read, a damaged one is reported once, discarded and recomputed (results identical to a
clean run); two runs on one cache at once; a full disk leaves no partial file."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _tinystudy import make_study
from dlrc_lib.features import store as fs
from dlrc_lib.core import memo as M
from dlrc_lib.features.store import FeatureStore

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "params" / "radiomics_quick.yaml"


def _keys(n: int) -> list[str]:
    return [FeatureStore.make_key("case", str(i)) for i in range(n)]


def _fill(root: Path, n: int = 4, compact: bool = True) -> tuple[FeatureStore, pd.DataFrame]:
    store = FeatureStore(root, "radiomics")
    rng = np.random.default_rng(3)
    for k in _keys(n):
        store.put(k, {f"f{j}": float(v) for j, v in enumerate(rng.normal(size=12))}, {"patient_id": k[:6]})
    if compact:
        store.compact()
    return store, store.get(_keys(n))


def _damage_outcome(root: Path, keys: list[str], clean: pd.DataFrame) -> str:
    """'intact' (same values) or 'detected' (warned, discarded, keys missing); anything
    else (a silently changed value, an exception) fails the test."""
    fs._warned.clear()
    store = FeatureStore(root, "radiomics")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        missing = store.missing(keys)
        got = store.get(keys)
    damaged = [w for w in caught if "cache: damaged entry" in str(w.message)]
    if not missing:
        pd.testing.assert_frame_equal(got, clean, check_exact=True)
        assert not damaged
        return "intact"
    assert len(damaged) == 1, [str(w.message) for w in caught]
    assert set(missing) <= set(keys) and not set(got.index) & set(missing)
    if len(got):
        pd.testing.assert_frame_equal(got, clean.loc[got.index], check_exact=True)
    return "detected"


@pytest.mark.parametrize("where", ["part", "shard"])
def test_every_flipped_byte_is_harmless_or_detected(tmp_path, where):
    store, clean = _fill(tmp_path, compact=where == "part")
    files = sorted((tmp_path / "radiomics").rglob("*.parquet"))
    target = files[0]
    keys = _keys(4) if where == "part" else [target.stem]
    clean = clean.loc[keys]
    original = target.read_bytes()
    outcomes = {}
    for pos in range(0, len(original), max(1, len(original) // 60)):
        data = bytearray(original)
        data[pos] ^= 0xFF
        target.write_bytes(bytes(data))
        outcomes[pos] = _damage_outcome(tmp_path, keys, clean)
        target.write_bytes(original)
    assert "detected" in outcomes.values()
    # cut short, and emptied
    for cut in (len(original) // 2, len(original) - 3, 0):
        target.write_bytes(original[:cut])
        assert _damage_outcome(tmp_path, keys, clean) == "detected"
        assert not target.exists()  # discarded
        target.write_bytes(original)


def test_damaged_part_value_is_caught_by_the_checksum(tmp_path):
    """A part that is valid Parquet but holds other numbers (rewritten with the old checksum)."""
    import pyarrow.parquet as pq

    store, clean = _fill(tmp_path)
    part = next((tmp_path / "radiomics" / "parts").glob("*.parquet"))
    table = pq.read_table(part)
    df = table.to_pandas()
    df.loc[0, "f3"] += 1e-9
    import pyarrow as pa

    forged = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(table.schema.metadata)
    pq.write_table(forged, part)
    assert _damage_outcome(tmp_path, _keys(4), clean) == "detected"


def test_vector_store_damage_detected(tmp_path):
    from dlrc_lib.features.deep.store import VectorStore

    vs = VectorStore(tmp_path, "deep-x", n_features=8)
    keys = _keys(3)
    vecs = np.arange(24, dtype=np.float32).reshape(3, 8)
    vs.absorb(keys, vecs, [{}] * 3)
    part = next((tmp_path / "deep-x" / "parts").glob("*.parquet"))
    original = part.read_bytes()
    detected = 0
    for pos in range(0, len(original), max(1, len(original) // 40)):
        data = bytearray(original)
        data[pos] ^= 0xFF
        part.write_bytes(bytes(data))
        fs._warned.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found, arr = VectorStore(tmp_path, "deep-x", n_features=8).get_array(keys)
        if found == keys:
            assert np.array_equal(arr, vecs) and not caught
        else:
            assert found == [] and any("damaged entry" in str(w.message) for w in caught)
            detected += 1
        part.write_bytes(original)
    assert detected


@pytest.mark.parametrize("damage", ["flip_frame", "cut_arrays", "delete_member", "delete_checksums",
                                    "extra_member", "flip_object"])
def test_damaged_memo_entry_is_recomputed(tmp_path, damage):
    m = M.Memo(tmp_path, "x")
    value = {"frame": pd.DataFrame({"a": np.linspace(0, 1, 50)}), "arr": np.arange(30.0), "n": 3}
    calls = []

    def compute():
        calls.append(1)
        return value

    m.get_or_compute("k1", compute)
    entry = tmp_path / "memo" / "x" / "k1"
    if damage == "flip_frame":
        p = entry / "frames" / "000.parquet"
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 1
        p.write_bytes(bytes(data))
    elif damage == "cut_arrays":
        p = entry / "arrays.npz"
        p.write_bytes(p.read_bytes()[:-20])
    elif damage == "delete_member":
        (entry / "frames" / "000.parquet").unlink()
    elif damage == "delete_checksums":
        (entry / "checksums.json").unlink()
    elif damage == "extra_member":
        (entry / "frames" / "001.parquet").write_bytes(b"x")
    else:
        p = entry / "object.json"
        p.write_text(p.read_text().replace('"n": 3', '"n": 4'))
    m2 = M.Memo(tmp_path, "x")
    with pytest.warns(UserWarning, match=r"memo: damaged entry .*k1"):
        got = m2.get_or_compute("k1", compute)
    assert len(calls) == 2 and m2.misses == 1
    pd.testing.assert_frame_equal(got["frame"], value["frame"], check_exact=True)
    assert np.array_equal(got["arr"], value["arr"]) and got["n"] == 3
    # the recomputed entry is whole again
    M.verify_entry(entry)
    assert M.Memo(tmp_path, "x").get_or_compute("k1", compute)["n"] == 3 and len(calls) == 2


# ------------------------------------------------------------ radiomics end to end
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("study"), n=2)


@pytest.fixture(scope="module")
def clean_run(tiny, tmp_path_factory):
    from dlrc_lib.features.radiomics import extract_radiomics

    cache = tmp_path_factory.mktemp("clean")
    res = extract_radiomics(tiny, QUICK, cache, n_jobs=1, progress=False)
    return cache, res


def test_damaged_feature_cache_recomputed_byte_identical(tiny, clean_run, tmp_path):
    """Flip a byte of the compacted part of a filled cache: one warning, every case
    recomputed, features identical to the clean run's to the last bit."""
    from dlrc_lib.features.radiomics import extract_radiomics

    cache, clean = clean_run
    work = tmp_path / "cache"
    shutil.copytree(cache, work)
    part = next((work / "features" / "radiomics" / "parts").glob("*.parquet"))
    # the first byte from a third of the file on whose flip the content changes (a flip in
    # Parquet's statistics or padding is harmless; the file's bytes vary with the timings it holds)
    original = part.read_bytes()
    for pos in range(len(original) // 3, len(original)):
        data = bytearray(original)
        data[pos] ^= 0x10
        part.write_bytes(bytes(data))
        try:
            fs.read_checked(part)
        except fs.DamagedEntry:
            break
    else:
        pytest.fail("no byte of the part changes its content when flipped")
    fs._warned.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = extract_radiomics(tiny, QUICK, work, n_jobs=1, progress=False)
    damaged = [w for w in caught if "cache: damaged entry" in str(w.message)]
    assert len(damaged) == 1 and part.name in str(damaged[0].message)
    assert (res.cases["status"] == "computed").all()
    pd.testing.assert_frame_equal(res.features, clean.features, check_exact=True)
    keys = list(res.cases["key"])  # the stored features too (the metadata holds timings)
    pd.testing.assert_frame_equal(FeatureStore(work / "features", "radiomics").get(keys),
                                  FeatureStore(cache / "features", "radiomics").get(keys), check_exact=True)


_RUNNER = textwrap.dedent(
    """
    import sys, pandas as pd
    from dlrc_lib.features.radiomics import extract_radiomics
    study = pd.read_pickle(sys.argv[1])
    res = extract_radiomics(study, sys.argv[2], sys.argv[3], n_jobs=1, progress=False)
    res.features.to_pickle(sys.argv[4])
    """
)


def test_two_extractions_on_one_cache_at_once(tiny, clean_run, tmp_path):
    """Two processes fill the same cache at the same time (a second run started by
    mistake): both finish, and their features equal an undisturbed run's."""
    tiny.to_pickle(tmp_path / "study.pkl")
    script = tmp_path / "run.py"
    script.write_text(_RUNNER)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cache = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "study.pkl"), str(QUICK), str(cache),
                               str(tmp_path / f"out{i}.pkl")], env=env, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        assert "damaged" not in err
    for i in range(2):
        pd.testing.assert_frame_equal(pd.read_pickle(tmp_path / f"out{i}.pkl"), clean_run[1].features, check_exact=True)
    store = FeatureStore(cache / "features", "radiomics")
    assert store.missing(clean_run[1].cases["key"]) == []


# --------------------------------------------------------------------- full disk
def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_leaves_no_partial_file(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from dlrc_lib.core.io import atomic_write_text

    store, _ = _fill(tmp_path, n=2, compact=False)
    files = lambda: sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")  # noqa: E731
                           if p.is_file() and p.name != ".lock")
    before = files()
    real_write = pq.write_table

    def half_then_full(table, where, **kw):  # writes a partial file, then the disk is full
        Path(where).write_bytes(b"PAR1 partial")
        _enospc()

    monkeypatch.setattr(pq, "write_table", half_then_full)
    with pytest.raises(OSError) as info:
        store.put(_keys(3)[2], {"f0": 1.0})
    assert info.value.errno == errno.ENOSPC
    with pytest.raises(OSError):
        store.compact()
    assert files() == before
    monkeypatch.setattr(pq, "write_table", real_write)

    # report files: the temporary file is removed, the previous version stays
    target = tmp_path / "report" / "table.csv"
    atomic_write_text(target, "old\n")

    class FullFile:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            _enospc()

    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: FullFile(real_fdopen(fd, mode, *a, **k)))
    with pytest.raises(OSError):
        atomic_write_text(target, "new content\n")
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    assert target.read_text() == "old\n" and sorted(p.name for p in target.parent.iterdir()) == ["table.csv"]

    # a memo entry that cannot be written: one warning, the value is still returned, no folder left
    monkeypatch.setattr(M, "save_object", lambda obj, folder: (Path(folder, "object.json").write_text("{"), _enospc()))
    with pytest.warns(UserWarning, match="could not cache"):
        assert M.Memo(tmp_path, "x").get_or_compute("k", lambda: {"v": 1}) == {"v": 1}
    assert list((tmp_path / "memo" / "x").iterdir()) == []


def test_full_disk_is_one_line_from_the_cli(tmp_path, monkeypatch, capsys):
    from dlrc_lib.run import cli

    def run(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "reports" / "x.csv"))

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    for action in parser._subparsers._group_actions[0].choices.values():
        if action.prog.endswith("extract"):
            action.set_defaults(func=run)
    rc = cli.main(["extract", "--params", str(REPO / "params" / "quick.yaml")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("dlrc extract: error: no space left on the device while writing ") and "x.csv" in err


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_pool_workers_end_when_their_parent_is_killed(tmp_path):
    # a killed notebook kernel must not leave its extraction workers running: they would hold
    # the killed run's output pipes open and keep writing next to the rerun. Every process
    # pool in dlrc_lib is a worker_pool (checked below), whose workers die with their parent.
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time\n"
        "from dlrc_lib.core.processes import worker_pool\n"
        "ex = worker_pool(2)\n"
        "pids = {ex.submit(os.getpid).result() for _ in range(4)}\n"
        "print(*pids, flush=True)\n"
        "time.sleep(120)\n")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, str(script)], cwd=root, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(root)})
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert workers and all(_alive(p) for p in workers)
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), "a pool worker outlived its killed parent"


def test_every_process_pool_is_a_worker_pool():
    root = Path(__file__).resolve().parents[1] / "dlrc_lib"
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if "ProcessPoolExecutor(" in p.read_text(encoding="utf-8") and p.name != "processes.py"]
    assert offenders == []


_FAULTS_SCRIPT = """
import os, resource, sys
import numpy as np
from dlrc_lib.core.processes import undo_malloc_tuning
changed = undo_malloc_tuning() if sys.argv[1] == "undo" else False
for _ in range(5):  # warm-up
    np.ones(1 << 17)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):  # 1 MiB blocks, as a radiomics case allocates and frees its volumes
    a = np.ones(1 << 17)
    del a
print(changed, "MALLOC_TRIM_THRESHOLD_" in os.environ, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux (glibc)")
def test_the_dask_nannys_malloc_setting_is_undone_in_a_worker():
    # Dask's nanny starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which makes glibc map
    # and unmap every block over 128 KiB: each 1 MiB array is faulted in page by page, again and
    # again (numpy asks for huge pages from 4 MiB on, which hides the effect for larger ones)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "MALLOC_TRIM_THRESHOLD_": "65536"}

    def faults(mode):
        out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, mode], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        return out[0] == "True", out[1] == "True", int(out[2])

    changed0, kept0, tuned = faults("keep")
    changed1, kept1, undone = faults("undo")
    assert (changed0, kept0) == (False, True) and (changed1, kept1) == (True, False)
    assert tuned > 200 * 100  # ~257 faults per block with the nanny's setting
    assert undone < tuned / 20


def test_notebooks_run_blas_on_one_thread_so_numbers_do_not_depend_on_the_cores():
    # OpenBLAS splits some reductions by thread: the LASSO path's last bits differ between 1
    # and 2 threads. open_run (every notebook) and the runner's kernel environment pin it.
    root = Path(__file__).resolve().parents[1]
    script = textwrap.dedent("""
        import json, os
        from threadpoolctl import threadpool_info
        from dlrc_lib.core.processes import single_thread_blas
        before = {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
        found = single_thread_blas()
        after = {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
        print(json.dumps([found, os.environ.get("OPENBLAS_NUM_THREADS"), sorted(set(after.values()))]))
    """)
    env = {**os.environ, "PYTHONPATH": str(root), "OPENBLAS_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    import json

    found, env_value, threads = json.loads(out.stdout.strip().splitlines()[-1])
    assert found and env_value == "1" and threads == [1]
    from dlrc_lib.run import paths, runner

    assert "single_thread_blas()" in Path(paths.__file__).read_text()  # every notebook's open_run
    assert '"OPENBLAS_NUM_THREADS"] = "1"' in Path(runner.__file__).read_text()  # every kernel

