"""The real thing, small: `dlrc run --params params/quick.yaml` executes every notebook on the
quick twin study, writes the report page and provenance, and re-running notebooks gives
byte-identical tables. The first run starts from an empty feature cache, so the second (warm)
run checks that a cold and a cached run report the same."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from test_record import readme_example


ROOT = Path(__file__).resolve().parents[1]
# notebook 09 runs only when the parameters name a sweep grid (quick.yaml does not)
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if p.name[:2] != "09")


# quick_params and quick_run are in conftest.py (shared with the browser test).


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
    # what it ran on, and how much CPU each notebook got
    assert run["machine"]["vector_isa"] and run["machine"]["torch_cpu_capability"]
    assert all(run["notebooks"][nb]["cpu_seconds"] >= 0 for nb in NOTEBOOKS)


def test_the_quick_run_says_it_is_a_demo_on_every_page(quick_run):
    out, _ = quick_run
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    n = len(pd.read_csv(out / "study_manifest.csv"))
    line = (f"demo size ({n} patients): for testing the pipeline; its numbers carry no meaning — use "
            "`make teach` or the reference run (docs/reference-run/)")
    assert run["demo"] == line
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.index("Demo size (") < page.index("Verdict: the paper's claims")
    for nb in NOTEBOOKS:
        first = json.loads((out / "notebooks" / f"{nb}.ipynb").read_text(encoding="utf-8"))["cells"][0]
        assert first["cell_type"] == "markdown" and "Demo size (" in "".join(first["source"]), nb
    # the parameters the run replaced are a visible table (here: the run folder is not reports/quick)
    page = (out / "html" / "05_dlrc.html").read_text(encoding="utf-8")
    assert "Parameters this run replaced" in page and "<td><code>run_dir</code></td>" in page


def test_the_readme_example_reads_the_quick_run(finished_quick_run):
    out = finished_quick_run
    code = readme_example().replace('"reports/quick"', repr(str(out)))
    ns: dict = {}
    exec(code, ns)  # noqa: S102 - the README's own example
    r = ns["r"]
    assert r.run.status == "ok" and sorted(r.records) == NOTEBOOKS and r.sensitivity is None
    assert r.dlrc.auc["external"] == r.reproduced["table2.external.DLRC.auc"][0]
    assert r.deep.best_model == r.best_dl and r.radiomics.state is not None


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
    # the verdict first (after the warnings), then the paper's tables, then the notebooks
    order = [page.index(s) for s in ("Verdict: the paper's claims", "class='claims'", "Table 1.", "Table 5.",
                                     "<h2>Notebooks</h2>")]
    assert order == sorted(order)
    assert page.index("class='warn'") < order[0]


def test_claims_of_the_quick_run(quick_run):
    """>= 15 claims, each with a verdict; inputs of the twin never counted as reproduced; with
    random network weights every deep-learning claim is not testable here."""
    import pandas as pd

    from dlrc_lib.reporting.claims import INPUT, NOT_TESTABLE, TOO_SMALL, VERDICTS, load_claims, run_view

    out, _ = quick_run
    claims = pd.read_csv(out / "claims.csv", keep_default_na=False)
    assert len(claims) >= 15 and claims["verdict"].isin(VERDICTS).all()
    assert (claims["verdict"] == INPUT).sum() >= 8
    assert claims.loc[claims["verdict"].isin([INPUT, "calibrated"]), "counted"].astype(str).eq("False").all()
    # what a tiny twin decides varies with its draws (e.g. a DLRC of Rad_score alone makes the
    # DeLong test against radiomics 0/0), so: every undecided claim says why, and the claims that
    # depend neither on the networks' weights nor on the twin's calibration (DLRC vs SRA) are judged:
    # on 54 patients mostly too small to tell, each saying what would make it testable
    undecided = claims["verdict"] == NOT_TESTABLE
    assert claims.loc[undecided, "reason"].str.strip().str.len().gt(0).all()
    sra = claims[claims["id"].str.startswith("sra.")]
    assert len(sra) >= 9 and sra["verdict"].isin(["holds", "fails", TOO_SMALL]).all(), sra[["id", "verdict"]]
    small = sra[sra["verdict"] == TOO_SMALL]
    assert small["reason"].str.contains(r"patients \(~\d+ LNM\) would make it testable|no cohort size would do").all()
    assert not small["counted"].astype(str).eq("True").any()
    if run_view(out).weights_problem:
        deep = {c["id"] for c in load_claims(ROOT / "params" / "claims.yaml")[1] if c.get("deep")}
        rows = claims[claims["id"].isin(deep)]
        assert len(rows) == len(deep) and (rows["verdict"] == NOT_TESTABLE).all()
        assert rows["reason"].str.contains("random network weights").all()


def test_snapshot_of_the_quick_run(quick_run, tmp_path):
    """`dlrc snapshot`: every table and figure the index lists is in the snapshot, or left out
    as patient-level (and then it is); < 15 MB; no patient identifier in any copied file."""
    import re

    import pandas as pd

    from dlrc_lib.run.cli import main as cli_main

    out, _ = quick_run
    snap = tmp_path / "reference-run"
    assert cli_main(["snapshot", str(out), str(snap)]) == 0
    meta = json.loads((snap / "snapshot.json").read_text())
    page = (out / "index.html").read_text()
    tables = re.findall(r"<li class='table' data-name='([^']+)'>", page)
    figures = re.findall(r"<figure class='figure' data-name='([^']+)'>", page)
    assert len(tables) > 20 and len(figures) > 10
    for name in tables:
        if f"tables/{name}" in meta["left_out"]:
            cols = pd.read_csv(out / "tables" / f"{name}.csv", nrows=0).columns
            assert "patient_id" in cols or "patient" in cols, name
            assert not (snap / "tables" / f"{name}.csv").exists()
        else:
            assert (snap / "tables" / f"{name}.csv").read_bytes() == (out / "tables" / f"{name}.csv").read_bytes()
    for name in figures:
        assert (snap / "figures" / f"{name}.png").exists() or f"figures/{name}" in meta["left_out"], name
    for name in ("claims.csv", "run.json", "README.md", "index.html"):
        assert (snap / name).exists()
    files = [p for p in snap.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 15e6
    assert not any(p.suffix in (".parquet", ".ipynb") for p in files)
    ids = set(pd.read_csv(out / "study_manifest.csv", dtype=str)["patient_id"])
    text = "\n".join(p.read_text(errors="replace") for p in files if p.suffix in (".csv", ".md", ".json", ".html"))
    assert not ids & set(re.findall(r"[A-Za-z0-9_]+", text))
    readme = (snap / "README.md").read_text()
    assert "## Verdict" in readme and "Table 2." in readme
    for name in re.findall(r"\]\((figures/[^)]+|tables/[^)]+)\)", readme):
        assert (snap / name).exists(), name


def test_paper_comparison_is_filled(quick_run):
    out, _ = quick_run
    import pandas as pd

    cmp = pd.read_csv(out / "tables" / "paper_vs_reproduction.csv")
    produced = cmp[cmp["reproduced"] != "not produced"]["quantity"]
    for prefix in ("table1.", "table2.", "table3.", "table4.", "table5.", "calibration_hosmer_lemeshow_p."):
        assert produced.str.startswith(prefix).any(), f"no {prefix} number reproduced"


def test_checklist_is_filled_from_the_run(quick_run):
    import pandas as pd

    out, _ = quick_run
    assert "href='checklist.html'" in (out / "index.html").read_text()
    df = pd.read_csv(out / "checklist.csv", dtype=str, keep_default_na=False)
    clear = df[df["checklist"] == "CLEAR"].set_index("number")
    assert len(clear) == 58
    for row in df.itertuples():
        for ev in filter(None, row.evidence.split("; ")):
            assert (out / ev).exists(), (row.checklist, row.number, ev)
        if row.status in ("yes", "partly"):
            assert row.evidence, (row.checklist, row.number)
    # the quick twin has an ICC subset, internal and external cohorts, ComBat and an exported model
    for n in ("31", "32", "33", "38", "44", "45", "47", "48", "57"):
        assert clear.loc[n, "status"] == "yes", (n, clear.loc[n, "answer"])


def test_rerun_is_byte_identical(quick_run, quick_params, tmp_path):
    out, _ = quick_run
    again = tmp_path / "again"
    proc = subprocess.run(
        [sys.executable, "-m", "dlrc_lib.run.cli", "run", "--params", str(quick_params), "--out", str(again)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    tables = sorted((out / "tables").glob("*.csv")) + sorted((out / "tables").glob("*.md"))
    assert len(tables) > 20
    for table in tables:
        assert (again / "tables" / table.name).read_bytes() == table.read_bytes(), table.name
    assert (again / "checklist.csv").read_bytes() == (out / "checklist.csv").read_bytes()
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

    from dlrc_lib.run.cli import main as cli_main
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


def test_supplementary_material_drawn(quick_run):
    """Figs. S3, S6, S7 (best deep model), the full Table S1 and the reader-agreement table."""
    import pandas as pd

    out, _ = quick_run
    for fig in ("figS3_dl_pca_combat", "figS6_dl_violin", "figS7_dl_heatmap"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 10_000, fig
    s1 = pd.read_csv(out / "tables" / "tableS1_scanners.csv")
    assert len(s1) == 3 * s1["Scanner"].nunique() and not (s1 == "not given").any().any()
    agreement = pd.read_csv(out / "tables" / "methodS1_reader_agreement.csv").set_index("measure")
    assert agreement.loc["LNSD (mm)", "statistic"] == "ICC(2,1)"
    assert agreement.loc["SRA call", "statistic"] == "Cohen's kappa"
    assert (out / "tables" / "methodS1_consensus.csv").exists()
    cmp = pd.read_csv(out / "tables" / "paper_vs_reproduction.csv", keep_default_na=False).set_index("quantity")
    assert cmp.loc["table4.radiomics_vs_ResNet152_2D.train", "published"] == "0.524 (table) / 0.542 (text)"
