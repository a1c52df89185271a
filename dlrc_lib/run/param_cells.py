"""The notebooks' ``parameters`` cells, generated from the schema.

The schema (:class:`dlrc_lib.core.config.Params`) is the one place of defaults. Each notebook's
``parameters`` cell names the parameters it takes, with their type and a comment; its *values*
are the schema's defaults, written here, except where the notebook reads and writes (the run
folder, the parameter file, the manifest, ``write_artifacts``, the run's name: they name the
quick run of ``make quick``, which a notebook opened in JupyterLab reads). After a default
changes in the schema::

    python -m dlrc_lib.run.param_cells          # rewrites notebooks/*.ipynb's parameters cells

``tests/test_notebooks.py`` checks that the committed cells are what this writes.
"""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any

from dlrc_lib.core.config import Params, flatten
from dlrc_lib.run.layout import notebooks_dir

#: parameters whose cell value names where the notebook reads and writes (the quick run), not a default
RUN_LOCATION = frozenset({"run_dir", "params_file", "study_manifest", "write_artifacts", "run_name", "sweep_out"})


def literal(value: Any) -> str:
    """A schema value as the cells write it: strings in double quotes, lists inline."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def generated_source(source: str, schema: dict[str, Any] | None = None) -> str:
    """``source`` (a parameters cell) with every value the schema knows replaced by its default."""
    schema = flatten(Params()) if schema is None else schema
    lines = source.split("\n")
    for stmt in reversed(ast.parse(source).body):
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None):
            continue
        name = stmt.target.id
        if name in RUN_LOCATION or name not in schema or stmt.value.lineno != stmt.value.end_lineno:
            continue
        i = stmt.value.lineno - 1
        line = lines[i].encode("utf-8")  # ast's offsets count bytes
        start, end = stmt.value.col_offset, stmt.value.end_col_offset
        lines[i] = (line[:start] + literal(schema[name]).encode("utf-8") + line[end:]).decode("utf-8")
    return "\n".join(lines)


def _parameters_cell(nb: dict) -> dict | None:
    return next((c for c in nb.get("cells", []) if c.get("cell_type") == "code"
                 and "parameters" in c.get("metadata", {}).get("tags", [])), None)


def write_parameter_cells(folder: Path | None = None) -> list[str]:
    """Rewrite each notebook's parameters cell from the schema; the notebooks that changed."""
    changed = []
    for path in sorted(Path(folder or notebooks_dir()).glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        cell = _parameters_cell(nb)
        if cell is None:
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        new = generated_source(source)
        if new != source:
            cell["source"] = new.splitlines(keepends=True)
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            changed.append(path.name)
    return changed


if __name__ == "__main__":
    done = write_parameter_cells(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print("parameters cells rewritten: " + (", ".join(done) if done else "none (they are the schema's)"))
