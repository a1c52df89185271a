"""Sweep cost: seconds per variant from a warm feature cache, and the speed-up of running
variants in parallel.

The features and the notebooks every variant shares are prepared first (not timed: a warm
cache, as after `dlrc run`). Then the same variants run once per ``--jobs`` value, each time
into a fresh sweep folder and with an empty memo of fits (a cache folder whose features are
the warm cache's, linked, and whose ``memo`` is new), so that no timed run reuses the fits of
the one before it. Reported per jobs value: the wall time of the variants phase, the
mean wall seconds of one variant (its own process: papermill, kernels, notebooks 03-08), the
CPU seconds of the variant processes, and the speed-up against one job at a time.

``--dask N`` then runs the same variants once more as tasks on a local Dask cluster that the
script starts itself (``N`` worker processes with one thread each, as ``dask worker --nworkers N
--nthreads 1``; ``radiomics.dask_scheduler`` pointing at it), and reports its wall time as a
ratio to the local run with ``--jobs N`` on the same cores (target <= 1.10).

Other processes sharing the cores distort wall times; CPU seconds are less affected. State
the load (``uptime``) next to any number taken from this script.

    python benchmarks/sweep_throughput.py --params params/quick.yaml --grid params/sweep_quick.yaml \
        --jobs 1 2 --variants 4 [--dask 2]
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

import yaml

from dlrc_lib.run import grid as G
from dlrc_lib.run import sweep as SW


def _subset_grid(grid_path: Path, params: Path, n: int, folder: Path) -> Path:
    """The first ``n`` variants of a grid, as named variants (same overrides, same names)."""
    grid = G.parse_grid(grid_path, params)
    chosen = grid.variants[:n] if n else grid.variants
    doc = {"variants": {v.name: v.overrides for v in chosen if v.overrides}}
    if any(not v.overrides for v in chosen):
        # the base variant: a named variant with a key set to its base value
        key = grid.keys[0]
        doc["variants"]["base"] = {key: grid.base_choices[key]}
    if grid.last_notebook:
        doc["last_notebook"] = grid.last_notebook
    out = folder / "grid.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def _fresh_fits(params: Path, work: Path, name: str) -> Path:
    """A copy of the parameter file whose cache has the warm features (linked) and no memo."""
    p = yaml.safe_load(params.read_text())
    cache = Path(p.get("cache_dir", ".dlrc_cache")).resolve()
    mine = work / f"cache_{name}"
    if mine.exists():
        shutil.rmtree(mine)
    mine.mkdir(parents=True)
    for item in cache.iterdir():
        if item.name != "memo":
            (mine / item.name).symlink_to(item)
    p["cache_dir"] = str(mine)
    out = work / f"params_{name}.yaml"
    out.write_text(yaml.safe_dump(p, sort_keys=False))
    return out


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params/quick.yaml")
    ap.add_argument("--grid", default="params/sweep_quick.yaml")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--variants", type=int, default=0, help="first N variants of the grid (0: all)")
    ap.add_argument("--dask", type=int, default=0, metavar="N",
                    help="also run the variants on a local Dask cluster of N single-thread workers")
    ap.add_argument("--keep", help="keep the sweep folders here (default: a temporary folder)")
    ap.add_argument("--json", help="write the numbers to this file")
    args = ap.parse_args(argv)

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dlrc-sweep-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    grid = _subset_grid(Path(args.grid), Path(args.params), args.variants, work)
    n = len(G.parse_grid(grid, args.params).variants)
    print(f"sweep benchmark: {n} variants of {args.grid} on {args.params}; {os.cpu_count()} cores; "
          f"load {os.getloadavg()[0]:.1f}")

    # warm the cache and the shared notebooks once (untimed): a sweep folder whose base is reused
    warm = work / "warm"
    t0 = time.perf_counter()
    SW.run_sweep(args.params, grid, out=warm, jobs=max(args.jobs), quiet=True,
                 executor=lambda *a: (False, "warm-up only"))
    print(f"warm-up (features, shared notebooks): {time.perf_counter() - t0:.1f} s")

    rows = []
    for jobs in args.jobs:
        out = work / f"jobs{jobs}"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        shutil.copytree(warm / "base", out / "base")
        pfile = _fresh_fits(Path(args.params), work, f"jobs{jobs}")
        cpu0, t0 = _children_cpu(), time.perf_counter()
        res = SW.run_sweep(pfile, grid, out=out, jobs=jobs, quiet=True, extract=False)
        wall = time.perf_counter() - t0
        cpu = _children_cpu() - cpu0
        secs = [json.loads(p.read_text())["seconds"] for p in out.glob("variants/*/variant.json")]
        ok = int((res.table["status"] == "ok").sum())
        rows.append({"jobs": jobs, "variants": len(secs), "ok": ok, "wall_s": round(wall, 1),
                     "mean_variant_s": round(sum(secs) / max(1, len(secs)), 1),
                     "wall_per_variant_s": round(wall / max(1, len(secs)), 1),
                     "cpu_s": round(cpu, 1), "load_after": round(os.getloadavg()[0], 1)})
        print(json.dumps(rows[-1]))
    if args.dask:
        rows.append(_dask_row(args, grid, warm, work))
        print(json.dumps(rows[-1]))
    base = next((r for r in rows if r["jobs"] == 1), rows[0])
    for r in rows:
        r["speedup"] = round(base["wall_s"] / r["wall_s"], 2) if r["wall_s"] else None
    print(f"{'run':>8} {'variants':>8} {'wall s':>8} {'s/variant':>10} {'wall/variant':>12} {'cpu s':>8} {'speed-up':>8}")
    for r in rows:
        print(f"{r.get('executor', 'local') + str(r['jobs']):>8} {r['variants']:>8} {r['wall_s']:>8} "
              f"{r['mean_variant_s']:>10} {r['wall_per_variant_s']:>12} {r['cpu_s']:>8} {r['speedup']:>8}")
    local_same = next((r for r in rows if r["jobs"] == args.dask and r.get("executor") != "dask"), None)
    if args.dask and local_same:
        ratio = round(rows[-1]["wall_s"] / local_same["wall_s"], 2)
        rows[-1]["ratio_to_local"] = ratio
        print(f"dask {args.dask} workers: {rows[-1]['wall_s']} s = {ratio} x local --jobs {args.dask} "
              f"({local_same['wall_s']} s); load now {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _children_cpu_of_worker() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _own_cpu_of_worker() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _dask_row(args, grid: Path, warm: Path, work: Path) -> dict:
    """The variants as tasks on a local Dask cluster this function starts (and stops)."""
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=args.dask, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    try:
        pfile = _fresh_fits(Path(args.params), work, "dask")
        p = yaml.safe_load(pfile.read_text())
        p.setdefault("radiomics", {})["dask_scheduler"] = cluster.scheduler_address
        pfile.write_text(yaml.safe_dump(p, sort_keys=False))
        out = work / "dask"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        shutil.copytree(warm / "base", out / "base")
        cpu0 = sum(client.run(_children_cpu_of_worker).values())
        own0, me0 = sum(client.run(_own_cpu_of_worker).values()), _own_cpu_of_worker()
        t0 = time.perf_counter()
        res = SW.run_sweep(pfile, grid, out=out, jobs=args.dask, quiet=True, extract=False)
        wall = time.perf_counter() - t0
        cpu = sum(client.run(_children_cpu_of_worker).values()) - cpu0
        # Dask's own cost: the workers' processes, and this one (client and scheduler)
        overhead = sum(client.run(_own_cpu_of_worker).values()) - own0 + _own_cpu_of_worker() - me0
    finally:
        client.close()
        cluster.close()
    secs = [json.loads(q.read_text())["seconds"] for q in out.glob("variants/*/variant.json")]
    return {"jobs": args.dask, "executor": "dask", "variants": len(secs),
            "ok": int((res.table["status"] == "ok").sum()), "wall_s": round(wall, 1),
            "mean_variant_s": round(sum(secs) / max(1, len(secs)), 1),
            "wall_per_variant_s": round(wall / max(1, len(secs)), 1), "cpu_s": round(cpu, 1),
            "dask_own_cpu_s": round(overhead, 1), "load_after": round(os.getloadavg()[0], 1)}


if __name__ == "__main__":
    sys.exit(main())
