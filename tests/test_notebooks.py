"""Notebook conventions, and one real end-to-end run of every notebook on quick.yaml."""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from dlrc_lib.core.config import DL_MODELS, Params, flatten
from dlrc_lib.run.param_cells import generated_source, write_parameter_cells
from dlrc_lib.run.paths import committed_defaults
from dlrc_lib.run.runner import RUN_NOTEBOOK_KEYS

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ["00_study", "01_cohort_table", "02_icc", "03_radiomics", "04_deep_learning",
            "05_dlrc", "06_calibration", "07_decision_curve", "08_sra_subgroup", "09_sensitivity"]
VALID_NAMES = set(flatten(Params())) | set(RUN_NOTEBOOK_KEYS)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = nbformat.read(str(path), as_version=4)
    for cell in code_cells(nb):
        assert not cell.get("outputs"), f"{path.name}: a code cell carries outputs"
        assert cell.get("execution_count") is None, f"{path.name}: a code cell carries an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_convention(path):
    nb = nbformat.read(str(path), as_version=4)
    assert nb.cells[0].cell_type == "markdown", f"{path.name}: should open with what the paper did"
    first = code_cells(nb)[0]
    assert "parameters" in first.metadata.get("tags", []), f"{path.name}: first code cell not tagged 'parameters'"
    tree = ast.parse(first.source)
    lines = first.source.splitlines()
    names = []
    for stmt in tree.body:
        assert isinstance(stmt, ast.AnnAssign), f"{path.name}: parameters cell line {stmt.lineno} is not `name: type = literal`"
        ast.literal_eval(stmt.value)  # literals only
        assert "#" in lines[stmt.lineno - 1], f"{path.name}: parameter {stmt.target.id} has no comment"
        names.append(stmt.target.id)
    assert "run_dir" in names
    unknown = set(names) - VALID_NAMES
    assert not unknown, f"{path.name}: parameters {unknown} are not keys of the schema"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_artifact_helper_and_no_paths(path):
    nb = nbformat.read(str(path), as_version=4)
    src = "\n".join(c.source for c in code_cells(nb)[1:])
    assert f'art = open_run(globals(), "{path.stem}")' in code_cells(nb)[1].source, \
        f"{path.name}: the first cell after the parameters sets up paths and artifacts with open_run"
    assert "write_artifacts" in code_cells(nb)[0].source, f"{path.name}: no write_artifacts parameter"
    for bad in ("reports/", "data/twin", ".to_csv(", "savefig(", ".save("):
        assert bad not in src, f"{path.name}: '{bad}' — write through the artifact helper, no hard-coded paths"


# Where a notebook reads and writes: its defaults name the quick run (`make quick`), not the schema's.
RUN_LOCATION = set(RUN_NOTEBOOK_KEYS) | {"run_name", "sweep_out"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_defaults_are_the_schemas(path):
    """The schema (dlrc_lib/core/config.py) is the one place of defaults: every other value of a
    parameters cell equals it."""
    schema = flatten(Params())
    differ = {}
    for name, value in committed_defaults(path.stem, ROOT).items():
        if name in RUN_LOCATION:
            continue
        value = list(value) if isinstance(value, tuple) else value
        if value != schema[name]:
            differ[name] = (value, schema[name])
    assert not differ, (f"{path.name}: parameters cell (value, schema default): {differ}; "
                        "`python -m dlrc_lib.run.param_cells` writes the schema's defaults into the cells")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cells_are_generated_from_the_schema(path):
    """The committed cell is exactly what dlrc_lib.run.param_cells writes from the schema."""
    cell = code_cells(nbformat.read(str(path), as_version=4))[0]
    assert generated_source(cell.source) == cell.source, \
        f"{path.name}: run `python -m dlrc_lib.run.param_cells` after changing a default in the schema"


def test_the_generator_restores_a_drifted_value_and_keeps_comments(tmp_path):
    import json
    import shutil

    nb_path = tmp_path / "04_deep_learning.ipynb"
    shutil.copy(ROOT / "notebooks" / "04_deep_learning.ipynb", nb_path)
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    source = "".join(cell["source"])
    drifted = source.replace("deep_input_size: int = 224", "deep_input_size: int = 64")
    assert drifted != source
    cell["source"] = drifted.splitlines(keepends=True)
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert write_parameter_cells(tmp_path) == ["04_deep_learning.ipynb"]
    assert nb_path.read_bytes() == (ROOT / "notebooks" / "04_deep_learning.ipynb").read_bytes()
    assert write_parameter_cells(tmp_path) == []


def test_every_selecting_notebook_declares_the_same_selection():
    """LASSO and the other selection steps take every selection.* key the same way in 03 (radiomics)
    and 04 (deep features), the cap on LASSO survivors included."""
    declared = [{k for k in committed_defaults(stem, ROOT) if k.startswith("selection_")}
                for stem in ("03_radiomics", "04_deep_learning")]
    assert declared[0] == declared[1] == {f"selection_{k}" for k in Params().selection.model_dump()}
    assert committed_defaults("04_deep_learning", ROOT)["deep_models"] == list(DL_MODELS)


def test_all_sections_have_a_notebook():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED
