"""The study a run analyses: the synthetic twin (generated when missing or stale) or the
user's manifest, validated before anything is extracted."""
from __future__ import annotations

import json
from pathlib import Path

from dlrc_lib.core.io import atomic_write_text, dumps
from dlrc_lib.study.validate import raise_for_problems, validate_manifest
from dlrc_lib.twin.writer import generate_study, study_fingerprint


def prepare_study(params) -> Path:
    """The run's manifest, validated; the twin is (re)generated when missing or stale.

    Twin: ``study.json`` in ``params.twin_dir`` must record the same generator version, seed
    and parameters, else the study is generated again. Both are validated on every call
    (unchanged files from the validation cache, in seconds). Raises
    :class:`DlrcError` listing every error.
    """

    if params.study.source == "manifest":
        manifest = Path(params.study.manifest or "")
        # the run's parameters are checked against the study too (dlrc_lib.study.plan)
        raise_for_problems(manifest, validate_manifest(manifest, params, progress=True, plan=True))
        return manifest

    out = params.twin_dir
    manifest, meta_path = out / "manifest.csv", out / "study.json"
    want = study_fingerprint(params)
    meta = None
    if meta_path.is_file() and manifest.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except ValueError:
            meta = None
    if meta is None or any(meta.get(k) != v for k, v in json.loads(dumps(want)).items()):
        generate_study(params, out)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    # validated on every call: unchanged files come from the validation cache (cheap), and
    # the digests recorded for extraction are those of the files as they are now
    raise_for_problems(manifest, validate_manifest(manifest, params, progress=True))
    if not meta.get("validated"):
        meta["validated"] = True
        atomic_write_text(meta_path, dumps(meta))
    return manifest
