"""Atomic writes and deterministic JSON: the only way files are written by the package.

A write goes to a temporary file in the target's folder, which is then renamed into place,
so an interrupted process never leaves a half-written file behind.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


_UMASK = os.umask(0)
os.umask(_UMASK)


def public_mode(fd_or_path) -> None:
    """Give a temporary file (``mkstemp`` makes it 0600) the mode a plain ``open`` would:
    0666 less the process umask, so a report stays readable by the people it is for."""
    mode = 0o666 & ~_UMASK
    if isinstance(fd_or_path, int):
        os.fchmod(fd_or_path, mode)
    else:
        os.chmod(fd_or_path, mode)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        public_mode(fd)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj: Any) -> str:
    """Deterministic JSON (sorted keys, NaN -> null)."""
    return json.dumps(jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def read_yaml_mapping(path: str | os.PathLike, what: str, error: type[Exception]) -> dict:
    """A YAML file whose top level is a mapping; ``error`` (one line naming the file) when it
    is missing, not YAML or not a mapping (``what`` says what the mapping should hold)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: {what} file not found")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise error(f"{p}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise error(f"{p}: expected a mapping of {what} keys at the top level")
    return raw
