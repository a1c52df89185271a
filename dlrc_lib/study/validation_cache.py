"""The validation cache (``<cache_dir>/validation/<manifest>.json``): per patient, the problems
found and the digests, keyed by every file's path, size, modification and change time and inode
(and the mask label and :data:`~dlrc_lib.study.file_checks.VALIDATOR_VERSION`); and
:func:`check_study_files`, which checks the patients the cache cannot answer for, in parallel."""
from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from dlrc_lib.core.io import atomic_write_text
from dlrc_lib.core.processes import worker_pool
from dlrc_lib.study.file_checks import VALIDATOR_VERSION, Problem, check_patient_files

# results of the last validation in this process: manifest (resolved) -> {(pid, column): digest}
_LAST: dict[str, dict[tuple[str, str], str]] = {}
_LAST_LOCK = threading.Lock()


def last_digests(manifest: str | Path) -> Optional[dict[tuple[str, str], str]]:
    """``{(patient, column): sha256}`` of the last validation of ``manifest`` in this process."""
    with _LAST_LOCK:
        d = _LAST.get(str(Path(manifest).resolve()))
    return dict(d) if d is not None else None



# ------------------------------------------------------------------------- cache
def _stamp(path: Path) -> list:
    """What identifies a file's version without reading it (size, mtime, ctime, inode);
    a folder: every file below it."""
    try:
        if path.is_dir():
            return [[str(q.relative_to(path))] + _stamp(q) for q in sorted(path.rglob("*")) if q.is_file()]
        st = path.stat()
    except OSError:
        return ["missing"]
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def job_key(job: tuple) -> str:
    pid, base, entries, label = job
    stamps = []
    for col, value in entries:
        p = Path(value) if Path(value).is_absolute() else Path(base) / value
        stamps.append([col, value, os.path.abspath(p), _stamp(p)])
    text = json.dumps([VALIDATOR_VERSION, pid, label, stamps], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ValidationCache:
    """Per-manifest JSON file of ``{job key: {"problems": [...], "digests": {...}}}`` with a
    checksum of its content; a damaged file is ignored (and rewritten)."""

    def __init__(self, cache_dir: Optional[str | os.PathLike], manifest: Path):
        name = hashlib.sha256(str(manifest.resolve()).encode("utf-8")).hexdigest()[:24]
        self.path = Path(cache_dir) / "validation" / f"{name}.json" if cache_dir is not None else None
        self.entries: dict[str, Any] = {}
        if self.path is not None and self.path.is_file():
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
                body = json.dumps(doc["entries"], sort_keys=True)
                if doc.get("version") != VALIDATOR_VERSION:
                    raise ValueError("old version")
                if hashlib.sha256(body.encode("utf-8")).hexdigest() != doc.get("sha256"):
                    warnings.warn(f"validation cache {self.path}: checksum mismatch, ignored (all files are "
                                  "checked again)", stacklevel=3)
                else:
                    self.entries = doc["entries"]
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
                if not (isinstance(exc, ValueError) and str(exc) == "old version"):
                    warnings.warn(f"validation cache {self.path}: unreadable ({exc.__class__.__name__}), ignored "
                                  "(all files are checked again)", stacklevel=3)
                self.entries = {}

    def get(self, key: str) -> Optional[tuple[list[Problem], dict[str, str]]]:
        e = self.entries.get(key)
        if e is None:
            return None
        return [Problem(*p) for p in e["problems"]], dict(e["digests"])

    def save(self, results: dict[str, tuple[list[Problem], dict[str, str]]]) -> None:
        if self.path is None:
            return
        entries = {k: {"problems": [[p.severity, p.patient, p.where, p.message] for p in probs],
                       "digests": dig} for k, (probs, dig) in sorted(results.items())}
        body = json.dumps(entries, sort_keys=True)
        doc = {"version": VALIDATOR_VERSION, "sha256": hashlib.sha256(body.encode("utf-8")).hexdigest(),
               "entries": entries}
        try:
            atomic_write_text(self.path, json.dumps(doc, sort_keys=True))
        except OSError as exc:  # a cache that cannot be written only costs time next time
            warnings.warn(f"validation cache {self.path}: not written ({exc.strerror or exc})", stacklevel=3)


@dataclass
class FilesReport:
    problems: list[Problem] = field(default_factory=list)
    digests: dict[tuple[str, str], str] = field(default_factory=dict)
    from_cache: int = 0
    checked: int = 0


def check_study_files(manifest: Path, jobs: list[tuple], *, cache_dir: Optional[str | os.PathLike],
                      n_jobs: int, progress: bool) -> FilesReport:
    """Run :func:`check_patient_files` on every job not in the cache; remember the digests."""
    cache = ValidationCache(cache_dir, manifest)
    keys = [job_key(j) for j in jobs]
    results: dict[str, tuple[list[Problem], dict[str, str]]] = {}
    todo: list[int] = []
    report = FilesReport()
    for i, k in enumerate(keys):
        hit = cache.get(k)
        if hit is None:
            todo.append(i)
        else:
            results[k] = hit
    report.from_cache = len(jobs) - len(todo)
    report.checked = len(todo)
    fresh = _run_jobs(check_patient_files, [jobs[i] for i in todo], n_jobs, progress)
    for i, res in zip(todo, fresh):
        results[keys[i]] = res
    for job, k in zip(jobs, keys):
        probs, dig = results[k]
        report.problems += probs
        for col, d in dig.items():
            report.digests[(str(job[0]), col)] = d
    cache.save(results)
    with _LAST_LOCK:
        _LAST[str(manifest.resolve())] = dict(report.digests)
    return report


def _run_jobs(func, jobs: list, n_jobs: int, progress: bool) -> list:
    from tqdm.auto import tqdm

    n_jobs = n_jobs or os.cpu_count() or 1
    out: list = []
    bar = tqdm(total=len(jobs), desc="validate: patients", unit="patient", disable=not progress or not jobs)
    if n_jobs == 1 or len(jobs) < 16:
        for job in jobs:
            out.append(func(job))
            bar.update()
    else:
        with worker_pool(n_jobs) as ex:
            for res in ex.map(func, jobs, chunksize=8):
                out.append(res)
                bar.update()
    bar.close()
    return out
