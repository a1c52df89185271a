"""Radiomics extraction on a local Dask cluster against the local process pool, same cores.

The script starts its own cluster (``LocalCluster``: worker processes with one thread each,
as ``dask worker --nworkers N --nthreads 1``) and extracts the same cases three times, each
into an empty feature store:

1. the local pool (``radiomics.n_jobs = N``);
2. Dask with the workers left as they start (``--raw``): SimpleITK's filters then use as
   many threads as the machine has cores inside every worker, and PyRadiomics logs;
3. (``--raw``) Dask with only the local pool's set-up (one ITK thread, quiet logging);
4. Dask as dlrc runs it (``client.run(_dask_worker_init)``): that set-up, the nanny's
   ``MALLOC_TRIM_THRESHOLD_`` undone (with it glibc maps and unmaps every block over 128 KiB:
   ~40x the page faults) and the worker's statistical profiler stopped.

Every worker imports PyRadiomics and dlrc_lib before the clock starts (a cluster's one-off
start cost, which the local pool's forked workers inherit for free).

Reported: wall seconds, the CPU seconds of the worker processes (steadier than wall times
when other jobs share the cores), the ITK threads each worker uses before the set-up, and the
ratio Dask / local (target <= 1.10). Other processes sharing the cores distort the wall
times: state the load next to any number.

    python benchmarks/dask_radiomics.py --params params/quick.yaml --cases 60 --workers 2 --raw
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _itk_threads() -> int:
    import SimpleITK as sitk

    return int(sitk.ProcessObject.GetGlobalDefaultNumberOfThreads())


def _cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _noop() -> None:
    return None


def _study(params_file: str, n_cases: int):
    from dlrc_lib.core.config import load_params
    from dlrc_lib.study.manifest import load_study
    from dlrc_lib.twin.prepare import prepare_study

    params = load_params(params_file)
    study = load_study(prepare_study(params), params)
    seqs = params.radiomics.sequences
    n_patients = max(1, -(-n_cases // len(seqs)))
    study = study.iloc[:n_patients].copy()
    for col in [c for c in study.columns if c.startswith(("mask_r2_", "mask_rep_", "mask2_", "mask_repeat_"))]:
        study[col] = None  # reader-1 masks only
    return params, study, seqs


def _extract(params, study, seqs, cache: Path, **kw):
    from dlrc_lib.features.radiomics import extract_radiomics

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = extract_radiomics(study, params.radiomics.settings, cache, sequences=seqs, masks=["reader1"],
                            progress=False, **kw)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    n = int((res.cases["status"] == "computed").sum())
    return {"wall_s": round(wall, 1), "cases": n, "children_cpu_s": round(cpu, 1)}


def _itk_only(dask_worker=None) -> None:
    from dlrc_lib.features.radiomics import _worker_init

    _worker_init()


def _warm(dask_worker=None) -> None:
    import dlrc_lib.features.radiomics  # noqa: F401  (what every worker imports for its first case)
    import radiomics.featureextractor  # noqa: F401


def _dask_run(params, study, seqs, cache: Path, workers: int, setup: str):
    """``setup``: raw (workers as started), itk (the pool's set-up only), dlrc (what dlrc runs)."""
    from dask.distributed import Client, LocalCluster

    import dlrc_lib.features.radiomics as R

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    try:
        itk = sorted(client.run(_itk_threads).values())
        client.run(_warm)  # imports are a one-off start cost of a cluster, not of each extraction
        real_init = R._dask_worker_init
        R._dask_worker_init = {"raw": _noop, "itk": _itk_only, "dlrc": real_init}[setup]
        cpu0 = sum(client.run(_cpu_self).values())
        try:
            out = _extract(params, study, seqs, cache, dask_scheduler=cluster.scheduler_address)
        finally:
            R._dask_worker_init = real_init
        # the workers are not this process's children: their own CPU seconds, summed
        out["children_cpu_s"] = round(sum(client.run(_cpu_self).values()) - cpu0, 1)
        out["itk_threads_per_worker_at_start"] = itk
        out["itk_threads_per_worker_during"] = sorted(client.run(_itk_threads).values())
        return out
    finally:
        client.close()
        cluster.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params/quick.yaml")
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--raw", action="store_true",
                    help="also time Dask without the worker set-up, and with the ITK/logging part only")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args(argv)
    params, study, seqs = _study(args.params, args.cases)
    tmp = Path(tempfile.mkdtemp(prefix="dlrc-dask-bench-"))
    print(f"{len(study)} patients x {len(seqs)} sequences, {args.workers} workers, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    rows = {}
    try:
        rows["local"] = _extract(params, study, seqs, tmp / "local", n_jobs=args.workers)
        print("local pool:", json.dumps(rows["local"]))
        if args.raw:
            rows["dask_raw"] = _dask_run(params, study, seqs, tmp / "raw", args.workers, "raw")
            print("dask, workers as started:", json.dumps(rows["dask_raw"]))
            rows["dask_itk"] = _dask_run(params, study, seqs, tmp / "itk", args.workers, "itk")
            print("dask, ITK threads + logging set up, profiler on:", json.dumps(rows["dask_itk"]))
        rows["dask"] = _dask_run(params, study, seqs, tmp / "dask", args.workers, "dlrc")
        print("dask, dlrc's worker set-up (profiler off):", json.dumps(rows["dask"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for name in ("dask_raw", "dask_itk", "dask"):
        if name in rows:
            rows[name]["ratio_to_local"] = round(rows[name]["wall_s"] / rows["local"]["wall_s"], 2)
            print(f"{name}: {rows[name]['wall_s']} s = {rows[name]['ratio_to_local']} x local "
                  f"({rows['local']['wall_s']} s); load now {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
