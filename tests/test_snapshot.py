"""`dlrc snapshot` on a fabricated run: what is copied, what is left out as patient-level,
the patient-identifier scan, the size limit, and replacing an earlier snapshot."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from claimsdata import make_run

from dlrc_lib.run.cli import main as cli_main
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.reporting.index_page import write_index
from dlrc_lib.reporting.snapshot import make_snapshot

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
       b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7V\xbd\xfa\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture
def run(tmp_path):
    run = make_run(tmp_path / "run", source="twin", weights="random", fallback=True)
    pd.DataFrame({"patient_id": ["PX0001", "PX0002"], "cohort": ["train", "external"], "lnm": [0, 1]}).to_csv(
        run / "study_manifest.csv", index=False)
    pd.DataFrame({"cohort": ["train"], "AUC": [0.7]}).to_csv(run / "tables" / "table2.csv", index=False)
    (run / "tables" / "table2.md").write_text("| cohort | AUC |\n|---|---|\n| train | 0.7 |\n")
    pd.DataFrame({"patient_id": ["PX0002"], "reason": ["empty mask"]}).to_csv(
        run / "tables" / "radiomics_failures.csv", index=False)
    for name in ("fig4_roc", "figS1_segmentations"):
        (run / "figures" / f"{name}.png").write_bytes(PNG)
    write_index(run)
    return run


def test_snapshot_contents(run, tmp_path):
    out = tmp_path / "docs" / "reference-run"
    assert cli_main(["snapshot", str(run), str(out)]) == 0
    meta = json.loads((out / "snapshot.json").read_text())
    assert (out / "tables" / "table2.csv").exists() and (out / "tables" / "table2.md").exists()
    assert (out / "tables" / "paper_vs_reproduction.csv").exists()
    assert (out / "figures" / "fig4_roc.png").exists()
    assert not (out / "tables" / "radiomics_failures.csv").exists()
    assert not (out / "figures" / "figS1_segmentations.png").exists()
    assert set(meta["left_out"]) == {"tables/radiomics_failures", "figures/figS1_segmentations"}
    assert meta["verdicts"]["input"] >= 8 and meta["verdicts"]["not testable here"] >= 25
    assert (out / "claims.csv").read_bytes() == (run / "claims.csv").read_bytes()
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "radiomics_failures" not in page and "html/" not in page and "figS1_segmentations" not in page
    readme = (out / "README.md").read_text()
    assert "## Verdict" in readme and "random network weights" in readme and "(tables/table2.md)" in readme
    assert sorted(meta["files"]) == sorted(str(p.relative_to(out)) for p in out.rglob("*")
                                           if p.is_file() and p.name != "snapshot.json")
    # a second snapshot replaces the first as a whole
    (run / "figures" / "fig4_roc.png").unlink()
    make_snapshot(run, out)
    assert not (out / "figures" / "fig4_roc.png").exists()
    assert not list(out.parent.glob(".reference-run*"))


def test_snapshot_refuses_patient_identifiers(run, tmp_path):
    out = tmp_path / "snap"
    make_snapshot(run, out)
    before = (out / "snapshot.json").read_bytes()
    pd.DataFrame({"cohort": ["train"], "note": ["worst case PX0001"]}).to_csv(run / "tables" / "notes.csv", index=False)
    with pytest.raises(DlrcError, match="tables/notes.csv names patient PX0001"):
        make_snapshot(run, out)
    assert (out / "snapshot.json").read_bytes() == before  # the earlier snapshot stays
    assert not list(tmp_path.glob(".snap*"))


def test_snapshot_limits(run, tmp_path):
    with pytest.raises(DlrcError, match="exceeds the limit of 0.001 MB"):
        make_snapshot(run, tmp_path / "small", max_mb=0.001)
    other = tmp_path / "docs"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(DlrcError, match="is not a snapshot"):
        make_snapshot(run, other)
    with pytest.raises(DlrcError, match="not a finished run folder"):
        make_snapshot(tmp_path / "nothing", tmp_path / "s")
    assert cli_main(["snapshot", str(tmp_path / "nothing"), str(tmp_path / "s")]) == 2
