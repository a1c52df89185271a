"""``dlrc extract``: fill the feature store ahead of (or instead of) a notebook run.

``dlrc extract --params params/paper.yaml`` extracts the radiomics features of every
patient x sequence (reader-1 masks, and the reader-2 / repeat masks where the study has
them) and the deep features of every configured network, into ``<cache_dir>/features``.
The notebooks then read everything from the cache. ``--what radiomics`` or ``--what deep``
restricts it to one kind. An interrupted extraction resumes where it stopped.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

from dlrc_lib.core.io import atomic_write_text
from dlrc_lib.features.radiomics import MASK_COLUMNS, extract_radiomics
from dlrc_lib.study.validate import load_validated_study
from dlrc_lib.twin.prepare import prepare_study


def load_study_for(params) -> tuple[Path, pd.DataFrame]:
    """The study of a parameter file (the twin generated when missing), validated."""
    manifest = prepare_study(params)
    return manifest, load_validated_study(manifest, params)


def extract_radiomics_cli(params, study: pd.DataFrame, out=sys.stdout, tables: Path | None = None) -> pd.DataFrame:
    """Radiomics part of ``dlrc extract``: every mask the study has; prints a summary and
    every failed case; returns the failures table. With ``tables``, the feature table of each
    mask role (``radiomics_<role>.csv``) and the failures are written there too."""
    r = params.radiomics
    masks = [m for m in MASK_COLUMNS if m == "reader1" or any(
        f"{MASK_COLUMNS[m]}{s}" in study.columns and study[f"{MASK_COLUMNS[m]}{s}"].notna().any()
        for s in r.sequences)]
    res = extract_radiomics(study, r.settings, params.cache_dir, sequences=r.sequences, masks=masks,
                            n_jobs=r.n_jobs, dask_scheduler=r.dask_scheduler, progress=r.progress,
                            mask_label=params.study.mask_label)
    print(f"radiomics ({r.settings}, {res.n_workers} workers, {res.wall_seconds:.1f} s):", file=out)
    print(res.summary().to_string(index=False), file=out)
    print(f"cache: {res.cache_line()}", file=out)
    if len(res.failures):
        print(f"{len(res.failures)} case(s) could not be extracted; {len(res.lost)} patient(s) will have no "
              "radiomics features:", file=out)
        for f in res.failures.itertuples():
            print(f"  patient {f.patient_id}, {f.sequence} ({f.mask}), file {f.file}: {f.reason}", file=out)
    if tables is not None:
        for role, frame in res.by_mask.items():
            _write_table(tables / f"radiomics_{role}.csv", frame)
        _write_table(tables / "radiomics_failures.csv", res.failures, index=False)
    return res.failures


def _write_table(path: Path, frame: pd.DataFrame, index: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, frame.to_csv(index=index, lineterminator="\n"))


def extract_deep_cli(params, study: pd.DataFrame, out=sys.stdout, tables: Path | None = None) -> bool:
    """Deep part of ``dlrc extract`` (with ``tables``: ``deep_<model>.csv`` per network there)."""
    from dlrc_lib.features.deep import extract_raters, extract_study  # deferred: imports torch

    t0 = time.perf_counter()
    warn = lambda msg: print(f"warning: {msg}", file=sys.stderr)  # noqa: E731
    frames = extract_study(study, params.deep, params.cache_dir, params.seed, warn=warn,
                           progress=params.radiomics.progress)
    # the re-segmented patients' reader-2 and repeat masks too (notebook 04's ICC filter)
    raters = extract_raters(study, params.deep, params.cache_dir, params.seed, warn=warn,
                            progress=params.radiomics.progress)
    shapes = ", ".join(f"{m} {df.shape[0]}x{df.shape[1]}" for m, df in frames.items())
    n_icc = max((len(r["r2"]) for r in raters.values()), default=0)
    print(f"deep features ({time.perf_counter() - t0:.1f} s): {shapes}; "
          f"reader-2/repeat masks of {n_icc} patients", file=out)
    if tables is not None:
        for model, frame in frames.items():
            _write_table(tables / f"deep_{model}.csv", frame)
    return True
