"""Text from a manifest (patient IDs, centre and scanner names, file names) is escaped
wherever it reaches HTML and never reaches a shell."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pandas as pd

from dlrc_lib.core.config import Params
from dlrc_lib.run.artifacts import Artifacts

ROOT = Path(__file__).resolve().parents[1]
EVIL = ["<img src=x onerror=alert(1)>", "a;rm -rf b", "$(touch pwned)", "x\"'><script>alert(2)</script>"]
RAW = ("<img src=x", "<script>")


def _clean(html: str) -> bool:
    return not any(r in html for r in RAW)


def test_tables_escape_manifest_text(tmp_path):
    art = Artifacts(tmp_path)
    df = pd.DataFrame({"patient_id": EVIL, "centre": EVIL[::-1], "value": [1.0, 2.0, 3.0, 4.0]})
    art.table("t", df, caption=f"Patients of centre {EVIL[0]}")
    html = (tmp_path / "tables" / "t.html").read_text(encoding="utf-8")
    assert _clean(html) and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert pd.read_csv(tmp_path / "tables" / "t.csv")["patient_id"].tolist() == EVIL


def test_notebook_html_escapes_outputs(tmp_path):
    """What a notebook shows of the study (a table, printed lines, an error) is escaped in
    its HTML copy."""
    from dlrc_lib.run.runner import export_html

    df = pd.DataFrame({"patient_id": EVIL, "scanner": EVIL})
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("show(study)")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": df._repr_html_(), "text/plain": repr(df)}),
        nbformat.v4.new_output("stream", name="stdout", text="\n".join(EVIL) + "\n"),
        nbformat.v4.new_output("stream", name="stderr", text=f"warning: patient {EVIL[0]}: mask too small\n"),
        nbformat.v4.new_output("error", ename="DlrcError", evalue=f"patient {EVIL[3]}, file {EVIL[0]}.nii.gz",
                               traceback=[f"DlrcError: patient {EVIL[0]}"]),
    ]
    nb.cells.append(cell)
    src = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(src))
    export_html(src, tmp_path / "nb.html")
    html = (tmp_path / "nb.html").read_text(encoding="utf-8")
    assert _clean(html.split("</head>", 1)[1])
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_index_page_escapes_manifest_path(tmp_path):
    from dlrc_lib.reporting.index_page import write_index

    manifest = tmp_path / f"{EVIL[0]}.csv"
    manifest.write_text("patient_id\n")
    params = Params.model_validate({"published_values": str(ROOT / "params" / "published_values.yaml"),
                                    "study": {"source": "manifest", "manifest": str(manifest)}})
    run = tmp_path / "run"
    run.mkdir()  # Artifacts creates no folder of its own
    (run / "run.json").write_text('{"status": "failed", "failure": "patient <img src=x onerror=alert(1)>: bad", '
                                  '"warnings": {"02_icc": ["<script>alert(2)</script>"]}}')
    page = write_index(run, params).read_text(encoding="utf-8")
    assert _clean(page)
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # shown, as text


def test_validate_never_reaches_a_shell(tmp_path, monkeypatch, capsys):
    """IDs, names and file names that a shell would run are only text for dlrc validate."""
    from dlrc_lib.run.cli import main
    from dlrc_lib.twin import generate_study

    p = Params.model_validate({"published_values": str(ROOT / "params" / "published_values.yaml"),
                               "study": {"scale": 0.02, "volume_shape": (24, 24, 6), "icc_cases": 2, "n_jobs": 1},
                               "cache_dir": str(tmp_path / "cache")})
    manifest = generate_study(p, tmp_path / "study", progress=False)
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    for i, name in enumerate(EVIL):
        df.at[i, "patient_id"] = name
        src = manifest.parent / df.at[i, "image_CET1"]
        dst = src.parent / f"{name.replace('/', '_')}.nii.gz"
        shutil.move(src, dst)
        df.at[i, "image_CET1"] = str(dst.relative_to(manifest.parent))
    df.at[0, "scanner"] = EVIL[1]
    df.to_csv(manifest, index=False)
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path)
    params_file = tmp_path / "p.yaml"
    params_file.write_text(f"cache_dir: {tmp_path / 'cache'}\npublished_values: {ROOT / 'params' / 'published_values.yaml'}\n"
                           f"radiomics:\n  settings: {ROOT / 'params' / 'radiomics_quick.yaml'}\nstudy:\n  n_jobs: 1\n")
    rc = main(["validate", str(manifest), "--params", str(params_file)])
    out = capsys.readouterr().out
    assert (tmp_path / "b").is_dir() and not (tmp_path / "pwned").exists()
    assert "Traceback" not in out
    # the only errors are the small scanner; every renamed file was found and checked
    errors = [ln for ln in out.splitlines() if ln.startswith("error")]
    assert all("scanner" in ln for ln in errors), errors
    assert rc == (1 if errors else 0)
    from dlrc_lib.study.validate import load_validated_study

    table = load_validated_study(manifest, p)
    assert table["patient_id"].tolist()[:4] == EVIL
    assert os.path.basename(table.at[0, "image_CET1"]) == f"{EVIL[0]}.nii.gz"


def test_no_file_is_unpickled_or_evaluated():
    """Parameter files, manifests, model files and caches are read as data: no pickle, no
    unsafe YAML, no eval/exec, no shell, weights loaded with weights_only."""
    import re

    forbidden = {
        r"\bimport pickle\b|\bpickle\.loads?\(|\bread_pickle\(|allow_pickle=True": "pickle",
        r"\byaml\.(load|full_load|unsafe_load)\(": "unsafe YAML",
        r"(?<![\w.])(eval|exec)\(": "eval/exec",
        r"shell=True|os\.system\(|os\.popen\(": "a shell",
        r"torch\.load\((?![^)]*weights_only=True)": "torch.load without weights_only",
    }
    hits = []
    for path in sorted((ROOT / "dlrc_lib").rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for pattern, what in forbidden.items():
                if re.search(pattern, line):
                    hits.append(f"{path.relative_to(ROOT)}:{n}: {what}")
    assert hits == []
