"""Radiomics and deep features on a real Dask cluster against the local run, same cores.

Starts a cluster as one would on any machine: a ``dask scheduler`` process and a
``dask worker --nworkers N --nthreads 1`` process (its nanny and N worker processes), from
their command lines, talking over TCP. Then, on the same cases, each time into an empty
feature store and in turns (local, Dask, local, Dask, ...):

- radiomics: the local process pool (``radiomics.n_jobs = N``) against
  ``radiomics.dask_scheduler`` (one task per case);
- deep features: one process with N torch threads (what ``dlrc run`` does here) against
  ``deep.dask_scheduler`` (one task per batch of cases, each worker building the networks once,
  torch on its share of the cores), on freshly restarted workers, so that both build the
  networks; ``dask_warm_s`` is a second extraction on the same workers, which keep them.

Every worker imports PyRadiomics, torch and dlrc_lib before the clocks start (a cluster's
one-off start cost). Reported per repeat: wall seconds of each, and the ratio Dask / local
pair by pair (targets: radiomics <= 1.10, deep <= 1.15); the median ratio of the pairs is the
result. Other processes sharing the cores distort wall times: the load is printed.

    python benchmarks/dask_cluster.py --params params/quick.yaml --cases 60 --patients 12 --repeats 2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def _warm() -> None:
    import dlrc_lib.features.deep.extract  # noqa: F401
    import dlrc_lib.features.radiomics  # noqa: F401
    import radiomics.featureextractor  # noqa: F401
    import torch  # noqa: F401


def start_cluster(workers: int, folder: Path) -> tuple[str, list[subprocess.Popen]]:
    """``dask scheduler`` + ``dask worker`` processes; the scheduler's address."""
    dask = Path(sys.executable).parent / "dask"
    sched_file = folder / "scheduler.json"
    log = open(folder / "cluster.log", "w")
    procs = [subprocess.Popen([str(dask), "scheduler", "--scheduler-file", str(sched_file), "--port", "0",
                               "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT)]
    for _ in range(300):
        if sched_file.is_file():
            break
        time.sleep(0.1)
    procs.append(subprocess.Popen([str(dask), "worker", "--scheduler-file", str(sched_file), "--nworkers",
                                   str(workers), "--nthreads", "1", "--no-dashboard", "--memory-limit", "0",
                                   "--local-directory", str(folder / "workers")],
                                  stdout=log, stderr=subprocess.STDOUT))
    address = json.loads(sched_file.read_text())["address"]
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(workers, timeout=120)
        client.run(_warm)
    return address, procs


def stop_cluster(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def _study(params_file: str, n_patients: int):
    from dlrc_lib.core.config import load_params
    from dlrc_lib.study.manifest import load_study
    from dlrc_lib.twin.prepare import prepare_study

    params = load_params(params_file)
    study = load_study(prepare_study(params), params).iloc[:n_patients].copy()
    for col in [c for c in study.columns if c.startswith(("mask_r2_", "mask_rep_"))]:
        study[col] = None  # reader-1 masks only
    return params, study


def restart_workers(address: str, workers: int) -> None:
    """Fresh worker processes (no network built yet), imports done before the clock starts."""
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.restart()
        client.wait_for_workers(workers, timeout=120)
        client.run(_warm)


def radiomics_once(params, study, cache: Path, workers: int, address: str | None) -> float:
    from dlrc_lib.features.radiomics import extract_radiomics

    t0 = time.perf_counter()
    res = extract_radiomics(study, params.radiomics.settings, cache, sequences=params.radiomics.sequences,
                            masks=["reader1"], progress=False, n_jobs=workers, dask_scheduler=address)
    wall = time.perf_counter() - t0
    assert int((res.cases["status"] == "computed").sum()) == len(study) * len(params.radiomics.sequences)
    return wall


def deep_once(params, study, cache: Path, workers: int, address: str | None) -> float:
    import torch

    from dlrc_lib.features.deep.extract import extract_study

    deep = params.deep.model_copy(update={"dask_scheduler": address or "local", "device": "cpu",
                                          "weights": "random"})
    torch.set_num_threads(workers)
    t0 = time.perf_counter()
    extract_study(study, deep, cache, params.seed, sequences=params.radiomics.sequences, progress=False)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params/quick.yaml")
    ap.add_argument("--cases", type=int, default=60, help="radiomics cases (patients x sequences)")
    ap.add_argument("--patients", type=int, default=12, help="deep: patients (x sequences x models)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip", choices=["radiomics", "deep"], help="leave one part out")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args(argv)
    os.environ.setdefault("DLRC_OFFLINE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="dlrc-dask-cluster-"))
    params, _ = _study(args.params, 1)
    n_seq = len(params.radiomics.sequences)
    rad_study = _study(args.params, max(1, -(-args.cases // n_seq)))[1]
    deep_study = _study(args.params, args.patients)[1]
    print(f"{os.cpu_count()} cores, {args.workers} workers; radiomics {len(rad_study) * n_seq} cases, deep "
          f"{len(deep_study) * n_seq} inputs x {len(params.deep.models)} models; load {os.getloadavg()[0]:.1f}")
    address, procs = start_cluster(args.workers, tmp)
    out: dict[str, list[dict]] = {"radiomics": [], "deep": []}
    try:
        for r in range(args.repeats):
            for part, fn, study in (("radiomics", radiomics_once, rad_study), ("deep", deep_once, deep_study)):
                if args.skip == part:
                    continue
                local = fn(params, study, tmp / f"{part}-local-{r}", args.workers, None)
                if part == "deep":  # each worker builds the networks again, as the local run does
                    restart_workers(address, args.workers)
                dask = fn(params, study, tmp / f"{part}-dask-{r}", args.workers, address)
                row = {"local_s": round(local, 1), "dask_s": round(dask, 1), "ratio": round(dask / local, 3),
                       "load": round(os.getloadavg()[0], 2)}
                if part == "deep":  # the same cluster again: networks already built on every worker
                    row["dask_warm_s"] = round(fn(params, study, tmp / f"{part}-warm-{r}", args.workers, address), 1)
                out[part].append(row)
                print(f"{part} repeat {r + 1}: {json.dumps(row)}", flush=True)
    finally:
        stop_cluster(procs)
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {}
    for part, rows in out.items():
        if rows:
            ratios = sorted(x["ratio"] for x in rows)
            summary[part] = {"median_ratio": ratios[len(ratios) // 2] if len(ratios) % 2 else
                             round((ratios[len(ratios) // 2 - 1] + ratios[len(ratios) // 2]) / 2, 3),
                             "repeats": rows}
            print(f"{part}: Dask / local = {summary[part]['median_ratio']} (median of {len(rows)} pairs)")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
