"""The one way notebooks write and read run artifacts under ``reports/<run>/``.

Layout of a run directory::

    notebooks/NN_*.ipynb   executed notebooks (written by the runner)
    html/NN_*.html         their HTML copies
    tables/<name>.csv|.md|.html
    figures/<name>.png|.pdf
    results/<notebook>.json   machine-readable results, including ``reproduced``:
                              values keyed by their dotted path in published_values.yaml
    data/<name>.parquet    frames handed from one notebook to a later one
    model/                 the exported model (JSON)
    run.json, index.html   provenance and the report page (runner)

Every write is atomic (temporary file + rename), so an interrupted run never leaves a
half-written table, figure or frame behind.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.io import atomic_write_text, dumps, jsonable


class Artifacts:
    """Artifact helper bound to one run directory and (optionally) one notebook.

    >>> art = Artifacts("reports/quick", notebook="03_radiomics")
    >>> art.table("table2_radiomics", df)          # tables/table2_radiomics.{csv,md,html}
    >>> art.figure("fig4_roc", plot)                # figures/fig4_roc.{png,pdf}
    >>> art.reproduce({"table2.train.radiomics.auc": [0.73, 0.69, 0.78]})
    >>> art.save_frame("rad_score", scores)         # data/rad_score.parquet
    """

    def __init__(self, run_dir: str | Path, notebook: str | None = None):
        self.run_dir = Path(run_dir)
        self.notebook = notebook
        for sub in ("tables", "figures", "results", "data", "model"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ paths
    def path(self, kind: str, name: str) -> Path:
        return self.run_dir / kind / name

    # ----------------------------------------------------------------- tables
    def table(self, name: str, df: pd.DataFrame, caption: str | None = None,
              index: bool = False, float_format: str = "{:.3f}") -> pd.DataFrame:
        """Write a table as CSV, Markdown and HTML; return it (for display)."""
        out = df.reset_index() if index else df
        atomic_write_text(self.path("tables", f"{name}.csv"), out.to_csv(index=False))
        shown = out.copy()
        for col in shown.columns:
            if pd.api.types.is_float_dtype(shown[col]):
                shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else float_format.format(v))
        md = (f"**{caption}**\n\n" if caption else "") + _markdown(shown) + "\n"
        atomic_write_text(self.path("tables", f"{name}.md"), md)
        html = shown.to_html(index=False, escape=True, classes="dlrc-table", border=0)
        if caption:
            html = html.replace(">\n  <thead>", f">\n  <caption>{caption}</caption>\n  <thead>", 1)
        atomic_write_text(self.path("tables", f"{name}.html"), html)
        return df

    def table_html(self, name: str, html: str) -> str:
        """A styled HTML version of table ``name`` (written by :meth:`table` first), which
        replaces its plain HTML; returns the HTML (for display)."""
        if not self.path("tables", f"{name}.csv").is_file():
            raise DlrcError(f"table {name}: write it with Artifacts.table before its styled HTML")
        atomic_write_text(self.path("tables", f"{name}.html"), html)
        return html

    # ---------------------------------------------------------------- figures
    def figure(self, name: str, fig: Any, width: float | None = None,
               height: float | None = None, dpi: int = 150) -> Any:
        """Save a plotnine ggplot or a matplotlib Figure as PNG and PDF.

        Returns a :class:`SavedFigure`, which a notebook displays as the saved PNG (so the
        executed notebook and its HTML show exactly the file in ``figures/``).
        """
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        if hasattr(fig, "draw") and hasattr(fig, "save") and not hasattr(fig, "savefig"):
            # plotnine: render to a matplotlib figure once, save both formats from it
            if width and height:
                fig = fig + __import__("plotnine").theme(figure_size=(width, height))
            mfig = fig.draw()
        else:
            mfig = fig
            if width and height:
                mfig.set_size_inches(width, height)
        for ext in ("png", "pdf"):
            target = self.path("figures", f"{name}.{ext}")
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".{ext}")
            os.close(fd)
            try:
                # fixed metadata so the same inputs give the same bytes
                meta = {"CreationDate": None} if ext == "pdf" else {"Software": None}
                mfig.savefig(tmp, dpi=dpi, bbox_inches="tight", metadata=meta)
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
        """Merge named values into ``results/<notebook>.json`` and return the whole dict."""
        path = self._results_path()
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update(jsonable(values))
        atomic_write_text(path, dumps(current))
        return current

    def reproduce(self, values: dict[str, Any]) -> None:
        """Record reproduced numbers keyed by their dotted path in published_values.yaml.

        E.g. ``{"table2.train.DLRC.auc": [0.80, 0.76, 0.85], "table2.train.DLRC.acc": 78.0}``;
        the report page shows them beside the published values.
        """
        self._merge_into("reproduced", values)

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
        current = json.loads(path.read_text()) if path.exists() else {}
        section = current.get(key, {})
        section.update(jsonable(values))
        current[key] = section
        atomic_write_text(path, dumps(current))
        return section

    def warn(self, message: str) -> None:
        """A warning that must reach the report page and run.json (e.g. random weights)."""
        import warnings

        path = self._results_path()
        current = json.loads(path.read_text()) if path.exists() else {}
        msgs = current.get("warnings", [])
        if message not in msgs:
            msgs.append(message)
        current["warnings"] = msgs
        atomic_write_text(path, dumps(current))
        warnings.warn(message, stacklevel=2)

    def load_results(self, notebook: str) -> dict:
        path = self.path("results", f"{notebook}.json")
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: results of notebook {notebook} not found; run it first "
                f"(dlrc run --only {notebook[:2]})"
            )
        return json.loads(path.read_text())

    # ----------------------------------------------------------------- frames
    def save_frame(self, name: str, df: pd.DataFrame) -> pd.DataFrame:
        target = self.path("data", f"{name}.parquet")
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            df.to_parquet(tmp, index=True)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return df

    def load_frame(self, name: str) -> pd.DataFrame:
        path = self.path("data", f"{name}.parquet")
        if not path.exists():
            raise FileNotFoundError(f"{path}: frame '{name}' not found; the notebook that writes it has not run")
        return pd.read_parquet(path)

    def list(self, kind: str, pattern: str = "*") -> Iterable[Path]:
        return sorted((self.run_dir / kind).glob(pattern))


class SavedFigure:
    """A figure written by :meth:`Artifacts.figure`; shown in notebooks as its PNG."""

    def __init__(self, png: Path):
        self.png = Path(png)
        self.pdf = self.png.with_suffix(".pdf")

    def _repr_png_(self) -> bytes:
        return self.png.read_bytes()

    def __repr__(self) -> str:
        return f"SavedFigure({self.png})"


def _markdown(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)
