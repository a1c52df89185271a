"""Figures of the package: plotnine for charts of data, matplotlib for diagrams, one theme.

* **Charts of data** (ROC, calibration, decision curves, PCA, selection funnel, LASSO curve,
  violins, heatmaps, ICC, the specification curve) are plotnine ``ggplot``\\ s built by
  Display objects in scikit-learn's manner: ``XDisplay.from_...(...)`` computes what is
  drawn (small frames you can inspect or test), ``.plot()`` returns the ``ggplot`` (extend it
  with ``+ theme(...)`` or another layer), ``.save(path)`` writes it (:class:`GgplotDisplay`).
* **Diagrams** (the nomogram, the flow chart, MRI panels) are matplotlib figures: a grammar
  of graphics has no geometry for them. Their functions take ``ax=None`` (or ``axes``), draw
  and return the :class:`~matplotlib.figure.Figure`.

The theme of :mod:`dlrc_lib.core.theme` holds one set of fonts, sizes and colours:
``theme_dlrc()`` for the ggplots, :data:`STYLE` (through :func:`style`) for matplotlib
figures; the package's diagrams take its colours but keep their own layout settings. Nothing
here saves into a run: ``Artifacts.figure`` writes
either kind as PNG and PDF (a ggplot is rendered once with :func:`render`).
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from dlrc_lib.core.theme import STYLE, pt

if TYPE_CHECKING:
    import pandas as pd


def is_ggplot(obj: Any) -> bool:
    """Whether ``obj`` is a plotnine ``ggplot`` (without importing plotnine for others)."""
    return type(obj).__module__.startswith("plotnine") and hasattr(obj, "draw") and not hasattr(obj, "savefig")


def render(plot: Any, width: float | None = None, height: float | None = None):
    """Render a ggplot to a matplotlib Figure (``width`` x ``height`` inches when both are
    given, else the plot's own ``figure_size``), with plotnine's warnings about sizes and
    saving silenced. The caller closes the figure. A copy is drawn: plotnine 0.15 leaves a
    drawn plot with free facet scales unable to take another layer, and the caller's plot
    stays extendable."""
    import copy

    import matplotlib

    matplotlib.use("Agg", force=False)
    import plotnine as p9
    from plotnine.exceptions import PlotnineWarning

    plot = plot + p9.theme(figure_size=(width, height)) if width and height else copy.deepcopy(plot)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PlotnineWarning)
        return plot.draw()


def save_figure(fig: Any, path: str | Path, dpi: int = 150) -> Path:
    """Save a rendered figure with fixed metadata (the same inputs give the same bytes)."""
    path = Path(path)
    meta = {"CreationDate": None} if path.suffix.lower() == ".pdf" else \
        {"Software": None} if path.suffix.lower() == ".png" else None
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata=meta)
    return path


def png_bytes(fig: Any, dpi: int = 150) -> bytes:
    """A rendered figure as PNG bytes (fixed metadata), for showing without saving."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


class GgplotDisplay:
    """What every Display of the package has beside ``plot()`` (which returns the ggplot)."""

    def plot(self):  # pragma: no cover - each display defines it
        raise NotImplementedError

    def save(self, path: str | Path, width: float | None = None, height: float | None = None,
             dpi: int = 150) -> Path:
        """Render :meth:`plot` once and write it to ``path`` (PNG, PDF or SVG by the suffix)."""
        import matplotlib.pyplot as plt

        fig = render(self.plot(), width, height)
        try:
            return save_figure(fig, path, dpi)
        finally:
            plt.close(fig)

    def _repr_png_(self) -> bytes:
        """Shown in a notebook as the rendered plot."""
        import matplotlib.pyplot as plt

        fig = render(self.plot())
        try:
            return png_bytes(fig, dpi=100)
        finally:
            plt.close(fig)


@contextmanager
def style() -> Iterator[None]:
    """The package's matplotlib style, for the figures drawn inside the block."""
    import matplotlib.pyplot as plt

    with plt.rc_context(STYLE):
        yield


def violin_layers(data: pd.DataFrame, x: str, y: str, fill: str, *, width: float = 0.7, dodge: float | None = None):
    """Violins (where a group has two or more distinct values) with a narrow white box plot
    inside, as the matplotlib figures drew them: the layers to add to a ggplot."""
    import numpy as np
    import plotnine as p9

    keys = [x, fill] if fill != x else [x]
    spread = data.groupby(keys, observed=True)[y].agg(lambda v: v.size >= 2 and np.ptp(v) > 0)
    ok = data.set_index(keys).index.isin(spread[spread].index)
    data = data.assign(_group=data[x].astype(str) + "\x1f" + data[fill].astype(str))
    pos = p9.position_dodge(width=dodge) if dodge else "identity"
    return [p9.geom_violin(p9.aes(x, y, fill=fill), data=data[ok], width=width, alpha=0.65, colour="#333333",
                           size=pt(0.4), position=pos, scale="width"),
            p9.geom_boxplot(p9.aes(x, y, group="_group"), data=data, width=width * 0.2, fill="white",
                            colour="#333333", size=pt(0.6), outlier_size=pt(2.0), outlier_alpha=0.5,
                            outlier_stroke=0, position=pos)]
