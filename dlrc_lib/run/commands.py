"""The verbs of the ``dlrc`` command, each a handler of parsed arguments: it calls the library,
prints one summary and returns the exit status. :mod:`dlrc_lib.run.cli` registers them; the
library below :mod:`dlrc_lib.run` parses no arguments and prints no summaries.

Modules that import torch are imported inside their verb (``dlrc --help`` and the other verbs
do not wait for torch)."""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import pandas as pd

from dlrc_lib.core.config import Params, display_path, load_params
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.io import atomic_write_text
from dlrc_lib.core.processes import single_thread_blas
from dlrc_lib.core.resources import checkout
from dlrc_lib.model.predict import predict_manifest
from dlrc_lib.reporting import claims as C
from dlrc_lib.reporting.snapshot import make_snapshot
from dlrc_lib.run import runner
from dlrc_lib.run.extract import extract_deep_cli, extract_radiomics_cli, load_study_for
from dlrc_lib.run.lab import choose_run, lab_command, lab_environment, lab_notebooks
from dlrc_lib.run.layout import project_root
from dlrc_lib.run.sweep import run_sweep
from dlrc_lib.stats.samplesize import validation_sample_size
from dlrc_lib.study.cohort_size import cohort_size_lines, paper_reference, published_values_file
from dlrc_lib.study.init import init_study
from dlrc_lib.study.validate import cohort_outcomes, validate_manifest
from dlrc_lib.twin.writer import generate_study


def run_verb(args: argparse.Namespace) -> int:
    """``dlrc run --params P [--only NN ...] [--out DIR] [--cache-dir D]``."""
    return runner.run(args.params, only=args.only, out=args.out, cache_dir=args.cache_dir)


def init_verb(args: argparse.Namespace) -> int:
    """``dlrc init DIR [--force]``."""
    written = init_study(args.dir, force=getattr(args, "force", False))
    print(f"dlrc init: wrote {', '.join(p.name for p in written)} in {Path(args.dir).resolve()}")
    print("next: fill manifest.csv (see MANIFEST.md), then dlrc validate --params "
          f"{Path(args.dir) / 'params.yaml'}")
    return 0


def synth_verb(args: argparse.Namespace) -> int:
    """``dlrc synth --params P [--out DIR] [--clinical-only]``."""
    params = load_params(args.params)
    t0 = time.perf_counter()
    manifest = generate_study(params, args.out, clinical_only=bool(getattr(args, "clinical_only", False)))
    n = sum(1 for _ in open(manifest)) - 1
    print(f"dlrc synth: {n} simulated patients -> {manifest} ({time.perf_counter() - t0:.1f} s)")
    return 0


def validate_verb(args: argparse.Namespace) -> int:
    """``dlrc validate [MANIFEST] [--params P] [--cache-dir D] [--out problems.csv]``: print every
    problem, one per line, then per validation cohort whether it is big enough to validate the model
    (``cohort size:`` lines, :func:`dlrc_lib.study.cohort_size.cohort_size_lines`), then the summary. With ``--params`` the run's parameters are checked against the study
    too (:mod:`dlrc_lib.study.plan`), and the manifest defaults to the file's ``study.manifest``.
    Without ``--params`` or ``--cache-dir`` nothing is written (no validation cache).

    Exit status 1 when there is at least one error (warnings alone do not fail)."""
    params = load_params(args.params) if getattr(args, "params", None) else None
    manifest = getattr(args, "manifest", None)
    if manifest is None:
        if params is None or params.study.source != "manifest":
            raise DlrcError("name the manifest (dlrc validate MANIFEST) or a parameter file whose study.source "
                            "is manifest (dlrc validate --params P)")
        manifest = params.study.manifest
    cache_dir = getattr(args, "cache_dir", None)
    use = params or Params()
    if cache_dir:
        use.cache_dir = str(Path(cache_dir).expanduser().resolve())
    problems = validate_manifest(manifest, use, progress=True, cache=bool(cache_dir or params),
                                 plan=params is not None)
    for p in problems:
        print(p)
    n_err = sum(p.severity == "error" for p in problems)
    n_warn = len(problems) - n_err
    if getattr(args, "out", None):
        table = pd.DataFrame([{"severity": p.severity, "patient": p.patient or "", "where": p.where,
                               "message": p.message} for p in problems],
                             columns=["severity", "patient", "where", "message"])
        atomic_write_text(Path(args.out), table.to_csv(index=False, lineterminator="\n"))
    hint = "" if params is not None else " (add --params P to check the run's parameters against the study too)"
    try:
        sizes = cohort_size_lines(cohort_outcomes(manifest, use), published_values_file(params))
    except DlrcError as exc:  # the paper's values unreadable: the validation still stands
        sizes = [f"not judged ({exc})"]
    for line in sizes:
        print(f"cohort size: {line}")
    print(f"dlrc validate: {manifest}: {n_err} error(s), {n_warn} warning(s){hint}")
    return 1 if n_err else 0


def samplesize_verb(args: argparse.Namespace) -> int:
    """``dlrc samplesize [--cstatistic C] [--prevalence P] [--oe-ciwidth W] [--slope-ciwidth W]
    [--cstat-ciwidth W] [--lp-normal MEAN SD | --lp-beta A B] [--threshold T [--sensitivity SE
    --specificity SP] [--nb-ciwidth W]] [--params P]``: the criteria's table and the minimum."""
    c, prevalence = getattr(args, "cstatistic", None), getattr(args, "prevalence", None)
    notes = []
    if c is not None:
        notes.append(f"C-statistic {c:g}: given")
    if prevalence is not None:
        notes.append(f"prevalence {prevalence:g}: given")
    if c is None or prevalence is None:
        params = load_params(args.params) if getattr(args, "params", None) else None
        ref = paper_reference(published_values_file(params))
        source = display_path(ref.source)
        if c is None:
            c = ref.cstatistic["external"]
            notes.append(f"C-statistic {c:g}: the paper's DLRC AUC in external validation (table2 of {source})")
        if prevalence is None:
            prevalence = ref.prevalence
            notes.append(f"prevalence {prevalence:.3f}: the paper's LNM prevalence, {ref.lnm:,} of "
                         f"{ref.patients:,} patients (table1 of {source})")
    res = validation_sample_size(c, prevalence, oe_ciwidth=args.oe_ciwidth, slope_ciwidth=args.slope_ciwidth,
                                 cstat_ciwidth=args.cstat_ciwidth, lp_normal=getattr(args, "lp_normal", None),
                                 lp_beta=getattr(args, "lp_beta", None), threshold=getattr(args, "threshold", None),
                                 sensitivity=getattr(args, "sensitivity", None),
                                 specificity=getattr(args, "specificity", None), nb_ciwidth=args.nb_ciwidth)
    print("dlrc samplesize: minimum sample size to validate a model of a binary outcome externally "
          "(Riley et al. 2021, Stat Med 40:4230; as pmvalsampsize)")
    for note in notes:
        print(f"  {note}")
    print(f"  linear predictor: {res.lp}")
    if res.threshold is not None:
        print(f"  net benefit at risk threshold {res.threshold:g}: sensitivity {res.sensitivity:g}, specificity "
              f"{res.specificity:g}{' (from the simulated linear predictor)' if args.sensitivity is None else ''}, "
              f"standardised net benefit {res.criterion('net benefit').performance:.3f}")
    print(f"  {'criterion':<20} {'CI width':>8} {'N':>8} {'events':>8}")
    for crit in res.criteria:
        print(f"  {crit.name:<20} {crit.ci_width:>8g} {crit.n:>8,} {crit.events:>8,}")
    print(f"dlrc samplesize: minimum {res.n:,} patients ({res.events:,} events) at C = {res.cstatistic:g} and "
          f"prevalence {res.prevalence:.3f}; binding: {res.binding.name}")
    return 0


def extract_verb(args: argparse.Namespace) -> int:
    """``dlrc extract --params P [--what radiomics deep] [--cache-dir D] [--out DIR]``."""
    params = load_params(args.params)
    if getattr(args, "cache_dir", None):
        params.cache_dir = str(Path(args.cache_dir).expanduser().resolve())
    tables = Path(args.out).expanduser().resolve() if getattr(args, "out", None) else None
    what = list(dict.fromkeys(getattr(args, "what", None) or ["radiomics", "deep"]))
    manifest, study = load_study_for(params)
    print(f"dlrc extract: {len(study)} patients from {manifest}; cache {params.cache_dir}")
    if "radiomics" in what:
        extract_radiomics_cli(params, study, tables=tables)
    if "deep" in what:
        extract_deep_cli(params, study, tables=tables)
    return 0


def sweep_verb(args: argparse.Namespace) -> int:
    """``dlrc sweep --params P --grid G [--out DIR] [--jobs N] [--retry-failed]``."""
    res = run_sweep(args.params, args.grid, out=args.out, jobs=args.jobs, retry_failed=args.retry_failed,
                    run_notebooks=runner.run)
    return 1 if (res.table["status"] != "ok").any() else 0


def predict_verb(args: argparse.Namespace) -> int:
    """``dlrc predict``: write the predictions CSV (atomically) and one summary line."""
    single_thread_blas()  # the same probabilities on any machine
    out = predict_manifest(args.model, args.manifest, getattr(args, "scanner_policy", None),
                           getattr(args, "cache_dir", None))
    target = Path(args.out)
    atomic_write_text(target, out.reset_index().to_csv(index=False, float_format="%.17g"))
    n_pos = int(out["lnm_predicted"].sum())
    new = int((out["scanner_status"] == "harmonised from own data").sum())
    print(f"dlrc predict: {len(out)} patients -> {target} ({n_pos} predicted LNM at cut-off "
          f"{out['cutoff'].iloc[0]:.4f}" + (f"; {new} from unseen scanners harmonised" if new else "") + ")")
    return 0


def lab_verb(args: argparse.Namespace) -> int:
    """``dlrc lab [--run DIR] [jupyter lab arguments]``."""
    root = project_root()
    run = choose_run(args.run, root)
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        raise DlrcError("jupyterlab is not installed in this environment: run `make install`") from None
    try:
        shown = run.relative_to(root)
    except ValueError:
        shown = run
    code = checkout()
    # a checkout opens its own notebooks; an installed package a writable copy beside the run
    folder = code / "notebooks" if code else lab_notebooks(run)
    lab_root = code or folder
    print(f"dlrc lab: notebooks in {folder}, reading run {shown}", flush=True)
    return subprocess.call(lab_command(lab_root, list(args.lab_args or [])), cwd=lab_root,
                           env=lab_environment(run, code))


def snapshot_verb(args: argparse.Namespace) -> int:
    """``dlrc snapshot RUN_DIR OUT_DIR [--max-mb 15]``."""
    out = make_snapshot(args.run_dir, args.out_dir, max_mb=args.max_mb)
    meta = json.loads((out / "snapshot.json").read_text(encoding="utf-8"))
    v = meta["verdicts"]
    print(f"dlrc snapshot: {len(meta['files'])} files, {meta['total_bytes'] / 1e6:.1f} MB -> {out} "
          f"(claims: {v[C.HOLDS]} hold, {v[C.FAILS]} fail, {v[C.NOT_TESTABLE]} not testable here, "
          f"{v[C.INPUT]} input, {v[C.CALIBRATED]} calibrated, {v.get(C.COHORT, 0)} own cohort; "
          f"left out: {len(meta['left_out'])})")
    return 0


def weights_verb(args: argparse.Namespace) -> int:
    """``dlrc weights import DIR`` / ``dlrc weights status [--params P]``."""
    from dlrc_lib.features.deep import networks as dn  # deferred: imports torch
    from dlrc_lib.features.deep.weights import format_status, import_weights, weights_status  # deferred: torch

    if args.weights_verb == "import":
        print(f"dlrc weights import: {args.dir} -> {dn.imagenet_checkpoint_path(dn.ARCHS[0]).parent}")
        results = import_weights(args.dir)
        print(f"dlrc weights import: {sum(r.action == 'imported' for r in results)} imported, "
              f"{sum(r.action != 'imported' for r in results)} already present")
        return 0
    spec, seed = "auto", 0
    if args.params:
        params = load_params(args.params)
        spec, seed = params.deep.weights, params.seed
    print(format_status(weights_status(spec, seed), spec))
    return 0
