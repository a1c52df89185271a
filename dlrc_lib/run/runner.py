"""``dlrc run``: execute the report notebooks in order with papermill.

Each notebook receives, in its ``parameters`` cell, the values of the parameter file that
it declares (flattened as ``<section>_<key>``), plus ``run_dir``, ``params_file`` and
``study_manifest`` (the resolved manifest of the study). Outputs go to ``reports/<run>/``:
executed notebooks, their HTML copies, tables, figures, results, ``run.json``, the
reporting checklist (``checklist.html``/``.csv``, :mod:`dlrc_lib.reporting.checklist`) and
``index.html``. A notebook stopped by a problem of the data or the parameters (a ``DlrcError``,
said in one line) lets the others run and the report be written (status ``incomplete``); any
other failure stops the run, with the notebook, the cell and the traceback shown. A run without
``--only`` starts from an empty run folder (its sweep's finished variants excepted).
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from dlrc_lib import __version__
from dlrc_lib.core.config import TWIN_ONLY_KEYS, Params, ParamsError, flatten, load_params
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.io import atomic_write_text, dumps
from dlrc_lib.core.machine import children_cpu_seconds, cpu_facts, speed_warnings
from dlrc_lib.core.progress import ConsoleEcho
from dlrc_lib.core.resources import checkout
from dlrc_lib.core.resources import params_file as find_params_file
from dlrc_lib.features.store import file_digest
from dlrc_lib.record import RunInfo, RunRecord, read_notebook_record, read_run_info
from dlrc_lib.reporting.checklist import write_checklist
from dlrc_lib.reporting.index_page import write_index
from dlrc_lib.run.layout import SWEEP_NOTEBOOK, list_notebooks, notebook_parameters
from dlrc_lib.run.paths import (ENV_CELLS_SHOW_RUN, ENV_PARAMS_FILE, ENV_RUNNER, FRAME_PRODUCERS,
                                project_root, resolve_parameters)
from dlrc_lib.run.sweep import run_sweep
from dlrc_lib.study.manifest import load_study
from dlrc_lib.study.validate import attach_digests
from dlrc_lib.study.validation_cache import last_digests
from dlrc_lib.twin.prepare import prepare_study

# Packages whose versions matter for the numbers (recorded in run.json).
TRACKED_PACKAGES = (
    "numpy", "scipy", "pandas", "scikit-learn", "statsmodels", "pyradiomics", "SimpleITK",
    "torch", "torchvision", "neuroCombat", "plotnine", "matplotlib", "papermill", "pyarrow",
)

# Names a notebook may declare beyond the schema's: set by the runner (write_artifacts: the
# runner writes the run's tables and figures; a notebook opened interactively does not by default).
RUN_NOTEBOOK_KEYS = ("run_dir", "params_file", "study_manifest", "write_artifacts")


def resolve_study(params: Params) -> Path:
    """The study manifest for this run (the twin is generated here when missing)."""
    return Path(prepare_study(params))


def write_analysed_study(manifest: Path, params: Params, run_dir: Path) -> Path:
    """The patient table every notebook of this run reads: ``<run>/study_manifest.csv``.

    Written once by the runner from the validated manifest, with the run's parameters: file
    paths made absolute, cohorts assigned where the manifest has none (``study.internal_centres``,
    ``study.train_fraction``, ``seed``) and c_LNM derived where it is not given, and the SHA-256
    of every file as validated (``sha256_<column>``: extraction refuses a file changed since).
    All notebooks then analyse the same patients in the same cohorts, and the run folder records which.
    """
    if not manifest.is_file():
        return manifest
    # with the SHA-256 of the files as validated by prepare_study in this process
    study = attach_digests(load_study(manifest, params), last_digests(manifest) or {})
    target = run_dir / "study_manifest.csv"
    atomic_write_text(target, study.to_csv(index=False, lineterminator="\n"))
    return target


def notebook_inputs(params: Params, params_file: Path, run_dir: Path, manifest: Path,
                    root: Path | None = None) -> dict[str, Any]:
    """The values injected into the notebooks' parameters cells: every path absolute, resolved
    as a notebook opened interactively resolves it (:func:`resolve_parameters`)."""
    flat = flatten(params)
    flat.update(run_dir=str(run_dir), params_file=str(params_file), study_manifest=str(manifest),
                write_artifacts=True)
    return resolve_parameters(flat, root=root, params_file=params_file)


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def package_versions() -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {"python": platform.python_version(), "dlrc": __version__}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def input_hashes(params_file: Path, params: Params, manifest: Path) -> dict[str, str]:
    """sha256 of the parameter files, the manifest and (combined) every image/mask it lists."""
    import hashlib

    def digest(path: Path) -> str:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    hashes = {str(params_file): digest(params_file)}
    for extra in (params.radiomics.settings, params.published_values):
        if Path(extra).is_file():
            hashes[str(extra)] = digest(Path(extra))
    if manifest.is_file():
        hashes[str(manifest)] = digest(manifest)
        study = load_study(manifest)
        cols = [c for c in study.columns if c.startswith(("image_", "mask_"))]
        combined = hashlib.sha256()
        for path in sorted({str(p) for c in cols for p in study[c].dropna() if str(p)}):
            combined.update(path.encode() + b"\0" + file_digest(path).encode())
        hashes["images_and_masks (combined)"] = combined.hexdigest()
    return hashes


# Exceptions a notebook raises for a problem of the data or the parameters (dlrc_lib.core.errors.DlrcError
# and its subclasses, an image that cannot be read): their message is the whole story, the traceback
# would only hide it.
EXPECTED_ERRORS = ("DlrcError", "EmptySelectionError", "MissingInput", "ParamsError", "ImageReadError")


class Failure(str):
    """A notebook's failure summary; ``expected``: a problem of the data or the parameters (one
    line, the run goes on) rather than an error of the code (traceback, the run stops)."""

    expected: bool

    def __new__(cls, text: str, expected: bool = False) -> "Failure":
        obj = super().__new__(cls, text)
        obj.expected = expected
        return obj


def _error_summary(exc: Exception, nb: Path) -> Failure:
    """Name the notebook and the failing cell and show the traceback."""
    import re

    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    cell = getattr(exc, "exec_count", None)
    tb = getattr(exc, "traceback", None)
    tb_text = "\n".join(tb) if isinstance(tb, list) else str(tb or "")
    tb_text = re.sub(r"\x1b\[[0-9;]*m", "", tb_text)  # strip ANSI colours
    where = f"cell [{cell}]" if cell is not None else "a cell"
    if "[Errno 28]" in str(evalue) or "No space left on device" in str(evalue):
        return Failure(f"notebook {nb.name} failed in {where}: no space left on the device ({evalue})")
    if ename == "MissingInput":
        # an earlier notebook did not produce what this one reads
        return Failure(f"notebook {nb.name} skipped: {evalue}", expected=True)
    if ename in EXPECTED_ERRORS:
        # a problem of the data or the parameters, said in words by the library: no traceback
        return Failure(f"notebook {nb.name} stopped in {where}: {evalue} (the executed notebook is in the "
                       "run's notebooks/)", expected=True)
    return Failure(f"notebook {nb.name} failed in {where}: {ename}: {evalue}\n{tb_text}")


# Cells written for one kind of study only (cell tags): the other kind's report leaves them out.
STUDY_TAGS = {"twin": "twin-only", "manifest": "manifest-only"}
# Cells that need deep models, and the cells that say deep learning is switched off
# (``deep.models: []``): a run keeps the one kind its parameters call for.
DEEP_TAGS = {True: "deep-learning", False: "deep-off"}


# A twin below this scale (the quick run's 0.05 = 54 patients) is a demo of the pipeline: its pages
# say so first, since its AUCs, calibration and decision curves rest on a few dozen patients.
DEMO_SCALE = 0.2


def demo_line(params: Params, n_patients: int) -> str | None:
    """The line a demo-sized twin run opens every page with, or None."""
    if params.study.source != "twin" or params.study.scale >= DEMO_SCALE:
        return None
    return (f"demo size ({n_patients} patients): for testing the pipeline; its numbers carry no meaning — "
            "use `make teach` or the reference run (docs/reference-run/)")


def _with_values(source: str, values: dict[str, Any]) -> str:
    """A parameters cell's text with each one-line ``name: type = default`` showing ``values[name]``."""
    import ast
    import re

    out = []
    for line in source.splitlines(keepends=True):
        m = re.match(r"^(\w+)(\s*:[^=]*=\s*)(.*?)(\s+#.*)?(\n?)$", line)
        if m and m.group(1) in values:
            try:
                ast.literal_eval(m.group(3))
            except (ValueError, SyntaxError):
                out.append(line)
                continue
            line = f"{m.group(1)}{m.group(2)}{values[m.group(1)]!r}{m.group(4) or ''}{m.group(5)}"
        out.append(line)
    return "".join(out)


def study_cells(nb: Path, source: str, banner: str | None = None, values: dict[str, Any] | None = None,
                deep: bool = True):
    """The notebook as the run executes it: without the cells tagged for the other kind of study
    (``twin-only`` prose on a manifest study's pages and ``manifest-only`` prose on the twin's),
    without the ``deep-learning`` cells when ``deep`` is False (``deep.models: []``) or the
    ``deep-off`` ones when it is True, and opening with ``banner`` (e.g. :func:`demo_line`) when given."""
    import nbformat

    node = nbformat.read(str(nb), as_version=4)
    drop = {tag for kind, tag in STUDY_TAGS.items() if kind != source} | {DEEP_TAGS[not deep]}
    node.cells = [c for c in node.cells if not drop & set(c.get("metadata", {}).get("tags", []))]
    if values and source != "twin":
        # a manifest study's pages show its own values, not the defaults written for the quick twin
        for c in node.cells:
            if "parameters" in c.get("metadata", {}).get("tags", []):
                c.source = _with_values(c.source, values)
    if banner:
        cell = nbformat.v4.new_markdown_cell(f"> **{banner[0].upper() + banner[1:]}**")
        cell.metadata["tags"] = ["run-banner"]
        node.cells.insert(0, cell)
    return node


def execute_notebook(nb: Path, out_nb: Path, inputs: dict[str, Any], root: Path,
                     echo: Any = None) -> None:
    """Run one notebook with papermill; ``echo`` (e.g. :class:`dlrc_lib.core.progress.ConsoleEcho`)
    receives the kernel's stderr, where the progress bars of long cells go."""
    import papermill as pm

    from dlrc_lib.run.kernels import QuietShutdownKernelManager  # deferred: imports jupyter_client

    declared = notebook_parameters(nb)
    unknown = [n for n in declared if n not in inputs]
    if unknown:
        raise DlrcError(
            f"notebook {nb.name}: parameters {', '.join(unknown)} are not keys of the parameter schema"
        )
    values = {name: inputs[name] for name in declared}
    source = str(inputs.get("study_source", "twin"))
    # a manifest study's parameters cells show its own values (study_cells): the kernel then
    # lists no replaced parameters against the twin's defaults
    os.environ[ENV_CELLS_SHOW_RUN] = "1" if source != "twin" else "0"
    pm.execute_notebook(
        study_cells(nb, source, inputs.get("_banner"), values, deep=bool(inputs.get("deep_models", True))),
        str(out_nb), parameters=values, cwd=str(root), kernel_name="python3",
        progress_bar=False, log_output=False, request_save_on_cell_execute=False, stderr_file=echo,
        # the kernel is local and private to this run: keep ipykernel's TCP notice off the console
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        # shut the kernel down without interrupting it: no "KeyboardInterrupt caught in kernel" on the console
        kernel_manager_class=QuietShutdownKernelManager,
    )


def export_html(executed: Path, html: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(executed), as_version=4))
    atomic_write_text(html, body)


def _notebook_provenance(run_dir: Path, stem: str) -> dict:
    rec = read_notebook_record(run_dir, stem)
    return dict(rec.provenance) if rec is not None else {}


def collect_warnings(run_dir: Path) -> dict[str, list[str]]:
    """Notebook -> the warnings its record holds."""
    return RunRecord.load(run_dir).warnings if Path(run_dir).is_dir() else {}


def run(params_path: str | Path, only: Iterable[str] | None = None, out: str | Path | None = None,
        quiet: bool = False, root: Path | None = None, cache_dir: str | Path | None = None) -> int:
    """Execute the notebooks; return 0 on success, 1 when a notebook failed or stopped.

    A notebook stopped by a problem of the data or the parameters (a ``DlrcError`` whose message
    says what to change, e.g. a LASSO that kept no feature) does not end the run: the notebooks
    after it run (those needing its results say so in one line), and the report is written with
    what exists (status ``incomplete``). Any other failure ends the run there.

    ``params_path`` is a parameter file or the name of one of the package's (``quick``).
    ``root`` is the directory holding ``notebooks/`` and the working directory of the
    kernels (default: the package's notebooks, run in the checkout, or in the working directory
    when dlrc is installed). ``cache_dir`` replaces the parameter file's.
    """
    params_file = find_params_file(params_path)
    params = load_params(params_file)
    if cache_dir is not None:
        params.cache_dir = str(Path(cache_dir).expanduser().resolve())
    notebooks = _selected_notebooks(params, params_file, root, only)  # root's notebooks/, else the package's
    root = Path(root) if root else project_root()
    run_dir = (Path(out) if out else Path("reports") / params.run_name).resolve()
    if not only:
        _clear_outputs(run_dir)  # nothing of an earlier run can mix into this one's results
    (run_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_MARKER).touch()
    (run_dir / "html").mkdir(parents=True, exist_ok=True)
    say = (lambda *_: None) if quiet else (lambda msg: print(msg, flush=True))

    t0 = time.perf_counter()
    say(f"dlrc run: {params_file} -> {run_dir}")
    manifest = resolve_study(params).resolve()
    analysed = write_analysed_study(manifest, params, run_dir)
    say(f"  study: {manifest} ({time.perf_counter() - t0:.1f} s)")
    inputs = notebook_inputs(params, params_file.resolve(), run_dir, analysed, root=root)
    banner = demo_line(params, _count_patients(analysed))
    if banner:
        inputs["_banner"] = banner  # not a notebook parameter: the first cell of every page
        say(f"  {banner}")
    sweep_dir = Path(params.sweep.out).resolve() if params.sweep.out else run_dir / "sweep"
    inputs["sweep_out"] = str(sweep_dir)
    _kernel_environment(params_file)

    run_json = run_dir / "run.json"
    previous = (read_run_info(run_dir) or RunInfo()).data
    timings: dict[str, Any] = dict(previous.get("notebooks", {})) if only else {}
    machine = {"at_start": cpu_facts(torch_capability=False)}

    def step(nb: Path) -> Failure | None:
        if nb.name[:2] != SWEEP_NOTEBOOK:
            return _run_one(nb, run_dir, inputs, root, quiet)
        # the sweep's variants first (finished ones are reused); a failed variant is in its table
        try:
            run_sweep(params_file, params.sweep.grid, out=sweep_dir, jobs=params.sweep.jobs, quiet=quiet,
                      cache_dir=params.cache_dir, run_notebooks=run)
            return _run_one(nb, run_dir, inputs, root, quiet)
        except (DlrcError, ParamsError) as exc:  # the sweep's own one-line refusal: the report still comes
            return Failure(f"notebook {nb.name} stopped in its sweep: {exc}", expected=True)

    status, failures = _run_notebooks(notebooks, step, run_dir, timings, say, t0)
    failure = "\n".join(failures) or None
    if status == "ok" and any(isinstance(t, dict) and t.get("status") != "ok" for t in timings.values()):
        status = "incomplete"  # --only: a notebook of the earlier run stopped or failed
    machine.update(cpu_facts())
    speed = _speed_warnings(timings, {nb.stem for nb in notebooks}, machine)
    record = _provenance(params, params_file, manifest, analysed, run_dir, status, failure, timings,
                         time.perf_counter() - t0)
    record["machine"] = machine
    record["demo"] = banner
    if speed:
        record["warnings"] = {"run (speed)": speed, **record["warnings"]}
    atomic_write_text(run_json, dumps(record))
    write_checklist(run_dir, params)
    write_index(run_dir, params)
    say(f"dlrc run: {status} in {time.perf_counter() - t0:.1f} s; report: {run_dir / 'index.html'}")
    return 0 if status == "ok" else 1


def _run_notebooks(notebooks: list[Path], step, run_dir: Path, timings: dict[str, Any], say,
                   t0: float) -> tuple[str, list[str]]:
    """Execute each notebook by ``step``, recording its time and status in ``timings``; the
    run's status and the failures. A problem of the data or the parameters (an expected
    failure) lets the notebooks after it run; any other failure stops the run."""
    status: str = "ok"
    failures: list[str] = []
    for i, nb in enumerate(notebooks, 1):
        start = time.perf_counter()
        cpu0 = children_cpu_seconds()
        say(f"  [{i}/{len(notebooks)}] {nb.stem} ...")
        failure = step(nb)
        secs = time.perf_counter() - start
        cpu = children_cpu_seconds() - cpu0
        if failure is not None:
            expected = failure.expected
            timings[nb.stem] = {"seconds": round(secs, 2), "cpu_seconds": round(cpu, 2),
                                "status": "stopped" if expected else "failed"}
            failures.append(failure)
            print(f"dlrc run: {'warning' if expected else 'error'}: {failure}", file=sys.stderr)
            if not expected:
                return "failed", failures
            # a problem of the data or the parameters: the notebooks that do not need this one's
            # results still run, the others say what they miss, and the report says what is missing
            status = "incomplete"
            continue
        timings[nb.stem] = {"seconds": round(secs, 2), "cpu_seconds": round(cpu, 2), "status": "ok"}
        prov = _notebook_provenance(run_dir, nb.stem)
        if prov:
            timings[nb.stem]["provenance"] = prov
        say(f"  [{i}/{len(notebooks)}] {nb.stem} done in {secs:.1f} s (elapsed {time.perf_counter() - t0:.1f} s)")
    return status, failures


def _speed_warnings(timings: dict[str, Any], ran: set[str], machine: dict) -> list[str]:
    """The speed warnings of the notebooks this call ran (also printed)."""
    speed = [w for stem, t in timings.items() if stem in ran and isinstance(t, dict) and "cpu_seconds" in t
             for w in speed_warnings(stem, t["seconds"], t["cpu_seconds"], machine)]
    for w in speed:
        print(f"dlrc run: warning: {w}", file=sys.stderr)
    return speed


def _count_patients(manifest: Path) -> int:
    try:
        with open(manifest, encoding="utf-8") as fh:
            return max(sum(1 for line in fh if line.strip()) - 1, 0)
    except OSError:
        return 0


def _selected_notebooks(params: Params, params_file: Path, root: Path | None,
                        only: Iterable[str] | None) -> list[Path]:
    """The notebooks to run, in order; notebook 09 reads a sweep, so it runs only when the
    parameters name a sweep grid."""
    notebooks = list_notebooks(root, only)
    sweep_nbs = [nb for nb in notebooks if nb.name[:2] == SWEEP_NOTEBOOK]
    if sweep_nbs and not params.sweep.grid:
        if only and len(sweep_nbs) == len(notebooks):
            raise DlrcError(f"{params_file}: notebook {SWEEP_NOTEBOOK} needs a sweep grid (key 'sweep.grid')")
        notebooks = [nb for nb in notebooks if nb not in sweep_nbs]
    return notebooks


def _kernel_environment(params_file: Path) -> None:
    """What the kernels inherit: headless widgets, single-threaded BLAS, the runner's marker,
    the parameter file, and the same dlrc_lib as this process, whatever their working directory."""
    os.environ["DLRC_HEADLESS"] = "1"  # widgets fall back to static output
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # the same numbers on any machine (single_thread_blas)
    os.environ[ENV_RUNNER] = "1"  # notebooks take the injected parameters as they are
    os.environ[ENV_PARAMS_FILE] = str(params_file)
    pkg_parent = str(Path(__file__).resolve().parents[2])  # the folder holding dlrc_lib/
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if pkg_parent not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in paths if p])


def _run_one(nb: Path, run_dir: Path, inputs: dict[str, Any], root: Path, quiet: bool) -> Failure | None:
    """Execute one notebook into the run folder and export its HTML; the failure's summary, or None."""
    out_nb = run_dir / "notebooks" / nb.name
    # a notebook's results (and its warnings) and the frames it hands on describe its latest
    # execution only: a notebook that stops leaves nothing older for the next ones to read
    (run_dir / "results" / f"{nb.stem}.json").unlink(missing_ok=True)
    for frame, producer in FRAME_PRODUCERS.items():
        if producer == nb.stem:
            (run_dir / "data" / f"{frame}.parquet").unlink(missing_ok=True)
    try:
        echo = None if quiet else ConsoleEcho()
        try:
            execute_notebook(nb, out_nb, inputs, root, echo=echo)
        finally:
            if echo is not None:
                echo.close()
        export_html(out_nb, run_dir / "html" / f"{nb.stem}.html")
    except DlrcError:
        raise
    except Exception as exc:  # papermill's execution error carries the cell and traceback
        failure = _error_summary(exc, nb)
        if failure.expected and out_nb.is_file():  # the page shows how far it got and where it stopped
            try:
                export_html(out_nb, run_dir / "html" / f"{nb.stem}.html")
            except Exception:  # noqa: BLE001 - the summary above is what matters
                pass
        return failure
    return None


# What a complete run writes afresh (a run without --only starts from none of them; its sweep's
# finished variants are kept, since they are reused by their fingerprints).
RUN_OUTPUTS = ("data", "tables", "figures", "results", "html", "notebooks", "model")


RUN_MARKER = ".dlrc-run"  # written into every run folder when a run starts


def _clear_outputs(run_dir: Path) -> None:
    """Remove an earlier run's outputs; a folder that holds other things is never touched."""
    import shutil

    if run_dir.is_dir() and any(run_dir.iterdir()) and not (
            (run_dir / "run.json").is_file() or (run_dir / RUN_MARKER).is_file()):
        raise DlrcError(f"{run_dir}: exists, is not empty and is not a dlrc run folder (no run.json); "
                        "give --out a new or empty folder")
    for name in RUN_OUTPUTS:
        shutil.rmtree(run_dir / name, ignore_errors=True)


def recorded_params(params: Params) -> dict[str, Any]:
    """The parameters as ``run.json`` records them; a manifest study's without the keys that only
    describe how the synthetic twin is generated (``study.twin_dir``, ``study.scale``, ...)."""
    record = params.model_dump(mode="json")
    if params.study.source != "twin":
        record["study"] = {k: v for k, v in record["study"].items() if k not in TWIN_ONLY_KEYS}
    return record


def _provenance(params: Params, params_file: Path, manifest: Path, analysed: Path, run_dir: Path,
                status: str, failure: str | None, timings: dict[str, Any], seconds: float) -> dict[str, Any]:
    """``run.json``: what ran, on what, with which code and packages, how long, what it warned."""
    return {
        "run_name": params.run_name,
        "status": status,
        "failure": failure,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params_file": str(params_file),
        "params": recorded_params(params),
        "seed": params.seed,
        "study_manifest": str(manifest),
        "analysed_manifest": str(analysed),
        # the commit of the checkout dlrc ran from (none when installed from a wheel: see "packages")
        "git_commit": _git("rev-parse", "HEAD", cwd=code) if (code := checkout()) else None,
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no", cwd=code)) if code else False,
        "dlrc_installed": code is None,  # dlrc_lib and the notebooks of an installed package (a wheel)
        "packages": package_versions(),
        "platform": platform.platform(),
        "input_hashes": input_hashes(params_file, params, manifest),
        "notebooks": timings,
        "wall_seconds": round(seconds, 2),
        "warnings": collect_warnings(run_dir),
    }
