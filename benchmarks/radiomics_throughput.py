"""Throughput of dlrc's radiomics extraction against the ``pyradiomics`` command line.

Both extract the same twin cases (image + reader-1 mask) with the same settings file and
two worker processes, from a cold start (dlrc: an empty feature store). Reported: wall time
of each, the ratio (pyradiomics CLI time / dlrc time; >= 1.0 means no overhead), the
per-case extraction time, the time of a fully cached re-run, and the cold extraction time
of the paper-scale study (1,095 patients x 3 sequences + 30 x 3 x 2 re-segmentations)
extrapolated from the measured per-case time.

    python benchmarks/radiomics_throughput.py                       # 40 cases, paper settings
    python benchmarks/radiomics_throughput.py --cases 10 --settings params/radiomics_quick.yaml

The cases come from a small twin study generated with the paper's volume size
(``study.volume_shape`` of params/paper.yaml) under ``data/twin/bench`` (reused when present).
Run it on an otherwise idle machine: the two tools are timed one after the other.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PAPER_CASES = 1095 * 3 + 30 * 3 * 2  # reader-1 cases + reader-2 and repeat of the ICC subset


def bench_study(params_file: Path, n_cases: int, sequences: list[str]):
    """A twin study with paper-size volumes and enough patients for ``n_cases`` cases."""
    import math

    from dlrc_lib.core.config import load_params
    from dlrc_lib.study.manifest import load_study
    from dlrc_lib.twin.prepare import prepare_study

    n_patients = max(1, math.ceil(n_cases / len(sequences)))
    scale = min(1.0, max(0.01, (n_patients + 6) / 1095))  # a little slack for small centres
    params = load_params(params_file, overrides={"run_name": "bench", "study.scale": round(scale, 4),
                                                 "study.icc_cases": 0})
    manifest = prepare_study(params)
    study = load_study(manifest, params)
    cases = []
    for row in study.itertuples(index=False):
        for seq in sequences:
            cases.append((row.patient_id, seq, getattr(row, f"image_{seq}"), getattr(row, f"mask_{seq}")))
    return study, cases[:n_cases], params


def _cpu() -> float:
    """CPU seconds used so far by this process and its (finished) child processes."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def run_cli(cases, settings: Path, jobs: int, workdir: Path) -> tuple[float, float]:
    csv = workdir / "cli_cases.csv"
    with open(csv, "w") as fh:
        fh.write("Image,Mask\n")
        for _, _, img, msk in cases:
            fh.write(f"{img},{msk}\n")
    out = workdir / "cli_out.csv"
    out.unlink(missing_ok=True)
    exe = Path(sys.executable).with_name("pyradiomics")
    cmd = [str(exe), str(csv), "--param", str(settings), "--jobs", str(jobs), "-o", str(out), "-f", "csv",
           "--verbosity", "1"]
    t0, c0 = time.perf_counter(), _cpu()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dt, cpu = time.perf_counter() - t0, _cpu() - c0
    n_rows = sum(1 for _ in open(out)) - 1
    if n_rows != len(cases):
        print(f"warning: pyradiomics CLI wrote {n_rows} rows for {len(cases)} cases", file=sys.stderr)
    return dt, cpu


def run_dlrc(study, cases, settings: Path, jobs: int, cache: Path):
    from dlrc_lib.features.radiomics import extract_radiomics

    keep = {(p, s) for p, s, _, _ in cases}
    seqs = list(dict.fromkeys(s for _, s, _, _ in cases))
    # one extraction over exactly these cases: blank out the images of the other pairs
    st = study.copy()
    for seq in seqs:
        for i, pid in enumerate(st["patient_id"]):
            if (pid, seq) not in keep:
                st.loc[i, f"mask_{seq}"] = None
    st = st[st["patient_id"].isin({p for p, _ in keep})]
    t0, c0 = time.perf_counter(), _cpu()
    res = extract_radiomics(st, settings, cache, sequences=seqs, n_jobs=jobs, progress=False)
    dt, cpu = time.perf_counter() - t0, _cpu() - c0
    done = res.cases[res.cases["status"] == "computed"]
    return dt, cpu, res, done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--settings", default=str(REPO / "params" / "radiomics.yaml"))
    ap.add_argument("--params", default=str(REPO / "params" / "paper.yaml"),
                    help="parameter file whose study settings (volume size, scanners) the bench twin uses")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1, help="alternating repetitions of both tools")
    ap.add_argument("--sequences", nargs="+", default=["CET1", "DWI", "T2FS"])
    ap.add_argument("--out", help="write the measurements as JSON here")
    args = ap.parse_args(argv)
    os.chdir(REPO)
    settings = Path(args.settings).resolve()

    study, cases, params = bench_study(Path(args.params), args.cases, args.sequences)
    print(f"{len(cases)} cases from {len(set(p for p, *_ in cases))} twin patients "
          f"(volume {tuple(params.study.volume_shape)}), settings {settings.name}, --jobs {args.jobs}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    t_cli, t_ours, per_case, per_case_cpu, t_cached, cpu_cli, cpu_ours = [], [], [], [], [], [], []
    work = Path(tempfile.mkdtemp(prefix="dlrc_bench_"))
    try:
        for r in range(args.repeats):
            cache = work / f"cache{r}"
            dt, cpu, res, done = run_dlrc(study, cases, settings, args.jobs, cache)
            chosen = res.failures[[(p, q) in {(c[0], c[1]) for c in cases}
                                   for p, q in zip(res.failures["patient_id"], res.failures["sequence"])]]
            if len(chosen):
                print(chosen.to_string(), file=sys.stderr)
            t_ours.append(dt)
            cpu_ours.append(cpu)
            per_case += list(done["seconds"])
            per_case_cpu += list(done["cpu_seconds"])
            t0 = time.perf_counter()
            run_dlrc(study, cases, settings, args.jobs, cache)
            t_cached.append(time.perf_counter() - t0)
            dt, cpu = run_cli(cases, settings, args.jobs, work)
            t_cli.append(dt)
            cpu_cli.append(cpu)
            print(f"  repeat {r + 1}: dlrc {t_ours[-1]:.1f} s ({cpu_ours[-1]:.1f} CPU s), pyradiomics CLI "
                  f"{t_cli[-1]:.1f} s ({cpu_cli[-1]:.1f} CPU s), cached re-run {t_cached[-1]:.2f} s "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ours, cli = statistics.median(t_ours), statistics.median(t_cli)
    n = len(cases)
    case_mean = statistics.mean(per_case)
    result = {
        "cases": n, "jobs": args.jobs, "settings": settings.name, "volume_shape": list(params.study.volume_shape),
        "dlrc_wall_s": round(ours, 2), "pyradiomics_cli_wall_s": round(cli, 2),
        "ratio_cli_over_dlrc": round(cli / ours, 3),
        "dlrc_cpu_s": round(statistics.median(cpu_ours), 2), "pyradiomics_cli_cpu_s": round(statistics.median(cpu_cli), 2),
        "cpu_ratio_cli_over_dlrc": round(statistics.median(cpu_cli) / statistics.median(cpu_ours), 3),
        "per_case_cpu_s_mean": round(statistics.mean(per_case_cpu), 3),
        "per_case_s_mean": round(case_mean, 3), "per_case_s_median": round(statistics.median(per_case), 3),
        "dlrc_wall_per_case_s": round(ours / n, 3),
        "cached_rerun_s": round(statistics.median(t_cached), 3),
        "paper_scale_cases": PAPER_CASES,
        "paper_scale_cold_estimate_min": round(PAPER_CASES * ours / n / 60, 1),
        "paper_scale_cold_estimate_idle_min": round(
            PAPER_CASES * statistics.median(cpu_ours) / n / min(args.jobs, os.cpu_count() or 1) / 60, 1),
        "machine": f"{platform.node()} {os.cpu_count()} CPUs",
        "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))
    print(f"throughput ratio (pyradiomics CLI time / dlrc time): {result['ratio_cli_over_dlrc']:.2f} "
          f"(target >= 1.0; CPU-time ratio {result['cpu_ratio_cli_over_dlrc']:.2f}); per case {case_mean:.2f} s "
          f"wall, {result['per_case_cpu_s_mean']:.2f} s CPU in one worker; paper scale ({PAPER_CASES} cases, "
          f"--jobs {args.jobs}): about {result['paper_scale_cold_estimate_min']:.0f} min cold at this load, "
          f"{result['paper_scale_cold_estimate_idle_min']:.0f} min on idle cores")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
