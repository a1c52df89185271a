"""A content-addressed Parquet store of per-case feature vectors.

Every entry is one case (one patient x sequence x mask, or one patient x model for deep
features) identified by a *key*: the SHA-256 of everything that determines its values
(the bytes of the image and mask, the extraction settings, the extractor's version). The
same inputs always give the same key, so a cached entry is reused without recomputation;
changing a setting or a file gives new keys, so stale entries are never returned
(invalidation by key).

Layout under ``<root>/<namespace>/``::

    shards/<kk>/<key>.parquet      one case, written when it finishes (long format: one
                                   row per feature, columns ``feature`` and ``value``;
                                   the key and metadata in the file's schema metadata)
    parts/<schema>.parquet         compacted cases sharing one set of features (wide: one
                                   row per case, one column per feature)
    .lock                          serialises compaction

Writes are atomic: a file is written under a temporary name in the same folder and renamed
into place (``os.replace``), so a run killed at any moment leaves either the complete file
or none. Every file carries the SHA-256 of its content (schema metadata ``dlrc.sha256``),
verified whenever it is read: a damaged file (a flipped byte, a cut, a lost member) is
reported once as a warning, deleted, and its cases count as missing, so they are computed
again (files written before checksums existed are read as they are). A killed run therefore resumes where it stopped: finished cases are found, the
rest are ``missing``. :meth:`FeatureStore.compact` merges the shards into one Parquet file
per column schema (also atomically) so that reading thousands of cached cases is one read.

>>> store = FeatureStore(Path(".dlrc_cache") / "features", namespace="radiomics")
>>> key = FeatureStore.make_key(file_digest(img), file_digest(mask), settings_json, version)
>>> if store.missing([key]):
...     store.put(key, {"original_firstorder_Mean": 3.2}, {"patient_id": "P001"})
>>> store.get([key])          # DataFrame, index = key
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

META_COLUMN = "__meta__"  # JSON text of the entry's metadata (kept apart from features)
KEY_COLUMN = "key"

# file digests live in the core layer (the study's validation records them too)
from dlrc_lib.core.digest import _digest_lock, _digest_memo, file_digest  # noqa: E402,F401
from dlrc_lib.core.errors import DamagedEntry  # noqa: E402,F401  (re-exported: fs.DamagedEntry)


# -------------------------------------------------------------------- checksums
CHECKSUM_KEY = b"dlrc.sha256"


_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_damaged(path: Path, reason: str) -> None:
    """One warning per damaged file and process."""
    import warnings

    with _warned_lock:
        if str(path) in _warned:
            return
        _warned.add(str(path))
    warnings.warn(f"cache: damaged entry {path} ({reason}); discarded, it will be computed again",
                  stacklevel=3)


def table_digest(table: pa.Table) -> str:
    """SHA-256 of a table's columns (names, types, values; schema metadata excluded)."""
    h = hashlib.sha256()
    for name, col in zip(table.column_names, table.columns):
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
            # the item field's name is not kept by Parquet ("item" -> "element")
            kind = f"list<{col.type.value_type}>[{getattr(col.type, 'list_size', -1)}]"
        elif pa.types.is_large_string(col.type):
            kind = "string"
        else:
            kind = str(col.type)
        h.update(f"{name}\0{kind}\0{len(col)}\0".encode("utf-8"))
        if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
            h.update(str(col.null_count).encode())
            values = col.flatten()
            h.update(np.ascontiguousarray(values.to_numpy(zero_copy_only=False)).tobytes())
        elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            for v in col.cast(pa.large_binary()).to_pylist():  # raw bytes: no decoding
                b = b"\xff" if v is None else v
                h.update(len(b).to_bytes(8, "little") + b)
        else:
            h.update(str(col.null_count).encode())
            h.update(np.ascontiguousarray(col.to_numpy(zero_copy_only=False)).tobytes())
    return h.hexdigest()


def _with_checksum(table: pa.Table) -> pa.Table:
    md = dict(table.schema.metadata or {})
    md.pop(CHECKSUM_KEY, None)
    md[CHECKSUM_KEY] = table_digest(table).encode("ascii")
    return table.replace_schema_metadata(md)


def read_checked(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read a store file and verify its checksum (only when every column is read).

    Raises :class:`FileNotFoundError` when it is gone and :class:`DamagedEntry` when it
    cannot be read or its content is not what was written."""
    try:
        table = pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever Arrow says about a damaged file
        raise DamagedEntry(f"unreadable: {exc.__class__.__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}") from None
    want = (table.schema.metadata or {}).get(CHECKSUM_KEY)
    if columns is None and want is not None:
        try:
            have = table_digest(table.replace_schema_metadata({}))
        except Exception as exc:  # noqa: BLE001 - values Arrow cannot even hand over
            raise DamagedEntry(f"unreadable values: {exc.__class__.__name__}") from None
        if have.encode("ascii") != want:
            raise DamagedEntry("checksum mismatch")
    return table


def discard(path: Path, reason: str) -> None:
    """Warn (once) about a damaged file and delete it."""
    warn_damaged(path, reason)
    path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- store
def _atomic_parquet(table: pa.Table, target: Path) -> None:
    """Write ``table`` with its checksum under a temporary name, then rename into place;
    on any failure (a full disk too) no file is left behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    table = _with_checksum(table)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _schema_id(columns: Iterable[str]) -> str:
    return hashlib.sha256("\x1f".join(columns).encode("utf-8")).hexdigest()[:16]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class FeatureStore:
    """Parquet feature store: one namespace (e.g. ``"radiomics"``, ``"deep-ResNet50_2D"``).

    Parameters
    ----------
    root : path
        Folder of all namespaces (``<cache_dir>/features``).
    namespace : str
        Sub-folder for one kind of feature; entries of different namespaces never mix.
    """

    def __init__(self, root: str | os.PathLike, namespace: str):
        if not namespace or "/" in namespace or namespace.startswith("."):
            raise ValueError(f"namespace {namespace!r}: must be a plain folder name")
        self.root = Path(root)
        self.namespace = namespace
        self.dir = self.root / namespace
        self._parts_cache: dict[Path, tuple[tuple[int, int], pd.DataFrame]] = {}

    # ------------------------------------------------------------------ keys
    @staticmethod
    def make_key(*parts: str) -> str:
        """SHA-256 (hex) of the parts, in order (e.g. image digest, mask digest, settings
        JSON, extractor version)."""
        h = hashlib.sha256()
        for part in parts:
            b = str(part).encode("utf-8")
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)
        return h.hexdigest()

    def _shard_path(self, key: str) -> Path:
        return self.dir / "shards" / key[:2] / f"{key}.parquet"

    def _shard_paths(self) -> list[Path]:
        base = self.dir / "shards"
        if not base.exists():
            return []
        return sorted(base.glob("*/*.parquet"))

    def _part_paths(self) -> list[Path]:
        base = self.dir / "parts"
        if not base.exists():
            return []
        return sorted(base.glob("*.parquet"))

    # ----------------------------------------------------------------- write
    def put(self, key: str, features: Mapping[str, float], meta: Mapping[str, Any] | None = None) -> None:
        """Store one case atomically (one Parquet shard, temporary file + rename)."""
        _check_key(key)
        names = [str(n) for n in features]
        if KEY_COLUMN in names or META_COLUMN in names:
            raise ValueError(f"feature names {KEY_COLUMN!r} and {META_COLUMN!r} are reserved")
        values = np.array([np.nan if features[n] is None else float(features[n]) for n in features], dtype=float)
        table = pa.table({"feature": pa.array(names, pa.string()), "value": pa.array(values, pa.float64())})
        table = table.replace_schema_metadata({
            "dlrc.key": key,
            "dlrc.meta": json.dumps(dict(meta or {}), sort_keys=True, default=str),
        })
        _atomic_parquet(table, self._shard_path(key))

    @staticmethod
    def _read_shard(path: Path) -> tuple[str, tuple[str, ...], np.ndarray, str]:
        """(key, feature names, values, meta JSON) of one shard."""
        t = read_checked(path)
        md = t.schema.metadata or {}
        key = md.get(b"dlrc.key", path.stem.encode()).decode()
        meta = md.get(b"dlrc.meta", b"{}").decode()
        names = tuple(t.column("feature").to_pylist())
        values = t.column("value").to_numpy(zero_copy_only=False).astype(float, copy=False)
        return key, names, values, meta

    @staticmethod
    def _frame_from_shards(shards: list[tuple[str, tuple[str, ...], np.ndarray, str]]) -> list[pd.DataFrame]:
        """Wide frames (index key, feature columns, meta column), one per feature schema."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, (_, names, _, _) in enumerate(shards):
            groups.setdefault(names, []).append(i)
        frames = []
        for names, idx in groups.items():
            mat = np.vstack([shards[i][2] for i in idx]) if idx else np.empty((0, len(names)))
            df = pd.DataFrame(mat, columns=list(names),
                              index=pd.Index([shards[i][0] for i in idx], name=KEY_COLUMN))
            df[META_COLUMN] = [shards[i][3] for i in idx]
            frames.append(df)
        return frames

    # ------------------------------------------------------------------ read
    def _read_part(self, path: Path) -> pd.DataFrame:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._parts_cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        df = read_checked(path).to_pandas().set_index(KEY_COLUMN)
        self._parts_cache[path] = (stamp, df)
        return df

    def _part_keys(self, part: Path) -> list[str]:
        """Keys of a compacted part, its checksum verified; a damaged part is discarded."""
        try:
            return self._read_part(part).index.tolist()
        except FileNotFoundError:
            return []
        except DamagedEntry as exc:
            discard(part, str(exc))
            self._parts_cache.pop(part, None)
            return []

    def _shard_ok(self, shard: Path) -> bool:
        """The shard exists and reads back with its checksum; a damaged one is discarded."""
        try:
            self._read_shard(shard)
            return True
        except FileNotFoundError:
            return False
        except DamagedEntry as exc:
            discard(shard, str(exc))
            return False

    def _present(self) -> dict[str, Path]:
        """Key -> the file holding it (a shard wins over a compacted part)."""
        where: dict[str, Path] = {}
        for part in self._part_paths():
            for k in self._part_keys(part):
                where[k] = part
        for shard in self._shard_paths():
            if self._shard_ok(shard):
                where[shard.stem] = shard
        return where

    def keys(self) -> list[str]:
        """Every key in the store, sorted."""
        return sorted(self._present())

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The keys (in the given order, without repeats) that have no entry yet."""
        keys = list(dict.fromkeys(keys))
        present = set()
        for part in self._part_paths():
            present.update(self._part_keys(part))
        out = []
        for k in keys:
            if k not in present and not self._shard_ok(self._shard_path(k)):
                out.append(k)
        return out

    def _rows(self, keys: list[str]) -> pd.DataFrame:
        wanted = list(dict.fromkeys(keys))
        shards = []
        found: set[str] = set()
        for k in wanted:  # shards first: they are the newest
            path = self._shard_path(k)
            if path.exists():
                try:
                    shards.append(self._read_shard(path))
                    found.add(k)
                except FileNotFoundError:  # compacted away meanwhile; found in parts below
                    pass
                except DamagedEntry as exc:
                    discard(path, str(exc))
        frames: list[pd.DataFrame] = self._frame_from_shards(shards)
        rest = [k for k in wanted if k not in found]
        if rest:
            rest_set = set(rest)
            for part in self._part_paths():
                try:
                    df = self._read_part(part)
                except FileNotFoundError:
                    continue
                except DamagedEntry as exc:
                    discard(part, str(exc))
                    continue
                hit = df.index.intersection(pd.Index(sorted(rest_set)))
                if len(hit):
                    frames.append(df.loc[hit])
                    rest_set -= set(hit)
                if not rest_set:
                    break
        if not frames:
            return pd.DataFrame(index=pd.Index([], name=KEY_COLUMN, dtype=str))
        df = pd.concat(frames, axis=0, sort=False) if len(frames) > 1 else frames[0]
        df = df[~df.index.duplicated(keep="first")]
        order = [k for k in wanted if k in df.index]
        df = df.loc[order]
        df.index.name = KEY_COLUMN
        if META_COLUMN in df.columns:  # keep the metadata column last
            df = df[[c for c in df.columns if c != META_COLUMN] + [META_COLUMN]]
        return df

    def get(self, keys: Iterable[str]) -> pd.DataFrame:
        """Features of the given keys (index ``key``, in the given order); rows only for
        keys present. Columns are the union of the rows' features (NaN where a row has no
        such feature)."""
        df = self._rows(list(keys))
        return df.drop(columns=[META_COLUMN], errors="ignore").astype("float64")

    def get_meta(self, keys: Iterable[str]) -> pd.DataFrame:
        """The metadata recorded with :meth:`put` (index ``key``; one column per meta field)."""
        df = self._rows(list(keys))
        if META_COLUMN not in df.columns:
            return pd.DataFrame(index=df.index)
        records = [json.loads(v) for v in df[META_COLUMN]]
        return pd.DataFrame.from_records(records, index=df.index)

    # ---------------------------------------------------------- maintenance
    def compact(self) -> int:
        """Merge all shards into the compacted parts (one file per column schema).

        Atomic: each new part replaces the old one by rename, and shards are deleted only
        after the part holding them is in place; a kill at any point leaves a readable
        store (at worst a case present both as a shard and in a part, which is harmless).
        Returns the number of shards merged.
        """
        with _file_lock(self.dir / ".lock"):
            shards = self._shard_paths()
            if not shards:
                self._remove_stale_tmp()
                return 0
            read: list[tuple[str, tuple[str, ...], np.ndarray, str]] = []
            merged: list[Path] = []
            for shard in shards:
                try:
                    read.append(self._read_shard(shard))
                except FileNotFoundError:
                    continue
                except DamagedEntry as exc:  # damaged on disk: its case is computed again
                    discard(shard, str(exc))
                    continue
                merged.append(shard)
            for new in sorted(self._frame_from_shards(read), key=lambda d: _schema_id(d.columns[:-1])):
                sid = _schema_id(new.columns[:-1])
                target = self.dir / "parts" / f"{sid}.parquet"
                frames = [new]
                if target.exists():
                    try:
                        frames = [read_checked(target).to_pandas().set_index(KEY_COLUMN), new]
                    except DamagedEntry as exc:
                        discard(target, str(exc))
                    except FileNotFoundError:
                        pass
                df = pd.concat(frames, axis=0, sort=False) if len(frames) > 1 else new
                df = df[~df.index.duplicated(keep="last")].sort_index()
                _atomic_parquet(pa.Table.from_pandas(df.reset_index(), preserve_index=False), target)
            for shard in merged:
                shard.unlink(missing_ok=True)
            for sub in (self.dir / "shards").glob("*"):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            self._remove_stale_tmp()
            self._parts_cache.clear()
            return len(merged)

    def delete(self, keys: Iterable[str]) -> int:
        """Remove entries (e.g. to force a recomputation); returns how many were removed."""
        doomed = set(keys)
        n = 0
        with _file_lock(self.dir / ".lock"):
            for k in doomed:
                path = self._shard_path(k)
                if path.exists():
                    path.unlink()
                    n += 1
            for part in self._part_paths():
                try:
                    df = read_checked(part).to_pandas().set_index(KEY_COLUMN)
                except DamagedEntry as exc:
                    discard(part, str(exc))
                    continue
                drop = df.index.isin(list(doomed))
                if drop.any():
                    n += int(drop.sum())
                    keep = df[~drop]
                    if len(keep):
                        _atomic_parquet(pa.Table.from_pandas(keep.reset_index(), preserve_index=False), part)
                    else:
                        part.unlink()
            self._parts_cache.clear()
        return n

    def prune(self, keep: Iterable[str]) -> int:
        """Remove every entry whose key is not in ``keep`` (entries of old settings)."""
        keep = set(keep)
        return self.delete([k for k in self.keys() if k not in keep])

    def _remove_stale_tmp(self, older_than_s: float = 3600.0) -> None:
        """Delete temporary files left by killed writers (old enough not to be in use)."""
        import time

        now = time.time()
        for tmp in self.dir.rglob(".*.tmp"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > older_than_s:
                    tmp.unlink()

    def __repr__(self) -> str:
        return f"FeatureStore(root={str(self.root)!r}, namespace={self.namespace!r})"


def _check_key(key: str) -> None:
    if not isinstance(key, str) or len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
        raise ValueError(f"key {key!r}: expected a lowercase hex digest (FeatureStore.make_key)")
