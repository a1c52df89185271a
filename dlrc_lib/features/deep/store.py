"""The feature store specialised for 2048-wide deep feature vectors.

:class:`~dlrc_lib.features.store.FeatureStore` writes one Parquet column per feature. With
2048 features that is ~0.1-0.2 s per case to write and as much to read (Parquet metadata
per column), more than a ResNet50 forward pass. :class:`VectorStore` keeps everything else
of the store (keys, one atomic shard per case, resumability, compaction into one part,
locking, checksums verified on read) and packs the vector into a single fixed-size
``list<float32>`` column; ``get`` returns the same frame (index key, one column per
feature) as the parent class.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from dlrc_lib.features import store as fs

VECTOR_COLUMN = "__vector__"


class VectorStore(fs.FeatureStore):
    """Feature store whose entries are fixed-length float32 vectors named ``prefix<i>``."""

    def __init__(self, root, namespace: str, n_features: int, prefix: str = "F"):
        super().__init__(root, namespace)
        self.n_features = n_features
        self.names = [f"{prefix}{i}" for i in range(n_features)]

    def put_vector(self, key: str, vector: np.ndarray, meta: Mapping[str, Any] | None = None) -> None:
        """Store one case atomically (one shard; temporary file + rename)."""
        fs._check_key(key)
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        if v.size != self.n_features:
            raise ValueError(f"vector of {v.size} values, expected {self.n_features}")
        table = pa.table({
            fs.KEY_COLUMN: pa.array([key], pa.string()),
            VECTOR_COLUMN: pa.FixedSizeListArray.from_arrays(pa.array(v), self.n_features),
            fs.META_COLUMN: pa.array([json.dumps(dict(meta or {}), sort_keys=True, default=str)], pa.string()),
        })
        fs._atomic_parquet(table, self._shard_path(key))

    def put(self, key: str, features: Mapping[str, float], meta: Mapping[str, Any] | None = None) -> None:
        """As :meth:`FeatureStore.put`: ``features`` must hold exactly the store's names."""
        if list(features) != self.names:
            raise ValueError(f"features must be {self.names[0]}..{self.names[-1]} in order")
        self.put_vector(key, np.fromiter(features.values(), dtype=np.float32, count=self.n_features), meta)

    def _vectors(self, table: pa.Table) -> np.ndarray:
        col = table.column(VECTOR_COLUMN).combine_chunks()
        return np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, self.n_features)

    def _table(self, path: Path) -> pa.Table | None:
        """A shard or part read back with its checksum verified (parts cached by stamp);
        None when it is gone or damaged (a damaged file is reported once and deleted)."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        cache = self.__dict__.setdefault("_tables", {})
        hit = cache.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            table = fs.read_checked(path)
        except FileNotFoundError:
            return None
        except fs.DamagedEntry as exc:
            fs.discard(path, str(exc))
            cache.pop(path, None)
            return None
        if path.parent.name == "parts":
            cache[path] = (stamp, table)
        return table

    def _part_keys(self, part: Path) -> list[str]:
        table = self._table(part)
        return [] if table is None else table.column(fs.KEY_COLUMN).to_pylist()

    def _shard_ok(self, shard: Path) -> bool:
        return self._table(shard) is not None

    def get_array(self, keys: Iterable[str]) -> tuple[list[str], np.ndarray]:
        """Keys present (in the given order, without repeats) and their vectors as an
        ``(n, n_features)`` float32 array (read with Arrow, no per-row Python objects)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, np.ndarray] = {}
        for k in wanted:  # shards first: they are the newest
            path = self._shard_path(k)
            if path.exists():
                table = self._table(path)
                if table is not None:
                    found[k] = self._vectors(table)[0]
        rest = [k for k in wanted if k not in found]
        for part in self._part_paths() if rest else []:
            table = self._table(part)
            if table is None:
                continue
            index = {k: i for i, k in enumerate(table.column(fs.KEY_COLUMN).to_pylist())}
            hit = [k for k in rest if k in index]
            if hit:
                rows = self._vectors(table.take(pa.array([index[k] for k in hit])))
                found.update(zip(hit, rows))
                rest = [k for k in rest if k not in index]
            if not rest:
                break
        order = [k for k in wanted if k in found]
        arr = np.stack([found[k] for k in order]) if order else np.zeros((0, self.n_features), np.float32)
        return order, arr

    def _schema(self) -> pa.Schema:
        return pa.schema([(fs.KEY_COLUMN, pa.string()),
                          (VECTOR_COLUMN, pa.list_(pa.float32(), self.n_features)),
                          (fs.META_COLUMN, pa.string())])

    def _part_target(self) -> Path:
        return self.dir / "parts" / f"{fs._schema_id([VECTOR_COLUMN])}.parquet"

    def _merge_into_part(self, new: pa.Table) -> None:
        """Under the lock: part := part + new (newest entry of a key wins), atomically."""
        schema = self._schema()
        target = self._part_target()
        old = self._table(target)
        parts = [old.replace_schema_metadata({}).cast(schema)] if old is not None else []
        table = pa.concat_tables(parts + [new.select(schema.names).cast(schema)])
        keys = table.column(fs.KEY_COLUMN).to_pylist()
        last = {k: i for i, k in enumerate(keys)}
        order = sorted(last)
        fs._atomic_parquet(table.take(pa.array([last[k] for k in order])), target)
        self._parts_cache.clear()

    def absorb(self, keys: list[str], vectors: np.ndarray, metas: list[Mapping[str, Any]]) -> None:
        """Compaction of entries just written by this process: their values (still in memory)
        go into the part file, then their shards are removed - without reading the shards
        back. Same guarantees as :meth:`compact`."""
        if not keys:
            return
        v = np.asarray(vectors, dtype=np.float32).reshape(len(keys), self.n_features)
        new = pa.table({
            fs.KEY_COLUMN: pa.array(keys, pa.string()),
            VECTOR_COLUMN: pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), self.n_features),
            fs.META_COLUMN: pa.array([json.dumps(dict(m), sort_keys=True, default=str) for m in metas], pa.string()),
        })
        with fs._file_lock(self.dir / ".lock"):
            self._merge_into_part(new)
            for k in keys:
                self._shard_path(k).unlink(missing_ok=True)
            self._remove_empty_shard_dirs()

    def _remove_empty_shard_dirs(self) -> None:
        for sub in (self.dir / "shards").glob("*"):
            try:
                sub.rmdir()
            except OSError:
                pass

    def compact_leftovers(self) -> int:
        """:meth:`compact` when shards are lying around (an interrupted extraction); 0 otherwise."""
        base = self.dir / "shards"
        if not base.is_dir() or not any(base.glob("*/*.parquet")):
            return 0
        return self.compact()

    def compact(self) -> int:
        """Merge the shards into one part file (Arrow-native; same guarantees as
        :meth:`FeatureStore.compact`: atomic replace, shards removed only afterwards)."""
        with fs._file_lock(self.dir / ".lock"):
            shards = self._shard_paths()
            if not shards:
                return 0
            tables, merged = [], []
            for shard in shards:
                table = self._table(shard)  # a damaged shard is reported and deleted
                if table is not None:
                    tables.append(table.replace_schema_metadata({}))
                    merged.append(shard)
            if not tables:
                return 0
            self._merge_into_part(pa.concat_tables([t.select(self._schema().names).cast(self._schema())
                                                    for t in tables]))
            for shard in merged:
                shard.unlink(missing_ok=True)
            self._remove_empty_shard_dirs()
            return len(merged)

    def get(self, keys: Iterable[str]) -> pd.DataFrame:
        found, arr = self.get_array(keys)
        return pd.DataFrame(arr.astype(np.float64), index=pd.Index(found, name=fs.KEY_COLUMN), columns=self.names)
