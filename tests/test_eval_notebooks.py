"""Notebooks 06-08 run headless under papermill on a simulated ``predictions`` frame."""
import json

import nbformat
import pytest

from tests.eval_data import make_predictions, write_run

NOTEBOOKS = ("06_calibration", "07_decision_curve", "08_sra_subgroup")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs_and_with_parameters_cell(name):
    nb = nbformat.read(f"notebooks/{name}.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "markdown"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert 'run_dir: str = "reports/quick"' in code[0].source
    assert all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow  # three kernels: about 10 s on an idle machine
def test_notebooks_run_headless(tmp_path):
    import papermill as pm

    write_run(tmp_path, make_predictions(scale=0.05, seed=3))
    params = {"06_calibration": {"calibration_bootstrap": 20}, "07_decision_curve": {"decision_curve_bootstrap": 20},
              "08_sra_subgroup": {}}
    for name in NOTEBOOKS:
        pm.execute_notebook(f"notebooks/{name}.ipynb", str(tmp_path / f"{name}.ipynb"),
                            parameters={"run_dir": str(tmp_path), "write_artifacts": True, **params[name]}, cwd=".", progress_bar=False,
                            kernel_name="python3")
    for fig in ("fig5_calibration", "fig5s_calibration_optimism", "fig6_decision_curve",
                "fig6s_interventions_avoided"):
        for ext in ("png", "pdf"):
            assert (tmp_path / "figures" / f"{fig}.{ext}").stat().st_size > 0
    for table in ("calibration_hosmer_lemeshow", "table5_sra_subgroups", "table2_sra", "sra_mcnemar"):
        for ext in ("csv", "md", "html"):
            assert (tmp_path / "tables" / f"{table}.{ext}").exists()
    rep6 = json.loads((tmp_path / "results" / "06_calibration.json").read_text())["reproduced"]
    assert set(rep6) == {f"calibration_hosmer_lemeshow_p.{c}" for c in ("train", "internal", "external")}
    rep8 = json.loads((tmp_path / "results" / "08_sra_subgroup.json").read_text())["reproduced"]
    assert len([k for k in rep8 if k.startswith("table5.")]) == 60
    assert len([k for k in rep8 if k.startswith("table2.")]) == 15
