"""``dlrc sweep``: run the analysis under many parameter sets and collect what changes.

The paper fixes many analytic choices it never justifies, or never states (what ComBat is
fitted on, the LASSO lambda rule, the thresholds of the selection funnel, how the best deep
model is chosen, ...). A *sweep* re-runs the notebooks after feature extraction under every
combination of the choices named in a small grid file and tabulates, per variant, the AUCs
with their CIs, the selected features, the DLRC terms and which of the paper's claims hold.
Notebook ``09_sensitivity`` draws the specification curve from it.

The grid file and its variants: :mod:`dlrc_lib.run.grid`; where a variant runs (a process
here or a Dask task): :mod:`dlrc_lib.run.executors`.

Execution (:func:`run_sweep`): the features are extracted once for the base parameters (and
for each distinct extraction setting a variant asks for), the notebooks that no variant
changes run once (``<out>/base``), and each variant copies that folder and runs the remaining
notebooks with papermill in its own process (``<out>/variants/<name>``, a complete report
folder). Variants run in parallel; one that fails is recorded with its error and the others
go on. ``<out>/variants/<name>/variant.json`` marks a finished variant: a second call skips
it (when its parameters are unchanged), so an interrupted sweep resumes where it stopped.
``<out>/sweep.csv`` has one row per variant. With ``radiomics.dask_scheduler`` set, the
variants are tasks on that Dask cluster (:class:`DaskExecutor`; the workers must share the
file system with the machine running the sweep).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import pandas as pd
import yaml

from dlrc_lib.core.config import TWIN_ONLY_KEYS, Params, load_params
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.io import atomic_write_text, dumps
from dlrc_lib.core.resources import params_file as find_params_file
from dlrc_lib.record import DeepRecord, DlrcRecord, RadiomicsRecord, RunInfo, read_notebook_record, read_run_info
from dlrc_lib.reporting.claims import evaluate_claims
from dlrc_lib.reporting.sensitivity import SpecificationCurveDisplay, published_auc
from dlrc_lib.run.executors import (STOPPING, DaskExecutor, Executor, process_alive, run_in_subprocess, stop_leftover,
                                   stop_running, subprocess_executor)
from dlrc_lib.run.extract import extract_deep_cli, extract_radiomics_cli, load_study_for
from dlrc_lib.run.grid import (EXTRACTION_PREFIXES, Grid, Variant, fingerprint, flat_name, parse_grid, table_cell,
                               variant_params)
from dlrc_lib.run.layout import SWEEP_NOTEBOOK, list_notebooks, notebook_parameters, project_root
from dlrc_lib.study.schema import COHORTS

#: ``run_notebooks(params_file, only=[NN, ...], out=folder, quiet=True, root=root) -> exit status``:
#: executes notebooks of one parameter file into a run folder (``dlrc_lib.run.runner.run``).
RunNotebooks = Callable[..., int]

ROLES = ("radiomics", "dl", "dlrc")
FINISHED = ("ok", "failed")


# -------------------------------------------------------------------------- planning
def notebook_plan(grid: Grid, root: Optional[Path] = None) -> tuple[list[Path], int]:
    """The notebooks of a variant run and the index of the first one any variant changes:
    the notebooks before it are shared by every variant and run once."""
    notebooks = [nb for nb in list_notebooks(root) if nb.name[:2] < SWEEP_NOTEBOOK]
    if grid.last_notebook:
        notebooks = [nb for nb in notebooks if nb.name[:2] <= grid.last_notebook]
        if not notebooks:
            raise DlrcError(f"{grid.path}: last_notebook {grid.last_notebook}: no notebook to run")
    declared = [set(notebook_parameters(nb)) for nb in notebooks]
    first: dict[str, int] = {}
    for v in grid.variants:
        names = {flat_name(k) for k in v.overrides}
        hits = [i for i, d in enumerate(declared) if names & d]
        # a key no notebook declares changes nothing: the variant is the base itself
        first[v.name] = min(hits) if hits else len(notebooks)
    return notebooks, min(min(first.values()), len(notebooks) - 1)


# keys that change the memoised feature -> score fits of notebooks 03 and 04 (and what they
# start from); every other key (the best-model rule, notebooks 05-08) only changes what is
# done with the fitted scores
FIT_PREFIXES = ("icc.", "harmonisation.", "selection.", "radiomics.", "deep.")
AFTER_FITS = ("deep.best_model_rule",)
# fit keys applied after the cross-validated LASSO path, which is cached on its own
AFTER_LASSO_PATH = ("selection.lasso_rule", "selection.stepwise_direction")


def shared_work_order(variants: list[Variant]) -> dict[str, set[str]]:
    """Which variant waits for which: ``{name: names it runs after}``.

    Variants whose fit keys are equal share every fit of notebooks 03-04 (memoised); variants
    equal but for the lambda rule and stepwise direction share the LASSO cross-validation (also
    memoised). Run at the same time, both would compute that work; so the first variant of
    each such group (in grid order) runs before the others of its group, which then load it,
    unless a core would otherwise stay idle (then the other starts beside its leader). The
    order changes when a variant runs, never its numbers.
    """
    leaders: dict[tuple[str, str], str] = {}
    deps: dict[str, set[str]] = {}
    for v in variants:
        fit = {k: x for k, x in v.overrides.items() if k.startswith(FIT_PREFIXES) and k not in AFTER_FITS}
        path = {k: x for k, x in fit.items() if k not in AFTER_LASSO_PATH}
        deps[v.name] = set()
        for level, keys in (("path", path), ("fit", fit)):
            lead = leaders.setdefault((level, json.dumps(keys, sort_keys=True, default=str)), v.name)
            if lead != v.name:
                deps[v.name].add(lead)
    return deps


def variant_starts(grid: Grid, notebooks: list[Path], k_min: int) -> dict[str, int]:
    """Index of the first notebook each variant runs itself.

    A variant whose overrides reach only later notebooks (e.g. the best-model rule: notebooks
    04-08) starts there, from the base parameters' outputs of the notebooks before it, which
    then run once for all such variants. A level is kept only when two or more variants can
    start from it; the others start from the level below.
    """
    declared = [set(notebook_parameters(nb)) for nb in notebooks]
    first: dict[str, int] = {}
    for v in grid.variants:
        names = {flat_name(k) for k in v.overrides}
        hits = [i for i, d in enumerate(declared) if names & d]
        # a variant that changes no notebook's parameters (the base) can start anywhere
        first[v.name] = max(k_min, min(hits)) if hits else len(notebooks) - 1
    levels = [k for k in sorted(set(first.values()))
              if k == k_min or sum(s >= k for s in first.values()) >= 2]
    return {n: max(k for k in levels if k <= s) for n, s in first.items()}


def _extraction_keys(variant: Variant) -> list[str]:
    return [k for k in variant.overrides if k.startswith(EXTRACTION_PREFIXES)]


# --------------------------------------------------------------------------- results
def collect_variant(run_dir: Path) -> dict[str, Any]:
    """The numbers of one finished variant folder: AUC (CI) per model and cohort, selected
    features, best DL model and DLRC terms."""
    out: dict[str, Any] = {}
    table = run_dir / "tables" / "table2_performance.csv"
    rad = read_notebook_record(run_dir, "03_radiomics") or RadiomicsRecord()
    deep = read_notebook_record(run_dir, "04_deep_learning") or DeepRecord()
    dlrc = read_notebook_record(run_dir, "05_dlrc") or DlrcRecord()
    best = dlrc.best_model or deep.best_model
    out["best_dl_model"] = best
    state03 = rad.state or {}
    out["n_features_radiomics"] = len(state03.get("features") or []) if state03 else None
    state04 = (deep.states or {}).get(best) or {}
    out["n_features_dl"] = len(state04.get("features") or []) if state04 else None
    terms = dlrc.dlrc_terms
    out["dlrc_terms"] = "; ".join(terms) if isinstance(terms, list) else None
    if table.exists():
        perf = pd.read_csv(table)
        for role, model in (("radiomics", "radiomics"), ("dl", best), ("dlrc", "DLRC")):
            for cohort in COHORTS:
                row = perf[(perf["model"] == model) & (perf["cohort"] == cohort)]
                vals = row[["auc", "auc_lower", "auc_upper"]].iloc[0].tolist() if len(row) else [None] * 3
                for suffix, v in zip(("auc", "auc_lo", "auc_hi"), vals):
                    out[f"{role}_{cohort}_{suffix}"] = None if v is None or pd.isna(v) else float(v)
    return out


def claims_of(run_dir: Path) -> dict[str, Any]:
    """Which of the paper's claims hold in a variant (``dlrc_lib.reporting.claims``).

    Returns the ``claims_*`` columns: the ids of the claims that hold and of those that fail.
    """

    try:
        table = evaluate_claims(run_dir)
    except Exception as exc:  # noqa: BLE001 - a claim that cannot be evaluated must not lose the variant
        return {"claims_holding": None, "claims_failing": None,
                "claims_status": f"not evaluated: {type(exc).__name__}: {exc}".splitlines()[0]}
    ids = table["id"].astype(str) if "id" in table.columns else table.index.astype(str)
    verdict = table["verdict"].astype(str)
    return {"claims_holding": ";".join(ids[verdict == "holds"]),
            "claims_failing": ";".join(ids[verdict == "fails"]),
            "claims_status": "evaluated"}


def metric_columns() -> list[str]:
    return [f"{r}_{c}_{s}" for r in ROLES for c in COHORTS for s in ("auc", "auc_lo", "auc_hi")]


def sweep_table(grid: Grid, records: dict[str, dict]) -> pd.DataFrame:
    """One row per variant (grid order): status, choices, numbers, claims."""
    rows = []
    for v in grid.variants:
        rec = records.get(v.name) or {}
        row: dict[str, Any] = {"variant": v.name, "status": rec.get("status", "pending")}
        row.update({k: table_cell(val) for k, val in v.choices.items()})
        metrics = rec.get("metrics") or {}
        for col in ["best_dl_model", "n_features_radiomics", "n_features_dl", "dlrc_terms", *metric_columns()]:
            row[col] = metrics.get(col)
        claims = rec.get("claims") or {}
        for col in ("claims_holding", "claims_failing", "claims_status"):
            row[col] = claims.get(col)
        row["error"] = rec.get("error")
        rows.append(row)
    return pd.DataFrame(rows)


def write_table(out: Path, grid: Grid, records: dict[str, dict]) -> pd.DataFrame:
    table = sweep_table(grid, records)
    atomic_write_text(out / "sweep.csv", table.to_csv(index=False, lineterminator="\n"))
    return table


# ------------------------------------------------------------------------- execution
@dataclass
class SweepResult:
    out: Path
    table: pd.DataFrame
    ran: list[str]
    skipped: list[str]
    failed: list[str]
    seconds: float


def _read_record(vdir: Path) -> Optional[dict]:
    path = vdir / "variant.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None


def _copy_base(base_dir: Path, vdir: Path) -> None:
    if vdir.exists():
        shutil.rmtree(vdir)
    vdir.mkdir(parents=True)
    for item in base_dir.iterdir():
        if item.name in ("index.html", "base.json"):
            continue
        if item.is_dir():
            shutil.copytree(item, vdir / item.name)
        else:
            shutil.copy2(item, vdir / item.name)


def _ensure_features(params: Params, label: str, say: Callable[[str], None]) -> None:
    """Extract what the feature cache lacks for these parameters (cached cases are reused)."""

    t0 = time.perf_counter()
    manifest, study = load_study_for(params)
    say(f"  features for {label}: {len(study)} patients, cache {params.cache_dir}")
    import io

    buf = io.StringIO()
    extract_radiomics_cli(params, study, out=buf)
    if any(nb for nb in params.deep.models):
        extract_deep_cli(params, study, out=buf)
    for line in buf.getvalue().splitlines():
        if line.startswith(("cache:", "deep features", "radiomics (")):
            say(f"    {line}")
    say(f"  features for {label} ready in {time.perf_counter() - t0:.1f} s")


def run_sweep(params_path: str | Path, grid_path: str | Path, out: str | Path | None = None,
              jobs: int = 0, *, retry_failed: bool = False, quiet: bool = False,
              executor: Optional[Executor] = None, root: Optional[Path] = None,
              extract: bool = True, cache_dir: Optional[str | Path] = None,
              run_notebooks: Optional[RunNotebooks] = None) -> SweepResult:
    """Run every variant of the grid that has not finished yet; write ``sweep.csv``.

    ``jobs``: variants at once (0: all cores, or all worker threads of the Dask cluster).
    ``retry_failed``: run failed variants again (by default a failed variant is finished: its
    error is in the table). ``executor`` runs one variant's notebooks (default: a ``dlrc run``
    subprocess, or a task on the Dask cluster when ``radiomics.dask_scheduler`` is set).
    ``run_notebooks`` runs the notebooks every variant shares, once (``dlrc run`` and ``dlrc sweep``
    pass the runner itself; default: a ``dlrc run`` subprocess).
    """
    run_notebooks = run_notebooks or run_in_subprocess
    t_start = time.perf_counter()
    say = (lambda *_: None) if quiet else (lambda msg: print(msg, flush=True))
    params_path = find_params_file(params_path)
    cache = str(Path(cache_dir).expanduser().resolve()) if cache_dir else None
    from_file = load_params(params_path)  # read once; every variant is these with its overrides
    base = variant_params(from_file, Variant("base", {}), cache) if cache else from_file
    grid = parse_grid(find_params_file(grid_path), from_file)
    notebooks_root = root  # None: the package's notebooks
    root = Path(root) if root else project_root()
    out = Path(out) if out else Path("reports") / base.run_name / "sweep"
    out = out.resolve()
    (out / "variants").mkdir(parents=True, exist_ok=True)
    own = None
    if executor is None and base.radiomics.dask_scheduler:
        own = executor = DaskExecutor(base.radiomics.dask_scheduler)
    jobs = jobs or (own.threads if own else os.cpu_count()) or 1
    jobs = max(1, min(jobs, len(grid.variants)))
    if own:
        say(f"dlrc sweep: variants run on the Dask cluster at {own.address} ({own.threads} worker threads)")

    lock = out / ".sweep.pid"
    if lock.exists():
        try:
            other = int(lock.read_text(encoding="utf-8").strip())
        except ValueError:
            other = 0
        if other and other != os.getpid() and process_alive(other):
            raise DlrcError(f"{out}: another sweep is running there (pid {other})")
    atomic_write_text(lock, f"{os.getpid()}\n")
    STOPPING.clear()
    try:
        return _run_sweep(base, params_path, grid, out, jobs, retry_failed, say, executor, root,
                          extract, run_notebooks, t_start, cache, notebooks_root)
    finally:
        stop_running()
        lock.unlink(missing_ok=True)
        if own:
            own.close()


def _run_sweep(base: Params, params_path: Path, grid: Grid, out: Path, jobs: int, retry_failed: bool,
               say, executor, root: Path, extract: bool, run_notebooks, t_start: float,
               cache: Optional[str] = None, notebooks_root: Optional[Path] = None) -> SweepResult:
    notebooks, k_min = notebook_plan(grid, notebooks_root)
    stems = [nb.stem for nb in notebooks]
    starts = variant_starts(grid, notebooks, k_min)
    say(f"dlrc sweep: {params_path} x {grid.path}: {len(grid.variants)} variants over "
        f"{', '.join(grid.keys)} -> {out}")
    records, todo, skipped = _pending_variants(base, grid, stems, starts, out, cache, retry_failed)
    if skipped:
        say(f"  {len(skipped)} variant(s) already finished (not rerun)")
    write_table(out, grid, records)
    if not todo:
        return _finish(out, grid, records, [], skipped, t_start, say, published=base.published_values)
    if extract:
        _extract_for_variants(base, todo, say)

    # notebooks no variant changes run once, into <out>/base; the notebooks before a later
    # start (variant_starts) run once more with the base parameters, into <out>/base_<NN>
    base_params = variant_params(base, Variant("base", {}), cache)
    prefix_dirs: dict[int, Path] = {}
    previous: Optional[int] = None
    for k in sorted({starts[v.name] for v, _, _ in todo} | {k_min}):
        prefix_dirs[k] = _shared_prefix(out, k, previous, prefix_dirs.get(previous), stems, base_params,
                                        notebooks_root, run_notebooks, say, is_base=k == k_min)
        previous = k

    execute = executor or subprocess_executor(max(1, (os.cpu_count() or 1) // jobs))
    later = sorted({stems[starts[v.name]][:2] for v, _, _ in todo} - {stems[k_min][:2]})
    say(f"  running {len(todo)} variant(s), {jobs} at a time (notebooks {stems[k_min][:2]}-{stems[-1][:2]}"
        + (f"; variants that change nothing before notebook {', '.join(later)} start there" if later else "") + ")")
    tally = _Tally(out, grid, records, len(todo), say)

    def one(item: tuple[Variant, Params, str]) -> None:
        v, vp, fp = item
        only = [st[:2] for st in stems[starts[v.name]:]]
        rec = _run_variant(v, vp, fp, out / "variants" / v.name, prefix_dirs[starts[v.name]], only, execute, root)
        if rec is not None:
            tally.add(v.name, rec)

    with _sigterm_as_interrupt():
        _schedule(todo, jobs, one, execute)
    return _finish(out, grid, records, tally.ran, skipped, t_start, say, tally.failed,
                   published=base.published_values)


def _pending_variants(base: Params, grid: Grid, stems: list[str], starts: Mapping[str, int], out: Path,
                      cache: Optional[str], retry_failed: bool):
    """``(records, todo, skipped)``: the finished variants' records (kept while their fingerprint
    holds), the variants still to run as ``(variant, parameters, fingerprint)``, and the names of
    the finished ones."""
    records: dict[str, dict] = {}
    todo: list[tuple[Variant, Params, str]] = []
    skipped: list[str] = []
    for v in grid.variants:
        vp = variant_params(base, v, cache)
        fp = fingerprint(vp, stems[starts[v.name]:])
        rec = _read_record(out / "variants" / v.name)
        if rec and rec.get("fingerprint") == fp and rec.get("status") in FINISHED and not (
                retry_failed and rec.get("status") == "failed"):
            records[v.name] = rec
            skipped.append(v.name)
            continue
        todo.append((v, vp, fp))
    return records, todo, skipped


def _extract_for_variants(base: Params, todo, say) -> None:
    """The features of the base parameters, then of each extraction setting a variant changes."""
    _ensure_features(base, "the base parameters", say)
    groups: dict[str, tuple[Params, list[str]]] = {}
    for v, vp, _ in todo:
        keys = _extraction_keys(v)
        if keys:
            ident = json.dumps({k: v.overrides[k] for k in keys}, sort_keys=True, default=str)
            groups.setdefault(ident, (vp, []))[1].append(v.name)
    for ident, (vp, names) in groups.items():
        say(f"  variant(s) {', '.join(names)} change extraction settings {ident}: extracting the "
            "features the cache lacks before the variants start (as long as a cold `dlrc extract` "
            "for what is missing; cached cases are reused)")
        _ensure_features(vp, ", ".join(names), say)


def _run_variant(v: Variant, vp: Params, fp: str, vdir: Path, prefix_dir: Path, only: list[str], execute,
                 root: Path) -> Optional[dict[str, Any]]:
    """Run one variant's notebooks from its shared prefix; its record (also in ``variant.json``),
    or None when the sweep is being interrupted (the next call runs it again)."""
    t0 = time.perf_counter()
    stop_leftover(vdir)
    _copy_base(prefix_dir, vdir)
    pfile = vdir / "params.yaml"
    _write_params(pfile, vp)
    if STOPPING.is_set():
        return None
    try:
        ok, error = execute(vdir, pfile, only, root)
    except Exception as exc:  # noqa: BLE001 - recorded, the other variants go on
        ok, error = False, f"{type(exc).__name__}: {exc}".splitlines()[0]
    if STOPPING.is_set():
        return None  # interrupted, not failed
    rec: dict[str, Any] = {"variant": v.name, "overrides": v.overrides, "choices": v.choices,
                           "fingerprint": fp, "notebooks": only, "status": "ok" if ok else "failed",
                           "error": error, "seconds": round(time.perf_counter() - t0, 2)}
    if ok:
        try:
            rec["metrics"] = collect_variant(vdir)
            rec["claims"] = claims_of(vdir)
        except Exception as exc:  # noqa: BLE001
            rec.update(status="failed", error=f"results unreadable: {type(exc).__name__}: {exc}".splitlines()[0])
    atomic_write_text(vdir / "variant.json", dumps(rec))
    return rec


class _Tally:
    """The finished variants of this call, the sweep table rewritten after each one, a line each."""

    def __init__(self, out: Path, grid: Grid, records: dict[str, dict], total: int, say):
        self.out, self.grid, self.records, self.total, self.say = out, grid, records, total, say
        self.ran: list[str] = []
        self.failed: list[str] = []
        self._lock = threading.Lock()

    def add(self, name: str, rec: dict[str, Any]) -> None:
        with self._lock:
            self.records[name] = rec
            (self.ran if rec["status"] == "ok" else self.failed).append(name)
            write_table(self.out, self.grid, self.records)
            status = "ok" if rec["status"] == "ok" else f"FAILED: {rec['error']}"
            self.say(f"  [{len(self.ran) + len(self.failed)}/{self.total}] {name}: {status} ({rec['seconds']:.1f} s)")


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt inside the block (main thread only): the sweep stops its
    variants and leaves no record of the unfinished ones."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    if in_main:
        signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _schedule(todo, jobs: int, one: Callable[[Any], None], execute) -> None:
    """Run ``one(item)`` for every item, ``jobs`` at a time, leaders of shared work first
    (:func:`shared_work_order`); on any interruption stop every running variant and re-raise."""
    deps = shared_work_order([v for v, _, _ in todo])
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending, running, finished = list(todo), {}, set()
        futures = []
        try:
            while pending or running:
                while len(running) < jobs:
                    nxt = next((it for it in pending if deps[it[0].name] <= finished), None)
                    if nxt is None:
                        # nothing else is ready: rather than leave a core idle, start a variant
                        # whose leaders are already running (it repeats part of their work)
                        started = finished | set(running.values())
                        nxt = next((it for it in pending if deps[it[0].name] <= started), None)
                    if nxt is None:
                        break
                    pending.remove(nxt)
                    fut = pool.submit(one, nxt)
                    futures.append(fut)
                    running[fut] = nxt[0].name
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    finished.add(running.pop(fut))
                    fut.result()
        except BaseException:
            STOPPING.set()
            for f in futures:
                f.cancel()
            stop_running()
            stop_remote = getattr(execute, "stop", None)
            if stop_remote is not None:
                stop_remote()
            raise


def _shared_prefix(out: Path, k: int, previous: Optional[int], previous_dir: Optional[Path], stems: list[str],
                   base_params: Params, root: Optional[Path], run_notebooks, say, is_base: bool) -> Path:
    """The folder of the base parameters' outputs of notebooks ``stems[:k]`` (run once; reused
    while its fingerprint holds): ``<out>/base`` for the first start, ``<out>/base_<NN>`` after."""
    folder = out / "base" if is_base else out / f"base_{stems[k][:2]}"
    need = stems[:k]
    fp = fingerprint(base_params, need)
    rec_path = folder / "base.json"
    rec = json.loads(rec_path.read_text(encoding="utf-8")) if rec_path.exists() else {}
    if rec.get("fingerprint") == fp:
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    if previous_dir is not None:
        _copy_base(previous_dir, folder)
    else:
        folder.mkdir(parents=True)
    run_now = stems[previous if previous is not None else 0:k]
    if run_now:
        base_file = out / "base_params.yaml"
        _write_params(base_file, base_params)
        what = "notebooks every variant shares" if is_base else "notebooks shared by the variants starting at " + stems[k][:2]
        say(f"  {what} ({', '.join(st[:2] for st in run_now)}) -> {folder}")
        rc = run_notebooks(base_file, only=[st[:2] for st in run_now], out=folder, quiet=True, root=root)
        if rc != 0:
            run = read_run_info(folder) or RunInfo()
            raise DlrcError(f"sweep: the shared notebooks failed: {(run.failure or '').splitlines()[0]}")
    atomic_write_text(rec_path, dumps({"fingerprint": fp, "notebooks": need}))
    return folder


def _write_params(path: Path, params: Params) -> None:
    """A variant's complete parameter file (every path already absolute); a manifest study's
    without the twin's keys, which such a study refuses."""
    values = params.model_dump(mode="json")
    if params.study.source == "manifest":
        values["study"] = {k: v for k, v in values["study"].items() if k not in TWIN_ONLY_KEYS}
    atomic_write_text(path, yaml.safe_dump(values, sort_keys=False))


def _finish(out: Path, grid: Grid, records: dict, ran: list[str], skipped: list[str], t_start: float,
            say, failed: Optional[list[str]] = None, published: Optional[str] = None) -> SweepResult:
    table = write_table(out, grid, records)
    failed = failed if failed is not None else [n for n, r in records.items() if r.get("status") == "failed"]
    base_choices = next((v.choices for v in grid.variants if not v.overrides), None)
    summary = {
        "grid": str(grid.path), "keys": grid.keys, "variants": [v.name for v in grid.variants],
        "base_choices": {k: table_cell(v) for k, v in (base_choices or grid.base_choices).items()},
        "seconds_per_variant": {n: r.get("seconds") for n, r in records.items()},
    }
    atomic_write_text(out / "sweep.json", dumps(summary))
    try:
        if (table["status"] == "ok").any():
            band = published_auc(published, "external", "dlrc") if published else None
            SpecificationCurveDisplay.from_sweep(table, grid.keys, base_choices=grid.base_choices,
                                                 published=band).save(out / "specification_curve.png", dpi=120)
    except Exception as exc:  # noqa: BLE001 - the table is the result; the figure is a view of it
        say(f"  specification curve not drawn: {type(exc).__name__}: {exc}")
    secs = time.perf_counter() - t_start
    n_ok = int((table["status"] == "ok").sum())
    n_failed = int((table["status"] == "failed").sum())
    say(f"dlrc sweep: {n_ok} ok, {n_failed} failed, {len(skipped)} reused, in {secs:.1f} s; {out / 'sweep.csv'}")
    return SweepResult(out, table, ran, skipped, sorted(set(failed)), secs)
