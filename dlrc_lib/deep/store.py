"""The feature store specialised for 2048-wide deep feature vectors.

:class:`~dlrc_lib.featurestore.FeatureStore` writes one Parquet column per feature. With
2048 features that is ~0.1-0.2 s per case to write and as much to read (Parquet metadata
per column), more than a ResNet50 forward pass. :class:`VectorStore` keeps everything else
of the store (keys, one atomic shard per case, resumability, compaction into one part,
locking) and packs the vector into a single fixed-size ``list<float32>`` column; ``get``
returns the same frame (index key, one column per feature) as the parent class.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from .. import featurestore as fs

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

    def get_array(self, keys: Iterable[str]) -> tuple[list[str], np.ndarray]:
        """Keys present (in the given order) and their vectors as an ``(n, n_features)`` array."""
        df = self._rows(list(keys))
        if VECTOR_COLUMN not in df.columns or not len(df):
            return [], np.zeros((0, self.n_features), dtype=np.float32)
        arr = np.stack([np.asarray(v, dtype=np.float32) for v in df[VECTOR_COLUMN]])
        return list(df.index), arr

    def get(self, keys: Iterable[str]) -> pd.DataFrame:
        found, arr = self.get_array(keys)
        return pd.DataFrame(arr.astype(np.float64), index=pd.Index(found, name=fs.KEY_COLUMN), columns=self.names)
