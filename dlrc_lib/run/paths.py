"""Where a notebook's inputs are, the same under ``dlrc run`` and in JupyterLab.

Every notebook calls :func:`open_run` in its first code cell after the ``parameters`` cell::

    from dlrc_lib.run.paths import open_run
    art = open_run(globals(), "05_dlrc")

and the runner builds the values it injects with :func:`resolve_parameters`, so both resolve
relative parameter paths the same way: against the repository root (the folder holding
``notebooks/``), or against the parameter file's folder when the path exists only there. The
working directory of the kernel does not matter.

Under ``dlrc run`` (``DLRC_RUNNER=1`` in the kernel's environment) the injected values are
used as given. Opened interactively (JupyterLab), a notebook reads a finished run: the run
named by ``DLRC_RUN`` (set by ``dlrc lab``) or by its ``run_dir`` parameter. Parameters still at
the notebook's committed defaults take the values that run used (from its ``run.json``), so
the notebook recomputes what the report shows; a value edited in the parameters cell is kept
and reported. Nothing is written unless ``write_artifacts = True`` (the runner's setting), and
a missing input names the absolute path it looked for and the command that produces it.
"""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Any, Mapping, MutableMapping

from dlrc_lib.core.config import Params, flatten
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.processes import single_thread_blas
from dlrc_lib.core.resources import data_root
from dlrc_lib.record import read_run_info
from dlrc_lib.reporting.display import use_people_numbers
from dlrc_lib.run.artifacts import Artifacts
from dlrc_lib.run.layout import (DEFAULT_PARAMS_FILE, ENV_CELLS_SHOW_RUN, ENV_PARAMS_FILE, ENV_RUN, ENV_RUNNER,
                                 FRAME_PRODUCERS, PATH_KEYS, MissingInput, notebooks_dir, project_root, run_command)

__all__ = ["DEFAULT_PARAMS_FILE", "ENV_CELLS_SHOW_RUN", "ENV_PARAMS_FILE", "ENV_RUN", "ENV_RUNNER", "FRAME_PRODUCERS",
           "PATH_KEYS", "MissingInput", "NotebookRun", "open_run", "project_root", "resolve_parameters", "resolve_path",
           "run_command", "run_parameters", "last_finished_run", "committed_defaults", "replaced_parameters"]


def resolve_path(value: str | os.PathLike | None, root: Path | None = None,
                 params_file: str | os.PathLike | None = None) -> str | None:
    """An absolute path for a parameter value.

    Absolute paths stay as they are. A relative path resolves against the repository root
    (installed: the working directory), unless it exists only next to the parameter file, where
    it resolves against that folder, or only among the files that come with dlrc
    (``params/published_values.yaml``).
    """
    if value is None or str(value) == "":
        return value  # type: ignore[return-value]
    path = Path(os.path.expanduser(str(value)))
    if path.is_absolute():
        return str(path)
    root = Path(root) if root else project_root()
    at_root = root / path
    if params_file and not at_root.exists():
        beside = Path(params_file).resolve().parent / path
        if beside.exists():
            return str(beside)
    # only the files that come with dlrc: a run's own outputs (data/, reports/) are never borrowed
    # from the package's folder
    if not at_root.exists() and path.parts[0] in ("params", "notebooks") and (data_root() / path).exists():
        return str(data_root() / path)
    return str(at_root)


def resolve_parameters(values: Mapping[str, Any], root: Path | None = None,
                       params_file: str | os.PathLike | None = None) -> dict[str, Any]:
    """``values`` with every path parameter (:data:`PATH_KEYS`) made absolute."""
    params_file = params_file or values.get("params_file") or None
    if params_file:
        params_file = resolve_path(params_file, root)
    out = dict(values)
    for key in PATH_KEYS:
        if key in out and isinstance(out[key], str):
            out[key] = resolve_path(out[key], root, params_file)
    return out


def committed_defaults(notebook: str, root: Path | None = None) -> dict[str, Any]:
    """The literals of the ``parameters`` cell of ``notebooks/<notebook>.ipynb`` as committed
    (``root``'s notebooks, else the package's)."""
    path = notebooks_dir(root) / f"{notebook}.ipynb"
    if not path.is_file():
        return {}
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            values = {}
            for stmt in ast.parse(source).body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value:
                    values[stmt.target.id] = ast.literal_eval(stmt.value)
            return values
    return {}


def run_parameters(run_dir: Path) -> tuple[dict[str, Any], dict]:
    """The flattened parameters a finished run used (``run.json``), and the run record."""
    info = read_run_info(run_dir)
    if info is None:
        return {}, {}
    record = info.data
    try:
        flat = flatten(Params.model_validate(record.get("params", {})))
    except ValueError:
        flat = {}
    flat["run_dir"] = str(run_dir)
    analysed = Path(run_dir) / "study_manifest.csv"
    if analysed.is_file():
        flat["study_manifest"] = str(analysed)
    elif record.get("analysed_manifest"):
        flat["study_manifest"] = record["analysed_manifest"]
    if record.get("params_file"):
        flat["params_file"] = record["params_file"]
    return flat, record


def last_finished_run(root: Path | None = None) -> Path | None:
    """The run under ``reports/`` that finished last with status ok, if any."""
    root = Path(root) if root else project_root()
    best: tuple[str, Path] | None = None
    for run_json in (root / "reports").glob("*/run.json"):
        try:
            info = read_run_info(run_json.parent)
        except (OSError, DlrcError):
            continue
        if info is None or info.status != "ok":
            continue
        key = (info.finished or "", run_json.parent)
        if best is None or key > best:
            best = key
    return best[1] if best else None


class NotebookRun:
    """What :func:`open_run` decided: the run folder, where values came from, the command."""

    def __init__(self, notebook: str, run_dir: Path, params_file: str | None, interactive: bool,
                 write: bool, from_run: list[str], edited: dict[str, tuple[Any, Any]]):
        self.notebook, self.run_dir, self.params_file = notebook, run_dir, params_file
        self.interactive, self.write, self.from_run, self.edited = interactive, write, from_run, edited
        self.replaced: Any = None  # the table of replaced parameters (open_run)

    def command(self, notebook: str | None = None) -> str:
        return run_command(self.params_file, notebook)

    def missing(self, path: Path, what: str, producer: str | None = None) -> MissingInput:
        """The error for an input that is not there: absolute path and the command to make it."""
        return MissingInput(f"{Path(path).resolve()}: {what} not found; produce it with `{self.command(producer)}`")


def open_run(namespace: MutableMapping[str, Any], notebook: str, root: Path | None = None):
    """Set a notebook up after its parameters cell; return its :class:`Artifacts`.

    Updates ``namespace`` (the notebook's ``globals()``) in place: path parameters absolute,
    and, interactively, parameters at their committed defaults replaced by the values of the
    run the notebook reads. Creates no folder; raises :class:`DlrcError` naming the absolute
    path and the producing command when the study manifest or the run folder is missing.
    """
    single_thread_blas()  # a notebook's numbers must not depend on the machine's cores
    declared = committed_defaults(notebook, root)
    root = Path(root) if root else project_root()
    interactive = os.environ.get(ENV_RUNNER) != "1"
    params_file = os.environ.get(ENV_PARAMS_FILE) if not interactive else None
    from_run: list[str] = []
    edited: dict[str, tuple[Any, Any]] = {}
    if interactive:
        at_default = {k for k, v in declared.items() if k in namespace and namespace[k] == v}
        run_dir = namespace.get("run_dir")
        if os.environ.get(ENV_RUN) and "run_dir" in at_default:
            run_dir = os.environ[ENV_RUN]
        run_dir = Path(resolve_path(run_dir, root))
        recorded, record = run_parameters(run_dir)
        params_file = recorded.get("params_file")
        for key in declared:
            if key not in namespace or key in ("write_artifacts", "run_dir") or key not in recorded:
                continue
            if key in at_default:
                if namespace[key] != recorded[key]:
                    namespace[key] = recorded[key]
                    from_run.append(key)
            elif namespace[key] != recorded[key] and key != "run_dir":
                edited[key] = (namespace[key], recorded[key])
        namespace["run_dir"] = str(run_dir)
    values = resolve_parameters({k: namespace[k] for k in namespace if k in PATH_KEYS}, root, params_file)
    namespace.update(values)
    use_people_numbers()
    write = bool(namespace.get("write_artifacts", not interactive))
    info = NotebookRun(notebook, Path(namespace["run_dir"]), params_file, interactive, write, from_run, edited)
    shown_as_run = not interactive and os.environ.get(ENV_CELLS_SHOW_RUN) == "1"
    info.replaced = replaced_parameters({} if shown_as_run else declared, namespace, info, root)

    if interactive and not info.run_dir.is_dir():
        raise info.missing(info.run_dir, "run folder")
    if "study_manifest" in declared and not Path(namespace["study_manifest"]).is_file():
        raise info.missing(Path(namespace["study_manifest"]), "study manifest")
    if interactive:
        _say(info)
    _show_replaced(info.replaced)
    return Artifacts(info.run_dir, notebook=notebook, write=write, run=info)


def _shown(value: Any, key: str, root: Path) -> str:
    if key in PATH_KEYS and isinstance(value, str) and value:
        try:
            return str(Path(value).resolve().relative_to(root))
        except ValueError:
            return value
    return repr(value) if isinstance(value, str) else str(value)


def replaced_parameters(declared: Mapping[str, Any], namespace: Mapping[str, Any], info: "NotebookRun",
                        root: Path) -> "Any":
    """The parameters whose value differs from the notebook's committed parameters cell: name,
    the notebook's default, the value used and where it came from (a DataFrame, empty when none).

    Paths are compared resolved (a relative default and its absolute form are the same value).
    """
    import pandas as pd

    resolved = resolve_parameters({k: v for k, v in declared.items() if k in PATH_KEYS}, root, info.params_file)
    rows = []
    for key, default in declared.items():
        if key not in namespace or key == "write_artifacts":
            continue
        value = namespace[key]
        same = resolved.get(key, default) == value or default == value
        if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
            same = list(value) == list(default)
        if same:
            continue
        if key in info.edited:
            source = "edited in this notebook"
        elif info.interactive:
            source = "the run's run.json"
        else:
            shown = _shown(info.params_file, "params_file", root) if info.params_file else "the runner"
            source = f"dlrc run ({shown})"
        rows.append({"parameter": key, "notebook default": _shown(default, key, root),
                     "value used": _shown(value, key, root), "from": source})
    return pd.DataFrame(rows, columns=["parameter", "notebook default", "value used", "from"])


def _show_replaced(table: Any) -> None:
    """Show the replaced parameters as a table in the notebook (nothing outside IPython)."""
    if table is None or table.empty:
        return
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        return
    if get_ipython() is None:
        return
    import html

    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td><code>{html.escape(str(v))}</code></td>" if j < 3 else
                                    f"<td>{html.escape(str(v))}</td>" for j, v in enumerate(row)) + "</tr>"
                   for row in table.itertuples(index=False))
    display(HTML(f"<details class='dlrc-replaced' open><summary><b>Parameters this run replaced</b> "
                 f"({len(table)}): the notebook's committed default and the value this run used"
                 f"</summary><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
                 f"</table></details>"))


def _say(info: NotebookRun) -> None:
    where = info.run_dir
    try:
        where = info.run_dir.relative_to(project_root())
    except ValueError:
        pass
    lines = [f"reading run {where}" + (f" (parameters of its run.json: {', '.join(info.from_run)})"
                                        if info.from_run else "")]
    for key, (mine, theirs) in info.edited.items():
        lines.append(f"  {key} = {mine!r} (the run used {theirs!r}): results will differ from the report")
    lines.append("  write_artifacts = True: this notebook's tables, figures and results in the run are replaced"
                 if info.write else
                 "  write_artifacts = False: nothing is written; set it True in the parameters cell to update the run")
    print("\n".join(lines))
