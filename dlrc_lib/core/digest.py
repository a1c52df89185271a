"""SHA-256 of the files a study is made of (images, masks, DICOM folders).

Used by validation (which records the digests in the study table) and by the feature
store (whose cache keys are built from them).
"""
from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

_digest_memo: dict[tuple[int, int, int, int, int], str] = {}
_digest_lock = threading.Lock()


# --------------------------------------------------------------------------- digests
def _hash_file(path: Path, h: "hashlib._Hash") -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes; for a directory, of all files below it.

    A directory's digest covers every file's relative path and bytes, in sorted order.
    Results are memoised per process on ``(device, inode, size, mtime, ctime)``, so an unchanged
    file is hashed once.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(2, "file not found", str(path)) from None
    p = Path(path)
    # the file itself (device and inode: no path resolution, links included) and its version
    memo_key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if not stat.S_ISDIR(st.st_mode):
        with _digest_lock:
            cached = _digest_memo.get(memo_key)
        if cached is not None:
            return cached
        h = hashlib.sha256()
        _hash_file(p, h)
        digest = h.hexdigest()
        with _digest_lock:
            _digest_memo[memo_key] = digest
        return digest
    h = hashlib.sha256()
    for sub in sorted(q for q in p.rglob("*") if q.is_file()):
        h.update(sub.relative_to(p).as_posix().encode("utf-8") + b"\0")
        h.update(file_digest(sub).encode("ascii"))
    return h.hexdigest()


def remember(path: Path, st: os.stat_result, digest: str) -> None:
    """Record the digest of a file read elsewhere (its bytes, as they were at ``st``)."""
    with _digest_lock:
        _digest_memo[(str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)] = digest
