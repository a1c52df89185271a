"""``dlrc sweep``: run the analysis under many parameter sets and collect what changes.

The paper fixes many analytic choices it never justifies, or never states (what ComBat is
fitted on, the LASSO lambda rule, the thresholds of the selection funnel, how the best deep
model is chosen, ...). A *sweep* re-runs the notebooks after feature extraction under every
combination of the choices named in a small grid file and tabulates, per variant, the AUCs
with their CIs, the selected features, the DLRC terms and which of the paper's claims hold.
Notebook ``09_sensitivity`` draws the specification curve from it.

Grid file (YAML)::

    factors:                  # full factorial
      harmonisation.mode: [train_reference, all, none]
      selection.lasso_rule: [1se, min]
    vary_alone:               # each value alone, every other choice at the base parameters
      selection.mw_p: [0.05]
    variants:                 # named variants: overrides of the base parameters
      paper_combat: {harmonisation.mode: all}
    last_notebook: "08"       # optional: stop each variant after this notebook

Keys are dotted parameter keys of ``params/*.yaml``; every value is validated with the
parameter schema before anything runs (a bad key or value is refused with one line naming
it). Study keys (``study.*``) and bookkeeping keys cannot be swept: a sweep analyses one study.

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
import functools
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import pandas as pd
import yaml

from dlrc_lib.core.config import TWIN_ONLY_KEYS, Params, ParamsError, Section, load_params
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.figures import render, save_figure
from dlrc_lib.core.io import atomic_write_text, dumps, read_yaml_mapping
from dlrc_lib.core.processes import MALLOC_ENV, dask_client, dask_worker_setup, die_with_parent
from dlrc_lib.reporting.claims import evaluate_claims
from dlrc_lib.reporting.sensitivity import published_auc, specification_curve
from dlrc_lib.run.extract import extract_deep_cli, extract_radiomics_cli, load_study_for
from dlrc_lib.run.layout import SWEEP_NOTEBOOK, list_notebooks, notebook_parameters, project_root
from dlrc_lib.study.schema import COHORTS

#: ``run_notebooks(params_file, only=[NN, ...], out=folder, quiet=True, root=root) -> exit status``:
#: executes notebooks of one parameter file into a run folder (``dlrc_lib.run.runner.run``).
RunNotebooks = Callable[..., int]

GRID_KEYS = ("factors", "vary_alone", "variants", "last_notebook", "description")
# keys a sweep cannot vary: the study itself and bookkeeping
FORBIDDEN_PREFIXES = ("study.", "sweep.")
FORBIDDEN_KEYS = ("run_name", "cache_dir", "published_values")
# keys whose change means other features (the sweep extracts what the cache lacks first)
EXTRACTION_PREFIXES = ("radiomics.settings", "radiomics.sequences", "deep.models", "deep.weights",
                       "deep.input_size", "deep.margin", "deep.shape_3d", "deep.clip_percentiles")
ROLES = ("radiomics", "dl", "dlrc")
FINISHED = ("ok", "failed")
MAX_VARIANTS = 2000


# ------------------------------------------------------------------------------ grid
@dataclass
class Variant:
    name: str
    overrides: dict[str, Any]  # dotted key -> value, relative to the base parameters
    choices: dict[str, Any] = field(default_factory=dict)  # every swept key -> value used


@dataclass
class Grid:
    path: Path
    keys: list[str]  # every swept key, in grid order
    variants: list[Variant]
    last_notebook: Optional[str] = None
    description: str = ""
    base_choices: dict[str, Any] = field(default_factory=dict)  # the base parameters' values


def _schema_field(key: str):
    """The pydantic field of a dotted key, or None when the key is not in the schema."""
    model: Any = Params
    info = None
    for part in key.split("."):
        if not (isinstance(model, type) and issubclass(model, Section)) or part not in model.model_fields:
            return None
        info = model.model_fields[part]
        model = info.annotation
    return info


def _key_problem(key: Any) -> Optional[str]:
    if not isinstance(key, str) or not key:
        return f"key {key!r} is not a dotted parameter key (e.g. selection.lasso_rule)"
    if key in FORBIDDEN_KEYS or key.startswith(FORBIDDEN_PREFIXES):
        return f"key '{key}' cannot be swept (a sweep analyses one study with one run name and cache)"
    info = _schema_field(key)
    if info is None:
        return f"unknown parameter key '{key}'"
    ann = info.annotation
    if isinstance(ann, type) and issubclass(ann, Section):
        return f"key '{key}' is a section; name one of its keys (e.g. {key}.{next(iter(ann.model_fields))})"
    return None


def _get(raw: dict, key: str) -> Any:
    obj: Any = raw
    for part in key.split("."):
        obj = obj[part]
    return obj


def _fmt_value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "x".join(_fmt_value(x) for x in v)
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _cell(v: Any) -> Any:
    """A choice as it appears in sweep.csv (lists joined with x)."""
    return _fmt_value(v) if isinstance(v, (list, tuple)) else v


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_") or "variant"


def _short_names(keys: list[str]) -> dict[str, str]:
    """Variant names use a key's last part (lasso_rule), the section too where that is ambiguous."""
    last = [k.split(".")[-1] for k in keys]
    return {k: (s if last.count(s) == 1 and s not in ("threshold", "form", "batch") else _flat_name(k))
            for k, s in zip(keys, last)}


def parse_grid(grid_path: str | Path, base: Params | str | Path) -> Grid:
    """Read and validate a sweep grid against the base parameters (read from their file by
    :func:`~dlrc_lib.core.config.load_params`; a path is read here).

    Raises :class:`ParamsError` with one line naming the grid file, the key and the value.
    """
    grid_path = Path(grid_path)
    base = base if isinstance(base, Params) else load_params(base)
    raw = read_yaml_mapping(grid_path, "sweep grid", ParamsError)
    unknown = [k for k in raw if k not in GRID_KEYS]
    if unknown:
        raise ParamsError(f"{grid_path}: unknown grid key '{unknown[0]}' (expected one of {', '.join(GRID_KEYS)})")
    factors, alone, named = _checked_sections(grid_path, raw, base)
    keys = list(dict.fromkeys([*factors, *alone, *(k for o in named.values() for k in o)]))
    base_values = {k: _base_value(base, k) for k in keys}

    variants: list[Variant] = []
    seen: dict[str, str] = {}
    short = _short_names(keys)

    def add(name: Optional[str], overrides: dict[str, Any]) -> None:
        overrides = {k: v for k, v in overrides.items() if not _same(v, base_values[k])}
        choices = {k: overrides.get(k, base_values[k]) for k in keys}
        ident = json.dumps(choices, sort_keys=True, default=str)
        if ident in seen:
            return
        if name is None:
            name = "__".join(f"{short[k]}={_fmt_value(v)}" for k, v in overrides.items()) or "base"
            name = _safe(name)
        if name in {v.name for v in variants}:
            raise ParamsError(f"{grid_path}: two variants are named {name!r}")
        seen[ident] = name
        variants.append(Variant(name, overrides, choices))

    fkeys = list(factors)
    for combo in itertools.product(*(factors[k] for k in fkeys)):
        add(None, dict(zip(fkeys, combo)))
    for key, values in alone.items():
        for v in values:
            add(None, {key: v})
    for name, overrides in named.items():
        add(str(name), dict(overrides))
    if len(variants) > MAX_VARIANTS:
        raise ParamsError(f"{grid_path}: {len(variants)} variants; at most {MAX_VARIANTS}")
    last = raw.get("last_notebook")
    if last is not None:
        last = str(last).zfill(2)[:2]
        if not last.isdigit():
            raise ParamsError(f"{grid_path}: last_notebook {raw['last_notebook']!r} is not a notebook number")
    return Grid(grid_path, keys, variants, last, str(raw.get("description") or ""), base_values)


def _checked_sections(grid_path: Path, raw: Mapping[str, Any], base: Params):
    """The grid's ``factors``, ``vary_alone`` and ``variants``, every key and value checked
    against the base parameters (one-line :class:`ParamsError` naming the grid file)."""
    factors = raw.get("factors") or {}
    alone = raw.get("vary_alone") or {}
    named = raw.get("variants") or {}
    for section, value in (("factors", factors), ("vary_alone", alone), ("variants", named)):
        if not isinstance(value, dict):
            raise ParamsError(f"{grid_path}: '{section}' must be a mapping")
    if not (factors or alone or named):
        raise ParamsError(f"{grid_path}: no factors, vary_alone or variants: nothing to sweep")

    def check_value(where: str, key: str, value: Any) -> None:
        problem = _key_problem(key)
        if problem:
            raise ParamsError(f"{grid_path}: {where}: {problem}")
        try:
            base.with_overrides({key: value})
        except ParamsError as exc:
            msg = str(exc).split(": ", 1)[-1]
            raise ParamsError(f"{grid_path}: {where}: {key} = {value!r} is not allowed ({msg})") from None

    for section, mapping in (("factors", factors), ("vary_alone", alone)):
        for key, values in mapping.items():
            if not isinstance(values, list) or not values:
                problem = _key_problem(key)
                if problem:
                    raise ParamsError(f"{grid_path}: {section}: {problem}")
                raise ParamsError(f"{grid_path}: {section}: {key} needs a non-empty list of values")
            for v in values:
                check_value(section, key, v)
            if len({json.dumps(v, sort_keys=True, default=str) for v in values}) < len(values):
                raise ParamsError(f"{grid_path}: {section}: {key} lists a value twice")
    for name, overrides in named.items():
        if not isinstance(overrides, dict):
            raise ParamsError(f"{grid_path}: variants: {name} must map parameter keys to values")
        if _safe(str(name)) != str(name):
            raise ParamsError(f"{grid_path}: variants: name {name!r} may use only letters, digits and . _ = + -")
        for key, v in overrides.items():
            check_value(f"variants: {name}", key, v)
        try:
            base.with_overrides(dict(overrides))
        except ParamsError as exc:
            raise ParamsError(f"{grid_path}: variants: {name}: {str(exc).split(': ', 1)[-1]}") from None

    return factors, alone, named


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _base_value(params: Params, key: str) -> Any:
    return _get(params.model_dump(mode="json"), key)


def variant_params(base: Params | str | Path, variant: Variant, cache_dir: Optional[str] = None) -> Params:
    """The base parameters with the variant's overrides (no nested sweep); ``cache_dir`` (absolute)
    replaces the file's feature store, as ``dlrc run --cache-dir`` does."""
    base = base if isinstance(base, Params) else load_params(base)
    overrides = dict(variant.overrides)
    if cache_dir:
        overrides["cache_dir"] = cache_dir
    overrides["sweep.grid"] = None
    return base.with_overrides(overrides)


# how a run executes, not what it computes: a change must not rerun finished variants (the
# cache is keyed by content, so where it lives changes no number)
_EXECUTION_ONLY = {"sweep": None, "cache_dir": None, "radiomics": ("n_jobs", "dask_scheduler", "progress"),
                   "study": ("n_jobs", "twin_dir"), "deep": ("workers", "batch_size", "dask_scheduler")}
# files whose content (not where they are) the numbers depend on
_CONTENT_KEYS = (("radiomics", "settings"), (None, "published_values"), ("study", "manifest"))


def fingerprint(params: Params, notebooks: list[str]) -> str:
    """What a variant's numbers depend on: its parameters (less the execution settings) and
    the notebooks it runs."""
    dump = params.model_dump(mode="json")
    for section, keys in _EXECUTION_ONLY.items():
        if keys is None:
            dump.pop(section, None)
        else:
            for k in keys:
                dump.get(section, {}).pop(k, None)
    for section, key in _CONTENT_KEYS:
        holder = dump if section is None else dump.get(section, {})
        value = holder.get(key)
        if value and Path(value).is_file():
            holder[key] = "sha256:" + hashlib.sha256(Path(value).read_bytes()).hexdigest()
    doc = {"params": dump, "notebooks": notebooks}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


# -------------------------------------------------------------------------- planning
def _flat_name(key: str) -> str:
    section, _, rest = key.partition(".")
    return f"{section}_{rest}" if rest else section


def notebook_plan(grid: Grid, root: Path) -> tuple[list[Path], int]:
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
        names = {_flat_name(k) for k in v.overrides}
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
        names = {_flat_name(k) for k in v.overrides}
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
    res = {}
    for nb in ("03_radiomics", "04_deep_learning", "05_dlrc"):
        p = run_dir / "results" / f"{nb}.json"
        res[nb] = json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}
    best = res["05_dlrc"].get("best_model") or res["04_deep_learning"].get("best_model")
    out["best_dl_model"] = best
    state03 = res["03_radiomics"].get("state") or {}
    out["n_features_radiomics"] = len(state03.get("features") or []) if state03 else None
    state04 = (res["04_deep_learning"].get("states") or {}).get(best) or {}
    out["n_features_dl"] = len(state04.get("features") or []) if state04 else None
    terms = res["05_dlrc"].get("dlrc_terms")
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
        row.update({k: _cell(val) for k, val in v.choices.items()})
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


Executor = Callable[[Path, Path, list[str], Path], tuple[bool, Optional[str]]]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _stop_leftover(vdir: Path) -> None:
    """A variant process left by an interrupted sweep (its pid recorded in ``.pid``) is ended."""
    pidfile = vdir / ".pid"
    if not pidfile.exists():
        return
    try:
        pid = int(pidfile.read_text(encoding="utf-8").strip())
    except ValueError:
        pid = 0
    if pid > 0 and _alive(pid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmd = ""
        if "dlrc_lib" in cmd and str(vdir) in cmd:
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                pass
            for _ in range(50):
                if not _alive(pid):
                    break
                time.sleep(0.1)
    pidfile.unlink(missing_ok=True)


_RUNNING: dict[int, subprocess.Popen] = {}
_LOCK = threading.Lock()
_STOPPING = threading.Event()  # set when the sweep is interrupted: unfinished variants leave no record


def _variant_command(vdir: Path, params_file: Path, only: list[str]) -> list[str]:
    return [sys.executable, "-m", "dlrc_lib.run.cli", "run", "--params", str(params_file),
            "--out", str(vdir), "--only", *only]


def run_in_subprocess(params_file: str | Path, only: list[str], out: Path, quiet: bool = True,
                      root: Optional[Path] = None) -> int:
    """``dlrc run --params P --only ... --out DIR`` in a child process (output kept in
    ``DIR/sweep.log``); its exit status."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "sweep.log", "w") as log:
        return subprocess.call(_variant_command(out, Path(params_file), list(only)), cwd=root or project_root(),
                               stdout=log, stderr=subprocess.STDOUT, env=_variant_env())


def _variant_env(threads: Optional[int] = None) -> dict[str, str]:
    """The environment of a variant's process: this package importable, ``threads`` BLAS/OpenMP
    threads, and none of the malloc tunables a Dask nanny sets (see
    :func:`~dlrc_lib.core.processes.undo_malloc_tuning`; the variant's kernel would inherit them)."""
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    pkg_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    return env


def _failure_message(vdir: Path, rc: int) -> str:
    text = (vdir / "sweep.log").read_text(errors="replace")
    errors = [ln for ln in text.splitlines() if ln.startswith("dlrc run: error:")]
    msg = errors[0][len("dlrc run: error: "):] if errors else f"exit status {rc}"
    if not errors:
        tail = [ln for ln in text.splitlines() if ln.strip()]
        msg += f": {tail[-1]}" if tail else ""
    return msg


def run_variant_process(cmd: list[str], cwd: str, env: dict[str, str], vdir: Path,
                        should_stop: Optional[Callable[[], bool]] = None) -> tuple[bool, Optional[str]]:
    """Run one variant's command in its own process group (output in ``<vdir>/sweep.log``,
    pid in ``<vdir>/.pid``); it ends with this process. ``should_stop``, polled every second,
    ends it early (the sweep was interrupted). Returns ``(ok, error)``."""
    vdir = Path(vdir)
    with open(vdir / "sweep.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=functools.partial(die_with_parent, os.getpid()))
        atomic_write_text(vdir / ".pid", f"{proc.pid}\n")
        with _LOCK:
            _RUNNING[proc.pid] = proc
        try:
            while True:
                try:
                    rc = proc.wait(timeout=1.0 if should_stop else None)
                    break
                except subprocess.TimeoutExpired:
                    if should_stop():
                        _terminate(proc)
        finally:
            with _LOCK:
                _RUNNING.pop(proc.pid, None)
    (vdir / ".pid").unlink(missing_ok=True)
    return (True, None) if rc == 0 else (False, _failure_message(vdir, rc))


def _terminate(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except OSError:
        pass


def subprocess_executor(threads: int = 1) -> Executor:
    """Run a variant's notebooks with ``python -m dlrc_lib.run.cli run`` in its own process group."""

    def execute(vdir: Path, params_file: Path, only: list[str], root: Path) -> tuple[bool, Optional[str]]:
        return run_variant_process(_variant_command(vdir, params_file, only), str(Path.cwd()),
                                   _variant_env(threads), vdir)

    return execute


# ------------------------------------------------------------------------- on Dask
def _variant_on_worker(cmd: list[str], cwd: str, vdir: str, stop_event: str,
                       threads_by_host: Mapping[str, int]) -> tuple[bool, Optional[str]]:
    """A Dask task: one variant's ``dlrc run`` as a child of the worker, with its share of the
    host's cores as BLAS threads; it ends when the sweep sets ``stop_event``."""
    from distributed import Event, get_worker

    worker = get_worker()
    threads = threads_by_host.get(_host(worker.address), 1)
    event = Event(stop_event)
    return run_variant_process(cmd, cwd, _variant_env(threads), Path(vdir), should_stop=event.is_set)


def _host(address: str) -> str:
    """``tcp://10.0.0.5:40123`` -> ``10.0.0.5``."""
    return address.split("://")[-1].rsplit(":", 1)[0]


class DaskExecutor:
    """Variants as tasks on a Dask cluster (``radiomics.dask_scheduler``): each task runs the
    variant's ``dlrc run`` on the worker it lands on (workers must see the same files: the
    cache, the study and the sweep folder). ``run_variant`` replaces the subprocess (tests)."""

    def __init__(self, address: str, timeout_s: float = 20.0,
                 run_variant: Optional[Callable[..., tuple[bool, Optional[str]]]] = None):

        self.client = dask_client(address, timeout_s)
        from distributed import Event

        self.address = address
        self.client.run(dask_worker_setup)  # the worker's profiler alone costs ~4 % of a core
        self._threads_by_host: Optional[dict[str, int]] = None
        self.stop_event = f"dlrc-sweep-stop-{os.getpid()}-{time.time_ns()}"
        self._event = Event(self.stop_event, client=self.client)
        self.run_variant = run_variant

    @property
    def threads(self) -> int:
        """Tasks the cluster runs at once (its worker threads)."""
        return max(1, sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values()))

    def threads_by_host(self) -> dict[str, int]:
        """BLAS/OpenMP threads for one variant on each host: its cores shared by every worker
        thread on it (2 workers x 1 thread on 2 cores: 1 each, as the local pool's variants)."""
        cores = self.client.run(os.cpu_count)  # worker address -> cores of its machine
        tasks: dict[str, int] = {}
        for addr, w in self.client.scheduler_info()["workers"].items():
            tasks[_host(addr)] = tasks.get(_host(addr), 0) + int(w.get("nthreads", 1))
        return {_host(a): max(1, int(c or 1) // max(1, tasks.get(_host(a), 1))) for a, c in cores.items()}

    def _host_threads(self) -> dict[str, int]:
        if self._threads_by_host is None:  # asked of the workers once per sweep
            self._threads_by_host = self.threads_by_host()
        return self._threads_by_host

    def __call__(self, vdir: Path, params_file: Path, only: list[str], root: Path) -> tuple[bool, Optional[str]]:
        if self.run_variant is not None:
            fut = self.client.submit(self.run_variant, vdir, params_file, only, root, pure=False)
        else:
            fut = self.client.submit(_variant_on_worker, _variant_command(vdir, params_file, only),
                                     str(Path.cwd()), str(vdir), self.stop_event, self._host_threads(),
                                     pure=False)
        return fut.result()

    def stop(self) -> None:
        """End the variants running on the workers (the sweep was interrupted)."""
        try:
            self._event.set()
        except Exception:  # noqa: BLE001 - the cluster may be gone already
            pass

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            pass


def _stop_running() -> None:
    with _LOCK:
        procs = list(_RUNNING.values())
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            pass


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
    params_path = Path(params_path)
    cache = str(Path(cache_dir).expanduser().resolve()) if cache_dir else None
    from_file = load_params(params_path)  # read once; every variant is these with its overrides
    base = variant_params(from_file, Variant("base", {}), cache) if cache else from_file
    grid = parse_grid(grid_path, from_file)
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
        if other and other != os.getpid() and _alive(other):
            raise DlrcError(f"{out}: another sweep is running there (pid {other})")
    atomic_write_text(lock, f"{os.getpid()}\n")
    _STOPPING.clear()
    try:
        return _run_sweep(base, params_path, grid, out, jobs, retry_failed, say, executor, root,
                          extract, run_notebooks, t_start, cache)
    finally:
        _stop_running()
        lock.unlink(missing_ok=True)
        if own:
            own.close()


def _run_sweep(base: Params, params_path: Path, grid: Grid, out: Path, jobs: int, retry_failed: bool,
               say, executor, root: Path, extract: bool, run_notebooks, t_start: float,
               cache: Optional[str] = None) -> SweepResult:
    notebooks, k_min = notebook_plan(grid, root)
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
                                        root, run_notebooks, say, is_base=k == k_min)
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
    _stop_leftover(vdir)
    _copy_base(prefix_dir, vdir)
    pfile = vdir / "params.yaml"
    _write_params(pfile, vp)
    if _STOPPING.is_set():
        return None
    try:
        ok, error = execute(vdir, pfile, only, root)
    except Exception as exc:  # noqa: BLE001 - recorded, the other variants go on
        ok, error = False, f"{type(exc).__name__}: {exc}".splitlines()[0]
    if _STOPPING.is_set():
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
            _STOPPING.set()
            for f in futures:
                f.cancel()
            _stop_running()
            stop_remote = getattr(execute, "stop", None)
            if stop_remote is not None:
                stop_remote()
            raise


def _shared_prefix(out: Path, k: int, previous: Optional[int], previous_dir: Optional[Path], stems: list[str],
                   base_params: Params, root: Path, run_notebooks, say, is_base: bool) -> Path:
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
            run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
            raise DlrcError(f"sweep: the shared notebooks failed: {(run.get('failure') or '').splitlines()[0]}")
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
        "base_choices": {k: _cell(v) for k, v in (base_choices or grid.base_choices).items()},
        "seconds_per_variant": {n: r.get("seconds") for n, r in records.items()},
    }
    atomic_write_text(out / "sweep.json", dumps(summary))
    try:
        if (table["status"] == "ok").any():
            band = published_auc(published, "external", "dlrc") if published else None
            import matplotlib.pyplot as plt

            fig = render(specification_curve(table, grid.keys, base_choices=grid.base_choices, published=band))
            save_figure(fig, out / "specification_curve.png", dpi=120)
            plt.close(fig)
    except Exception as exc:  # noqa: BLE001 - the table is the result; the figure is a view of it
        say(f"  specification curve not drawn: {type(exc).__name__}: {exc}")
    secs = time.perf_counter() - t_start
    n_ok = int((table["status"] == "ok").sum())
    n_failed = int((table["status"] == "failed").sum())
    say(f"dlrc sweep: {n_ok} ok, {n_failed} failed, {len(skipped)} reused, in {secs:.1f} s; {out / 'sweep.csv'}")
    return SweepResult(out, table, ran, skipped, sorted(set(failed)), secs)
