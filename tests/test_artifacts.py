from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.run.artifacts import Artifacts
from dlrc_lib.core.io import atomic_write_text, dumps
from dlrc_lib.study import keys as K


def test_tables_are_deterministic(tmp_path):
    df = pd.DataFrame({"model": ["a", "b"], "auc": [0.71234, np.nan]})
    a1 = Artifacts(tmp_path / "r1", notebook="x")
    a2 = Artifacts(tmp_path / "r2", notebook="x")
    a1.table("t", df, caption="T")
    a2.table("t", df, caption="T")
    for ext in ("csv", "md", "html"):
        assert (tmp_path / "r1/tables" / f"t.{ext}").read_bytes() == (tmp_path / "r2/tables" / f"t.{ext}").read_bytes()
    assert "0.712" in (tmp_path / "r1/tables/t.md").read_text()


def test_figures_are_byte_identical(tmp_path):
    import matplotlib.pyplot as plt

    for run in ("r1", "r2"):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        Artifacts(tmp_path / run).figure("f", fig)
    for ext in ("png", "pdf"):
        assert (tmp_path / "r1/figures" / f"f.{ext}").read_bytes() == (tmp_path / "r2/figures" / f"f.{ext}").read_bytes()


def test_a_ggplot_is_saved_as_png_and_pdf_byte_identical(tmp_path):
    import plotnine as p9

    df = pd.DataFrame({"x": [0, 1, 2], "y": [1, 0, 2]})
    for run in ("r1", "r2"):
        gg = p9.ggplot(df, p9.aes("x", "y")) + p9.geom_line()
        saved = Artifacts(tmp_path / run).figure("g", gg, width=4, height=3)
        assert saved.png.exists() and saved.pdf.exists()
    for ext in ("png", "pdf"):
        assert (tmp_path / "r1/figures" / f"g.{ext}").read_bytes() == (tmp_path / "r2/figures" / f"g.{ext}").read_bytes()
    from PIL import Image

    assert abs(Image.open(tmp_path / "r1/figures/g.png").size[0] - 4 * 150) < 60  # width x dpi, tight box
    assert (tmp_path / "r1/figures/g.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(Exception, match="ggplot or a matplotlib Figure"):
        Artifacts(tmp_path / "r3").figure("h", object())


def test_results_merge_and_nan_to_null(tmp_path):
    art = Artifacts(tmp_path, notebook="03_radiomics")
    art.results(selected=[{"feature": "f", "coef": 1.0}])
    art.results(cutoff=np.float64("nan"))
    art.reproduce([K.row("table2", 78.0, cohort="train", model="radiomics", metric="acc")])
    data = json.loads((tmp_path / "results/03_radiomics.json").read_text())
    assert data == {"selected": [{"feature": "f", "coef": 1.0}], "cutoff": None, "record_version": 1,
                    "reproduced": {"table2.train.radiomics.acc": 78.0}}


def test_results_refuse_a_key_the_record_has_not(tmp_path):
    art = Artifacts(tmp_path, notebook="05_dlrc")
    with pytest.raises(DlrcError, match="cutof not a field of DlrcRecord"):
        art.results(cutof=0.3)
    assert not (tmp_path / "results").exists()


def test_frames_round_trip_and_missing_is_explained(tmp_path):
    art = Artifacts(tmp_path, notebook="03_radiomics")
    df = pd.DataFrame({"Rad_score": [0.1, -0.2]}, index=pd.Index(["P1", "P2"], name="patient_id"))
    art.save_frame("rad_score", df)
    pd.testing.assert_frame_equal(art.load_frame("rad_score"), df)
    with pytest.raises(FileNotFoundError, match="dl_scores"):
        art.load_frame("dl_scores")


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "x.txt"
    atomic_write_text(target, "old")

    class Boom(Exception):
        pass

    def boom(*a, **k):
        raise Boom

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(Boom):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_dumps_sorted():
    assert dumps({"b": 1, "a": [np.int64(2)]}).index('"a"') < dumps({"b": 1, "a": [2]}).index('"b"')


def test_written_files_are_readable_by_others(tmp_path):
    """Atomic writes go through mkstemp (0600); the files they leave follow the umask instead."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        art = Artifacts(tmp_path, notebook="nb")
        art.table("t", pd.DataFrame({"a": [1]}))
        art.save_frame("f", pd.DataFrame({"a": [1]}))
        for f in (tmp_path / "tables" / "t.csv", tmp_path / "data" / "f.parquet"):
            assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
    finally:
        os.umask(old)
