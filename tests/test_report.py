from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dlrc_lib.core.config import Params
from dlrc_lib.run.artifacts import Artifacts
from dlrc_lib.study import keys as K
from dlrc_lib.reporting.index_page import write_index
from dlrc_lib.reporting.report import (Missing, as_number, compare_with_paper, flatten_published, load_discrepancies,
                                     load_published, number_or_none)

ROOT = Path(__file__).resolve().parents[1]


def test_flatten_published_paths():
    flat = flatten_published({"table2": {"train": {"DLRC": {"auc": [0.8, 0.7, 0.9], "acc": 78.0}}}})
    assert flat == {"table2.train.DLRC.auc": [0.8, 0.7, 0.9], "table2.train.DLRC.acc": 78.0}


def test_published_values_cover_all_tables():
    flat = load_published(ROOT / "params" / "published_values.yaml")
    assert flat["table2.train.DLRC.auc"] == [0.807, 0.766, 0.849]
    assert flat["table1.categorical.parity.p.internal"] == 0.019
    assert flat["calibration_hosmer_lemeshow_p.external"] == 0.214
    assert not any(k.startswith("implied_confusion") for k in flat)


def test_compare_with_paper_marks_ci_and_missing():
    published = {"table2.train.DLRC.auc": [0.807, 0.766, 0.849], "table4.x.train": "<0.001",
                 "table2.train.DLRC.acc": 78.0, "table2.train.SRA.acc": 77.3}
    reproduced = {"table2.train.DLRC.auc": [0.70, 0.65, 0.75], "table4.x.train": 0.0004,
                  "table2.train.DLRC.acc": 75.5}
    t = compare_with_paper(published, reproduced).set_index("quantity")
    assert t.loc["table2.train.DLRC.auc", "auc_in_paper_ci"] == "no"
    assert t.loc["table4.x.train", "difference"] == "0"
    assert t.loc["table2.train.DLRC.acc", "difference"] == "-2.5"
    assert t.loc["table2.train.SRA.acc", "reproduced"] == "not produced"


def test_index_page_links_artifacts(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    art = Artifacts(tmp_path, notebook="03_radiomics")
    art.table("demo", pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}), caption="Demo")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    art.figure("demo_fig", fig)
    art.reproduce([K.row("table2", [0.74, 0.69, 0.78], cohort="train", model="radiomics", metric="auc")])
    art.warn("weights: seeded random initialisation")
    (tmp_path / "run.json").write_text(json.dumps({"status": "ok", "warnings": {"03_radiomics": ["w"]}}))
    page = write_index(tmp_path, Params()).read_text()
    assert "tables/demo.csv" in page and "figures/demo_fig.png" in page
    assert "0.74" in page and "not produced" in page
    for ext in ("csv", "md", "html"):
        assert (tmp_path / "tables" / f"demo.{ext}").exists()
    for ext in ("png", "pdf"):
        assert (tmp_path / "figures" / f"demo_fig.{ext}").exists()


def test_paper_inconsistency_shows_both_values(tmp_path, monkeypatch):
    """Table 4 prints 0.524 for radiomics vs ResNet152_2D in training, the text 0.542: the
    comparison shows both, the difference to each, and says so on the page."""
    disc = load_discrepancies(ROOT / "params" / "published_values.yaml")
    key = "table4.radiomics_vs_ResNet152_2D.train"
    assert disc[key]["text"] == 0.542 and "0.524" in disc[key]["note"]
    published = load_published(ROOT / "params" / "published_values.yaml")
    assert published[key] == 0.524
    t = compare_with_paper(published, {key: 0.6}, discrepancies=disc).set_index("quantity")
    assert t.loc[key, "published"] == "0.524 (table) / 0.542 (text)"
    assert t.loc[key, "difference"] == "0.076 (table) / 0.058 (text)"
    assert "0.542" in t.loc[key, "note"]
    other = t.drop(index=key)
    assert (other["note"] == "").all() and not other["published"].str.contains("text").any()
    not_run = compare_with_paper(published, {}, discrepancies=disc).set_index("quantity")
    assert not_run.loc[key, "published"] == "0.524 (table) / 0.542 (text)"
    assert not_run.loc[key, "difference"] == ""
    monkeypatch.chdir(ROOT)
    Artifacts(tmp_path, notebook="05_dlrc").reproduce([K.Row(K.parse(key), 0.6)])
    (tmp_path / "run.json").write_text('{"run_name": "t", "status": "ok", "params": {"study": {"source": "twin"}}}')
    page = write_index(tmp_path, Params()).read_text(encoding="utf-8")
    assert "The paper is inconsistent" in page and "0.524 (table) / 0.542 (text)" in page


def test_one_reading_of_numbers_for_the_claims_and_the_comparison():
    import math

    import pytest

    assert as_number("<0.001") < 0.001 and as_number("<0.001") == math.nextafter(0.001, 0.0)
    assert as_number(" 0.42 ") == 0.42 and as_number(3) == 3.0 and as_number(True) == 1.0
    for bad in (float("nan"), "n/a", None, [0.7, 0.6, 0.8]):
        with pytest.raises(Missing):
            as_number(bad)
        assert number_or_none(bad) is None
    # the comparison: a reproduced p under the published bound differs by 0, above it by the distance to the bound
    table = compare_with_paper({"t.p": "<0.001", "t.q": "<0.05"}, {"t.p": 0.0004, "t.q": 0.07})
    assert list(table["difference"]) == ["0", "0.02"]
