"""``dlrc extract``: fill the feature store ahead of (or instead of) a notebook run.

``dlrc extract --params params/paper.yaml`` extracts the radiomics features of every
patient x sequence (reader-1 masks, and the reader-2 / repeat masks where the study has
them) and the deep features of every configured network, into ``<cache_dir>/features``.
The notebooks then read everything from the cache. ``--what radiomics`` or ``--what deep``
restricts it to one kind. An interrupted extraction resumes where it stopped.
"""
from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from dlrc_lib.core.config import load_params
from dlrc_lib.core.errors import DlrcError


def _study(params):
    from dlrc_lib.study.manifest import load_study
    from dlrc_lib.twin.prepare import prepare_study

    manifest = prepare_study(params)
    return manifest, load_study(manifest, params)


def extract_radiomics_cli(params, study: pd.DataFrame, out=sys.stdout) -> pd.DataFrame:
    """Radiomics part of ``dlrc extract``: every mask the study has; prints a summary and
    every failed case; returns the failures table."""
    from dlrc_lib.features.radiomics import MASK_COLUMNS, extract_radiomics

    r = params.radiomics
    masks = [m for m in MASK_COLUMNS if m == "reader1" or any(
        f"{MASK_COLUMNS[m]}{s}" in study.columns and study[f"{MASK_COLUMNS[m]}{s}"].notna().any()
        for s in r.sequences)]
    res = extract_radiomics(study, r.settings, params.cache_dir, sequences=r.sequences, masks=masks,
                            n_jobs=r.n_jobs, dask_scheduler=r.dask_scheduler, progress=r.progress)
    print(f"radiomics ({r.settings}, {res.n_workers} workers, {res.wall_seconds:.1f} s):", file=out)
    print(res.summary().to_string(index=False), file=out)
    print(f"cache: {res.cache_line()}", file=out)
    if len(res.failures):
        print(f"{len(res.failures)} case(s) could not be extracted; {len(res.lost)} patient(s) will have no "
              "radiomics features:", file=out)
        for f in res.failures.itertuples():
            print(f"  patient {f.patient_id}, {f.sequence} ({f.mask}), file {f.file}: {f.reason}", file=out)
    return res.failures


def extract_deep_cli(params, study: pd.DataFrame, out=sys.stdout) -> bool:
    """Deep part of ``dlrc extract``."""
    from dlrc_lib.features.deep import extract_raters, extract_study

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
    return True


def cli_extract(args: argparse.Namespace) -> int:
    """``dlrc extract --params P [--what radiomics deep]``."""
    params = load_params(args.params)
    what = list(dict.fromkeys(getattr(args, "what", None) or ["radiomics", "deep"]))
    manifest, study = _study(params)
    print(f"dlrc extract: {len(study)} patients from {manifest}; cache {params.cache_dir}")
    if "radiomics" in what:
        extract_radiomics_cli(params, study)
    if "deep" in what:
        ok = extract_deep_cli(params, study)
        if not ok and what == ["deep"]:
            raise DlrcError("deep features requested but dlrc_lib.features.deep is not available")
    return 0
