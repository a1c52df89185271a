"""Cached results of deterministic computations (ComBat + selection fits, diagnostics).

A re-run of a notebook on unchanged inputs should not refit anything. :class:`Memo` keys a
result by a SHA-256 of everything that determines it — the input frames' bytes (index,
columns, dtypes, values), the parameters, the seed, the versions of the numerical libraries
and the source of the ``dlrc_lib`` modules that compute it — and stores it under
``<cache_dir>/memo/<namespace>/<key>/``:

* ``object.json``: the result's structure (dataclasses, lists, dicts, scalars) as JSON;
* ``frames/NNN.parquet``: every DataFrame / Series inside it (exact float round trip); a wide
  frame of one numeric dtype (feature matrices: thousands of columns, where Parquet spends
  seconds on per-column metadata) as ``frames/NNN.npy`` (its values, ``allow_pickle=False``)
  plus ``frames/NNN.index.parquet`` (its index), its column names in ``object.json``;
* ``arrays.npz``: every NumPy array inside it (``allow_pickle=False``).

* ``checksums.json``: the SHA-256 of every other member, written last.

No pickle: only dataclasses defined in ``dlrc_lib`` are rebuilt, by name. An entry is
written into a temporary folder and renamed into place, so an interrupted run leaves no
half-written entry. On load every member is checked against ``checksums.json``: a damaged
entry (a changed byte, a cut or missing member) is reported once as a warning, deleted
and recomputed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

import numpy as np
import pandas as pd

from dlrc_lib.core.errors import DamagedEntry

__all__ = ["Memo", "digest", "code_fingerprint", "save_object", "load_object"]

FORMAT = 2  # 2: checksums.json in every entry
_LOADED_AT = time.time()  # a module file changed after this is not the code that runs here


# ------------------------------------------------------------------------- digests
def _update(h: "hashlib._Hash", obj: Any) -> None:
    """Feed a canonical byte form of ``obj`` into ``h`` (frames, arrays, plain data)."""
    if isinstance(obj, pd.DataFrame):
        h.update(b"F")
        _update(h, obj.columns)
        _update(h, [str(t) for t in obj.dtypes])
        _update(h, obj.index)
        if _one_numeric_dtype(obj):  # the dtypes above say which form follows
            _update(h, np.asfortranarray(obj.to_numpy()))  # column after column, in one piece
        else:
            for c in range(obj.shape[1]):
                _update(h, obj.iloc[:, c].to_numpy())
    elif isinstance(obj, pd.Series):
        h.update(b"S")
        _update(h, str(obj.name))
        _update(h, obj.index)
        _update(h, obj.to_numpy())
    elif isinstance(obj, pd.Index):
        h.update(b"I")
        _update(h, [str(n) for n in obj.names] + [str(obj.dtype)])
        _update(h, obj.to_numpy())
    elif isinstance(obj, np.ndarray):
        if obj.dtype == object:  # by type and value: None, "None", NaN, "nan", 1 and "1" differ
            _update(h, [f"{type(v).__name__}:{v!r}" for v in obj.ravel().tolist()])
        else:
            a = np.ascontiguousarray(obj)
            h.update(f"A{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        _update(h, {"__dataclass__": type(obj).__qualname__, **{f.name: getattr(obj, f.name)
                                                                for f in dataclasses.fields(obj)}})
    elif hasattr(obj, "model_dump"):  # pydantic parameter sections
        _update(h, obj.model_dump(mode="json"))
    else:
        h.update(json.dumps(obj, sort_keys=True, default=_json_default).encode("utf-8"))
        h.update(b"\0")


def _one_numeric_dtype(df: pd.DataFrame) -> bool:
    """Every column of the same float, integer or boolean NumPy dtype (at least one column)."""
    if df.shape[1] == 0:
        return False
    dtypes = set(df.dtypes)
    if len(dtypes) != 1:
        return False
    dt = next(iter(dtypes))
    return isinstance(dt, np.dtype) and dt.kind in "fiub"


WIDE = 64  # columns from which a one-dtype frame is stored as an array


def _json_default(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, (set, frozenset, tuple)):
        return sorted(map(str, v)) if isinstance(v, (set, frozenset)) else list(v)
    return str(v)


def digest(*parts: Any) -> str:
    """SHA-256 (hex) of the parts, in order (frames by their bytes, not their identity)."""
    h = hashlib.sha256()
    for p in parts:
        _update(h, p)
    return h.hexdigest()


def code_fingerprint(modules: Iterable[str]) -> Optional[str]:
    """Digest of the source of the named ``dlrc_lib`` modules or packages (and of this one), of the
    Python version and of the versions of the numerical libraries, so a changed
    implementation never reuses an old result. ``None`` when a module's file changed after
    this process started (the running code is not the code on disk): do not cache then."""
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256(f"memo format {FORMAT}; python {sys.version}".encode())
    for name in sorted(set(modules) | {__name__}):
        module = importlib.import_module(name)
        path = Path(module.__file__)
        # a package stands for every module in it (e.g. dlrc_lib.stats and its families)
        files = sorted(path.parent.rglob("*.py")) if hasattr(module, "__path__") else [path]
        for f in files:
            if f.stat().st_mtime > _LOADED_AT:
                return None
            h.update(f"{name}:{f.relative_to(path.parent)}".encode() + b"\0" + f.read_bytes())
    for pkg in ("numpy", "scipy", "pandas", "pyarrow", "scikit-learn", "neuroCombat", "statsmodels"):
        try:
            h.update(f"{pkg}={version(pkg)}".encode())
        except PackageNotFoundError:
            h.update(f"{pkg}=none".encode())
    return h.hexdigest()


# ------------------------------------------------------------------ serialisation
class _Writer:
    def __init__(self, root: Path):
        self.root = root
        self.frames: dict[int, str] = {}  # id(frame) -> file (a frame held twice is stored once)
        self.arrays: dict[str, np.ndarray] = {}
        self._keep: list[Any] = []  # keep objects alive so their ids stay unique

    def frame(self, df: pd.DataFrame) -> str:
        if id(df) in self.frames:
            return self.frames[id(df)]
        name = f"frames/{len(self.frames):03d}.parquet"
        out = df.copy(deep=False)
        cols = list(out.columns)
        if any(not isinstance(c, str) for c in cols):
            raise TypeError("memo: frames need string column names")
        (self.root / "frames").mkdir(exist_ok=True)
        if (out.shape[1] >= WIDE and _one_numeric_dtype(out) and not isinstance(out.columns, pd.MultiIndex)
                and len(set(cols)) == len(cols)):
            base = name[:-len(".parquet")]
            np.save(self.root / f"{base}.npy", out.to_numpy(), allow_pickle=False)
            out.iloc[:, :0].to_parquet(self.root / f"{base}.index.parquet", engine="pyarrow", index=True)
            ref: Any = {"npy": f"{base}.npy", "index": f"{base}.index.parquet", "columns": cols,
                        "columns_name": out.columns.name}
        else:
            out.to_parquet(self.root / name, engine="pyarrow", compression="zstd")
            ref = name
        self.frames[id(df)] = ref
        self._keep.append(df)
        return ref

    def encode(self, obj: Any) -> Any:
        if isinstance(obj, np.str_):
            return {"__np__": "str", "v": str(obj)}
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, (np.bool_,)):
            return {"__np__": "bool", "v": bool(obj)}
        if isinstance(obj, (int, np.integer)):
            return int(obj) if isinstance(obj, int) else {"__np__": "int", "v": int(obj)}
        if isinstance(obj, (float, np.floating)):
            return float(obj) if type(obj) is float else {"__np__": "float", "v": float(obj)}
        if isinstance(obj, pd.DataFrame):
            return {"__frame__": self.frame(obj)}
        if isinstance(obj, pd.Series):
            name = obj.name
            col = "__value__"
            return {"__series__": self.frame(obj.rename(col).to_frame()),
                    "name": self.encode(name)}
        if isinstance(obj, np.ndarray):
            if obj.dtype == object:
                raise TypeError("memo: object arrays are not stored")
            key = f"a{len(self.arrays):04d}"
            self.arrays[key] = obj
            return {"__array__": key}
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            cls = type(obj)
            if not cls.__module__.startswith("dlrc_lib."):
                raise TypeError(f"memo: cannot store {cls.__module__}.{cls.__qualname__}")
            return {"__dataclass__": f"{cls.__module__}:{cls.__qualname__}",
                    "fields": {f.name: self.encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v) for v in obj]}
        if isinstance(obj, list):
            return [self.encode(v) for v in obj]
        if isinstance(obj, dict):
            if not all(isinstance(k, str) for k in obj):
                raise TypeError("memo: dict keys must be strings")
            return {"__dict__": {k: self.encode(v) for k, v in obj.items()}}
        raise TypeError(f"memo: cannot store a {type(obj).__name__}")


def _decode(obj: Any, root: Path, arrays: Mapping[str, np.ndarray], frames: dict[str, pd.DataFrame]) -> Any:
    if obj is None or isinstance(obj, (bool, str, int, float)):
        return obj
    if isinstance(obj, list):
        return [_decode(v, root, arrays, frames) for v in obj]
    if "__np__" in obj:
        return {"bool": np.bool_, "int": np.int64, "float": np.float64, "str": np.str_}[obj["__np__"]](obj["v"])
    if "__frame__" in obj or "__series__" in obj:
        ref = obj.get("__frame__") or obj["__series__"]
        name = ref if isinstance(ref, str) else ref["npy"]
        if name not in frames:
            frames[name] = pd.read_parquet(root / name, engine="pyarrow") if isinstance(ref, str) else _read_wide(root, ref)
        df = frames[name]
        if "__frame__" in obj:
            return df
        return df["__value__"].rename(_decode(obj["name"], root, arrays, frames))
    if "__array__" in obj:
        return arrays[obj["__array__"]]
    if "__dataclass__" in obj:
        mod, qual = obj["__dataclass__"].split(":")
        if not mod.startswith("dlrc_lib."):
            raise ValueError(f"memo: refusing to build {mod}.{qual}")
        cls = importlib.import_module(mod)
        for part in qual.split("."):
            cls = getattr(cls, part)
        if not dataclasses.is_dataclass(cls):
            raise ValueError(f"memo: {mod}.{qual} is not a dataclass")
        kwargs = {k: _decode(v, root, arrays, frames) for k, v in obj["fields"].items()}
        init = {f.name for f in dataclasses.fields(cls) if f.init}
        inst = cls(**{k: v for k, v in kwargs.items() if k in init})
        for k, v in kwargs.items():
            if k not in init:
                object.__setattr__(inst, k, v)
        return inst
    if "__tuple__" in obj:
        return tuple(_decode(v, root, arrays, frames) for v in obj["__tuple__"])
    if "__dict__" in obj:
        return {k: _decode(v, root, arrays, frames) for k, v in obj["__dict__"].items()}
    raise ValueError(f"memo: unknown entry {sorted(obj)[:3]}")


def _read_wide(root: Path, ref: Mapping[str, Any]) -> pd.DataFrame:
    values = np.load(root / ref["npy"], allow_pickle=False)
    index = pd.read_parquet(root / ref["index"], engine="pyarrow").index
    columns = pd.Index(list(ref["columns"]), dtype=object, name=ref.get("columns_name"))
    if values.shape != (len(index), len(columns)):
        raise ValueError(f"memo: {ref['npy']} has shape {values.shape}, expected {(len(index), len(columns))}")
    return pd.DataFrame(values, index=index, columns=columns, copy=False)


CHECKSUMS = "checksums.json"


def _member_digests(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != CHECKSUMS:
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def verify_entry(folder: str | os.PathLike) -> None:
    """Raise :class:`DamagedEntry` unless every member recorded in ``checksums.json`` is
    present with the recorded bytes (and nothing unrecorded was added)."""
    root = Path(folder)
    try:
        want = json.loads((root / CHECKSUMS).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DamagedEntry(f"{CHECKSUMS} missing") from None
    except ValueError:
        raise DamagedEntry(f"{CHECKSUMS} unreadable") from None
    have = _member_digests(root)
    lost = sorted(set(want) - set(have))
    if lost:
        raise DamagedEntry(f"member {lost[0]} missing")
    changed = sorted(k for k in want if have[k] != want[k])
    if changed:
        raise DamagedEntry(f"member {changed[0]} differs from its checksum")
    extra = sorted(set(have) - set(want))
    if extra:
        raise DamagedEntry(f"unrecorded member {extra[0]}")


def save_object(obj: Any, folder: str | os.PathLike) -> None:
    """Write ``obj`` (dataclasses of ``dlrc_lib``, frames, arrays, plain data) into ``folder``,
    with ``checksums.json`` (the SHA-256 of every member) written last."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    w = _Writer(root)
    tree = w.encode(obj)
    np.savez(root / "arrays.npz", **w.arrays)
    (root / "object.json").write_text(json.dumps({"format": FORMAT, "object": tree}), encoding="utf-8")
    (root / CHECKSUMS).write_text(json.dumps(_member_digests(root), sort_keys=True), encoding="utf-8")


def load_object(folder: str | os.PathLike, verify: bool = True) -> Any:
    """Inverse of :func:`save_object` (members verified against their checksums first)."""
    root = Path(folder)
    if verify:
        verify_entry(root)
    doc = json.loads((root / "object.json").read_text(encoding="utf-8"))
    if doc.get("format") != FORMAT:
        raise ValueError(f"memo: entry format {doc.get('format')} (expected {FORMAT})")
    with np.load(root / "arrays.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return _decode(doc["object"], root, arrays, {})


# -------------------------------------------------------------------------- cache
class Memo:
    """A folder of cached results: ``Memo(cache_dir, "feature_score").get_or_compute(key, fn)``.

    ``cache_dir=None`` disables caching (``fn`` runs every time). ``hits`` / ``misses``
    count what happened, for a notebook's provenance.
    """

    def __init__(self, cache_dir: Optional[str | os.PathLike], namespace: str, max_entries: int = 32):
        self.root = Path(cache_dir) / "memo" / namespace if cache_dir is not None else None
        self.max_entries = max_entries  # least recently used entries beyond this are removed
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Optional[Path]:
        return self.root / key if self.root is not None else None

    def load(self, key: str) -> tuple[bool, Any]:
        p = self.path(key)
        if p is None or not p.is_dir():
            return False, None
        try:
            value = load_object(p)
        except Exception as exc:  # a damaged or unreadable entry is reported and recomputed
            reason = str(exc) if isinstance(exc, DamagedEntry) else f"unreadable: {exc.__class__.__name__}"
            if p.is_dir():
                warnings.warn(f"memo: damaged entry {p} ({reason}); discarded, it will be computed again",
                              stacklevel=3)
            shutil.rmtree(p, ignore_errors=True)
            return False, None
        try:
            os.utime(p)  # recently used
        except OSError:
            pass
        return True, value

    def save(self, key: str, obj: Any) -> None:
        """Store ``obj`` (atomically). A cache that cannot be written (full disk, read-only
        folder) only costs a warning: the computed value is still returned to the caller."""
        if self.root is None:
            return
        tmp = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{key[:16]}.", suffix=".tmp"))
            os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the entry from a shared cache's group
            save_object(obj, tmp)
            os.rename(tmp, self.root / key)
            tmp = None
        except BaseException as exc:
            # TypeError: an object this cache cannot represent (a programming error);
            # KeyboardInterrupt and the like propagate; anything else (full disk, read-only
            # folder, another process stored the same entry first) leaves the value uncached
            if isinstance(exc, TypeError) or not isinstance(exc, Exception):
                raise
            if not (self.root / key).is_dir():
                warnings.warn(f"memo: could not cache a result in {self.root}: {exc}", stacklevel=3)
            return
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        self._evict()

    def _evict(self, stale_tmp_s: float = 3600.0) -> None:
        def mtime(p: Path) -> int:
            try:
                return p.stat().st_mtime_ns
            except OSError:  # removed meanwhile by another process
                return -1

        now = time.time_ns()
        try:
            listing = list(self.root.iterdir())
        except OSError:
            return
        for p in listing:  # temporary folders of killed runs
            if p.name.startswith(".") and p.name.endswith(".tmp") and 0 <= mtime(p) < now - stale_tmp_s * 1e9:
                shutil.rmtree(p, ignore_errors=True)
        entries = [p for p in listing if not p.name.startswith(".") and p.is_dir()]
        if len(entries) <= self.max_entries:
            return
        entries.sort(key=mtime, reverse=True)
        for p in entries[self.max_entries:]:
            shutil.rmtree(p, ignore_errors=True)

    def get_or_compute(self, key: Optional[str], compute: Callable[[], Any]) -> Any:
        """The cached value of ``key``, else ``compute()`` (stored). ``key=None``: no caching."""
        if key is None or self.root is None:
            self.misses += 1
            return compute()
        found, value = self.load(key)
        if found:
            self.hits += 1
            return value
        self.misses += 1
        value = compute()
        self.save(key, value)
        return value
