"""The one way notebooks write and read run artifacts under ``reports/<run>/``.

Layout of a run directory::

    notebooks/NN_*.ipynb   executed notebooks (written by the runner)
    html/NN_*.html         their HTML copies
    tables/<name>.csv|.md|.html
    figures/<name>.png|.pdf
    results/<notebook>.json   machine-readable results: the notebook's record
                              (:mod:`dlrc_lib.record`), including ``reproduced``: values
                              keyed by their dotted path in published_values.yaml
    data/<name>.parquet    frames handed from one notebook to a later one
    model/                 the exported model (JSON)
    run.json, index.html   provenance and the report page (runner)

Every write is atomic (temporary file + rename), so an interrupted run never leaves a
half-written table, figure or frame behind.
"""
from __future__ import annotations

import html as _html
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.figures import is_ggplot, png_bytes, render, save_figure
from dlrc_lib.core.io import atomic_write_text, dumps, jsonable, public_mode
from dlrc_lib.record import (RECORD_VERSION, VERSION_KEY, NotebookRecord, check_fields, parse_results,
                             read_notebook_record)
from dlrc_lib.study import keys as K
from dlrc_lib.run.layout import FRAME_PRODUCERS, MissingInput, run_command


class Artifacts:
    """Artifact helper bound to one run directory and (optionally) one notebook.

    >>> art = Artifacts("reports/quick", notebook="03_radiomics")
    >>> art.table("table2_radiomics", df)          # tables/table2_radiomics.{csv,md,html}
    >>> art.figure("fig4_roc", plot)                # figures/fig4_roc.{png,pdf}
    >>> art.reproduce([K.row("table2", [0.73, 0.69, 0.78], cohort="train", model="radiomics", metric="auc")])
    >>> art.save_frame("rad_score", scores)         # data/rad_score.parquet
    """

    def __init__(self, run_dir: str | Path, notebook: str | None = None, write: bool = True,
                 run: Any = None):
        """``write=False`` (a notebook explored interactively): nothing goes to disk; tables,
        figures, results and frames are kept in memory for this session, so the finished run
        the notebook reads is never overwritten. Folders are created only when written to.
        ``run``: the :class:`dlrc_lib.run.paths.NotebookRun` that says which command
        produces a missing input."""
        self.run_dir = Path(run_dir)
        self.notebook = notebook
        self.write = write
        self.run = run
        self._memory: dict[Path, Any] = {}

    def _missing(self, path: Path, what: str, producer: str | None) -> Exception:
        if self.run is not None:
            return self.run.missing(path, what, producer)
        return MissingInput(f"{Path(path).resolve()}: {what} not found; produce it with "
                            f"`{run_command(None, producer)}`")

    def _put_text(self, path: Path, text: str) -> None:
        if self.write:
            atomic_write_text(path, text)
        else:
            self._memory[path] = text

    def write_text(self, kind: str, name: str, text: str) -> Path:
        """Write ``<run>/<kind>/<name>`` atomically (in memory only when not writing)."""
        path = self.path(kind, name)
        self._put_text(path, text)
        return path

    # ------------------------------------------------------------------ paths
    def path(self, kind: str, name: str) -> Path:
        return self.run_dir / kind / name

    # ----------------------------------------------------------------- tables
    def table(self, name: str, df: pd.DataFrame, caption: str | None = None,
              index: bool = False, float_format: str = "{:.3f}") -> pd.DataFrame:
        """Write a table as CSV, Markdown and HTML; return it (for display)."""
        out = df.reset_index() if index else df
        self._put_text(self.path("tables", f"{name}.csv"), out.to_csv(index=False))
        shown = out.copy()
        for col in shown.columns:
            if pd.api.types.is_float_dtype(shown[col]):
                shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else float_format.format(v))
        md = (f"**{caption}**\n\n" if caption else "") + _markdown(shown) + "\n"
        self._put_text(self.path("tables", f"{name}.md"), md)
        html = shown.to_html(index=False, escape=True, classes="dlrc-table", border=0)
        if caption:
            html = html.replace(">\n  <thead>", f">\n  <caption>{_html.escape(caption)}</caption>\n  <thead>", 1)
        self._put_text(self.path("tables", f"{name}.html"), html)
        return df

    def table_html(self, name: str, html: str) -> str:
        """A styled HTML version of table ``name`` (written by :meth:`table` first), which
        replaces its plain HTML; returns the HTML (for display)."""
        csv = self.path("tables", f"{name}.csv")
        if csv not in self._memory and not csv.is_file():
            raise DlrcError(f"table {name}: write it with Artifacts.table before its styled HTML")
        self._put_text(self.path("tables", f"{name}.html"), html)
        return html

    # ---------------------------------------------------------------- figures
    def figure(self, name: str, fig: Any, width: float | None = None,
               height: float | None = None, dpi: int = 150) -> Any:
        """Save a plotnine ggplot (the charts of data) or a matplotlib Figure (the diagrams;
        see :mod:`dlrc_lib.core.figures`) as PNG and PDF.

        ``width`` x ``height`` inches when both are given, else the figure's own size; a
        ggplot is rendered once and both files are saved from that render. Returns a
        :class:`SavedFigure`, which a notebook displays as the saved PNG (so the executed
        notebook and its HTML show exactly the file in ``figures/``).
        """
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        if is_ggplot(fig):
            mfig = render(fig, width, height)
        elif hasattr(fig, "savefig"):
            mfig = fig
            if width and height:
                mfig.set_size_inches(width, height)
        else:
            raise DlrcError(f"figure {name}: expected a plotnine ggplot or a matplotlib Figure, "
                            f"got {type(fig).__name__}")
        if not self.write:  # shown from memory, nothing saved
            shown = png_bytes(mfig, dpi)
            plt.close(mfig)
            return SavedFigure(self.path("figures", f"{name}.png"), png_bytes=shown)
        for ext in ("png", "pdf"):
            target = self.path("figures", f"{name}.{ext}")
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".{ext}")
            os.close(fd)
            public_mode(tmp)
            try:
                save_figure(mfig, tmp, dpi)  # fixed metadata: the same inputs give the same bytes
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        plt.close(mfig)
        return SavedFigure(self.path("figures", f"{name}.png"))

    # ---------------------------------------------------------------- results
    def _results_path(self) -> Path:
        if not self.notebook:
            raise ValueError("Artifacts(notebook=...) is needed to write results")
        return self.path("results", f"{self.notebook}.json")

    def results(self, **values: Any) -> dict:
        """Merge named values into ``results/<notebook>.json`` and return the whole dict.

        The names are the fields of the notebook's record class (:mod:`dlrc_lib.record`); any
        other name is refused in one line."""
        path = self._results_path()
        check_fields(self.notebook, values)
        current = self._read_own_results(path)
        current.update(jsonable(values))
        self._write_results(path, current)
        return current

    def record(self, rec: NotebookRecord) -> dict:
        """Merge a notebook record's fields into ``results/<notebook>.json`` (its notebook's file)."""
        if rec.NOTEBOOK != self.notebook:
            raise DlrcError(f"{type(rec).__name__} is notebook {rec.NOTEBOOK}'s record, not {self.notebook}'s")
        data = rec.to_dict()
        data.pop(VERSION_KEY, None)
        return self.results(**data)

    def _write_results(self, path: Path, current: dict) -> None:
        current[VERSION_KEY] = RECORD_VERSION
        self._put_text(path, dumps(current))

    def reproduce(self, rows: Iterable[K.Row]) -> None:
        """Record reproduced numbers keyed by their dotted path in published_values.yaml.

        ``rows``: :class:`dlrc_lib.study.keys.Row` s, e.g. ``K.row("table2", 78.0, cohort="train",
        model="DLRC", metric="acc")``, recorded as ``{"table2.train.DLRC.acc": 78.0}``; the report
        page shows them beside the published values.
        """
        self._merge_into("reproduced", K.values(rows))

    def provenance(self, **values: Any) -> dict:
        """Record how this run went (seconds, cache hits, workers) under ``provenance``.

        These values differ between a cold and a warm run by design, so they are kept out
        of the tables (which must be byte-identical for the same parameters and seed); the
        runner copies them into ``run.json`` beside each notebook's time.
        """
        return self._merge_into("provenance", values)

    def _merge_into(self, key: str, values: dict[str, Any]) -> dict:
        """Merge ``values`` into the dict stored under ``key`` in this notebook's results."""
        path = self._results_path()
        current = self._read_own_results(path)
        section = current.get(key, {})
        section.update(jsonable(values))
        current[key] = section
        self._write_results(path, current)
        return section

    def _read_own_results(self, path: Path) -> dict:
        """This notebook's results so far: from memory when not writing (a fresh start), else
        the file (which the runner removed before the notebook started)."""
        if not self.write:
            return json.loads(self._memory[path]) if path in self._memory else {}
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def warn(self, message: str) -> None:
        """A warning that must reach the report page and run.json (e.g. random weights)."""
        import warnings

        path = self._results_path()
        current = self._read_own_results(path)
        msgs = current.get("warnings", [])
        if message not in msgs:
            msgs.append(message)
        current["warnings"] = msgs
        self._write_results(path, current)
        warnings.warn(message, stacklevel=2)

    def load_record(self, notebook: str) -> NotebookRecord:
        """An earlier notebook's record (:mod:`dlrc_lib.record`), from this session's memory when
        it was not written; a missing one says which command produces it."""
        path = self.path("results", f"{notebook}.json")
        if path in self._memory:
            return parse_results(notebook, json.loads(self._memory[path]), str(path))
        rec = read_notebook_record(self.run_dir, notebook)
        if rec is None:
            raise self._missing(path, f"results of notebook {notebook}", notebook)
        return rec

    # ----------------------------------------------------------------- frames
    def save_frame(self, name: str, df: pd.DataFrame) -> pd.DataFrame:
        target = self.path("data", f"{name}.parquet")
        if not self.write:
            self._memory[target] = df.copy()
            return df
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        public_mode(tmp)
        try:
            df.to_parquet(tmp, index=True)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return df

    def load_frame(self, name: str) -> pd.DataFrame:
        path = self.path("data", f"{name}.parquet")
        if path in self._memory:
            return self._memory[path].copy()
        if not path.exists():
            producer = FRAME_PRODUCERS.get(name)
            what = f"frame '{name}'" + (f" (written by notebook {producer})" if producer else "")
            raise self._missing(path, what, producer)
        return pd.read_parquet(path)

    def list(self, kind: str, pattern: str = "*") -> Iterable[Path]:
        return sorted((self.run_dir / kind).glob(pattern))


class SavedFigure:
    """A figure written by :meth:`Artifacts.figure`; shown in notebooks as its PNG."""

    def __init__(self, png: Path, png_bytes: bytes | None = None):
        self.png = Path(png)
        self.pdf = self.png.with_suffix(".pdf")
        self._bytes = png_bytes  # a figure shown but not saved (Artifacts(write=False))

    def _repr_png_(self) -> bytes:
        return self._bytes if self._bytes is not None else self.png.read_bytes()

    def __repr__(self) -> str:
        return f"SavedFigure({self.png})"


def _markdown(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)
