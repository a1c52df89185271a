"""The real thing, small: `dlrc run --params params/quick.yaml` executes every notebook on the
quick twin study, writes the report page and provenance, and re-running notebooks gives
byte-identical tables. The first run starts from an empty feature cache, so the second (warm)
run checks that a cold and a cached run report the same."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# notebook 09 runs only when the parameters name a sweep grid (quick.yaml does not)
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if p.name[:2] != "09")


@pytest.fixture(scope="module")
def quick_params(tmp_path_factory):
    """params/quick.yaml with its own, initially empty, feature cache."""
    import yaml

    base = tmp_path_factory.mktemp("params")
    params = yaml.safe_load((ROOT / "params" / "quick.yaml").read_text())
    params["cache_dir"] = str(base / "cache")
    params["radiomics"]["settings"] = str(ROOT / params["radiomics"]["settings"])
    path = base / "quick.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, quick_params):
    out = tmp_path_factory.mktemp("quick") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "dlrc_lib.reporting.cli", "run", "--params", str(quick_params), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return out, proc


def test_every_notebook_ran(quick_run):
    out, proc = quick_run
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "ok"
    assert sorted(run["notebooks"]) == NOTEBOOKS
    for nb in NOTEBOOKS:
        assert (out / "notebooks" / f"{nb}.ipynb").exists()
        assert (out / "html" / f"{nb}.html").exists()
        assert f"{nb} done in" in proc.stdout
    assert run["input_hashes"] and run["packages"]["pyradiomics"] == "3.0.1"


def test_report_page_links_everything(quick_run):
    out, _ = quick_run
    page = (out / "index.html").read_text()
    figures = sorted((out / "figures").glob("*.png"))
    tables = sorted((out / "tables").glob("*.csv"))
    assert figures and tables
    for f in figures:
        assert f"figures/{f.name}" in page
        assert f.with_suffix(".pdf").exists()
    for t in tables:
        assert f"tables/{t.stem}.csv" in page
    assert "Paper vs reproduction" in page


def test_paper_comparison_is_filled(quick_run):
    out, _ = quick_run
    import pandas as pd

    cmp = pd.read_csv(out / "tables" / "paper_vs_reproduction.csv")
    produced = cmp[cmp["reproduced"] != "not produced"]["quantity"]
    for prefix in ("table1.", "table2.", "table3.", "table4.", "table5.", "calibration_hosmer_lemeshow_p."):
        assert produced.str.startswith(prefix).any(), f"no {prefix} number reproduced"


def test_rerun_is_byte_identical(quick_run, quick_params, tmp_path):
    out, _ = quick_run
    again = tmp_path / "again"
    proc = subprocess.run(
        [sys.executable, "-m", "dlrc_lib.reporting.cli", "run", "--params", str(quick_params), "--out", str(again)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    tables = sorted((out / "tables").glob("*.csv")) + sorted((out / "tables").glob("*.md"))
    assert len(tables) > 20
    for table in tables:
        assert (again / "tables" / table.name).read_bytes() == table.read_bytes(), table.name
    # results too, apart from the run provenance (seconds, cache hits), which differs by design
    for res in sorted((out / "results").glob("*.json")):
        first, second = (json.loads(p.read_text()) for p in (res, again / "results" / res.name))
        first.pop("provenance", None), second.pop("provenance", None)
        assert first == second, res.name
    cold = json.loads((out / "run.json").read_text())["notebooks"]["02_icc"]["provenance"]["extraction"]
    warm = json.loads((again / "run.json").read_text())["notebooks"]["02_icc"]["provenance"]["extraction"]
    assert cold["by_mask"]["reader1"]["computed"] > 0 and warm["by_mask"]["reader1"]["computed"] == 0


def test_predict_round_trip_from_images(quick_run, quick_params, tmp_path):
    """`dlrc predict` on the training patients' images with the exported model file gives
    notebook 05's probabilities (features from the run's cache, the stored ComBat estimates,
    scaling and coefficients)."""
    import pandas as pd

    from dlrc_lib.reporting.cli import main as cli_main
    from dlrc_lib.core.config import load_params
    from dlrc_lib.study.manifest import load_study

    out, _ = quick_run
    params = load_params(quick_params)
    pred = pd.read_parquet(out / "data" / "predictions.parquet")
    study = load_study(out / "study_manifest.csv")
    train = study[study["patient_id"].isin(pred.index[pred["cohort"] == "train"])]
    assert len(train) == (pred["cohort"] == "train").sum() > 10
    manifest = tmp_path / "train.csv"
    train.to_csv(manifest, index=False)
    result = tmp_path / "pred.csv"
    rc = cli_main(["predict", "--model", str(out / "model" / "dlrc_model.json"), "--manifest", str(manifest),
                   "--out", str(result), "--cache-dir", str(params.cache_dir)])
    assert rc == 0
    got = pd.read_csv(result, dtype={"patient_id": str}).set_index("patient_id")
    diff = (got["prob_dlrc"] - pred.loc[got.index, "prob_dlrc"]).abs()
    assert diff.max() < 1e-6, diff.sort_values().tail()
