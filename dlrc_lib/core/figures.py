"""One figure style for every figure of the package (matplotlib).

All figures are drawn with matplotlib: the paper's figures include a nomogram, a flow chart
and MRI slices, which a grammar-of-graphics library cannot draw, and one library means one
look, one way to save (``Artifacts.figure``) and no renderer state between draws. A plotting
function takes ``ax=None`` (or ``axes``), draws, and returns the :class:`~matplotlib.figure.Figure`;
it never saves or shows.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

#: Colours: the three models of Fig. 4-6, the two LNM groups, reference lines.
MODEL_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")
LNM_COLOURS = ("#4c72b0", "#dd8452")  # LNM(-), LNM(+)
THRESHOLD_COLOUR = "#b2182b"
BAR_COLOUR = "#3b6ea8"

STYLE = {
    "figure.dpi": 100,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.grid": True,
    "grid.color": "#e5e5e5",
    "grid.linewidth": 0.6,
    "axes.edgecolor": "#333333",
    "axes.linewidth": 0.8,
    "axes.axisbelow": True,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "savefig.facecolor": "white",
}


@contextmanager
def style() -> Iterator[None]:
    """The package's matplotlib style, for the figures drawn inside the block."""
    import matplotlib.pyplot as plt

    with plt.rc_context(STYLE):
        yield


def subplots(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (6, 4), **kw):
    """A new figure in the package's style (``fig, axes`` as :func:`matplotlib.pyplot.subplots`,
    ``axes`` always a 2-D array)."""
    import matplotlib.pyplot as plt

    with style():
        fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False, **kw)
    for ax in axes.ravel():
        _apply(ax)
    return fig, axes


def _apply(ax) -> None:
    """The style's axes settings (rc_context only applies to axes made inside it)."""
    ax.grid(True, color=STYLE["grid.color"], linewidth=STYLE["grid.linewidth"])
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(True)
        ax.spines[side].set_linewidth(STYLE["axes.linewidth"])


def axes_or_new(ax=None, size: tuple[float, float] = (6, 4)):
    """``(fig, ax)``: the given axes and its figure, or a new single-axes figure."""
    if ax is not None:
        _apply(ax)
        return ax.figure, ax
    fig, axes = subplots(1, 1, size=size)
    return fig, axes[0, 0]


def hide_unused(axes, used: int) -> None:
    """Hide the panels of a grid beyond the first ``used``."""
    for ax in list(axes.ravel())[used:]:
        ax.set_visible(False)


def violins(ax, groups: Sequence, positions: Sequence[float], colours: Sequence[str], width: float = 0.7,
            box: bool = True) -> None:
    """Violins (with a narrow box plot inside) of several samples at ``positions``."""
    import numpy as np

    data = [np.asarray(g, dtype=float)[np.isfinite(np.asarray(g, dtype=float))] for g in groups]
    ok = [i for i, d in enumerate(data) if d.size >= 2 and np.ptp(d) > 0]
    if ok:
        parts = ax.violinplot([data[i] for i in ok], positions=[positions[i] for i in ok], widths=width,
                              showextrema=False)
        for body, i in zip(parts["bodies"], ok):
            body.set_facecolor(colours[i])
            body.set_edgecolor("#333333")
            body.set_linewidth(0.4)
            body.set_alpha(0.65)
    if box:
        present = [i for i, d in enumerate(data) if d.size]
        if present:
            ax.boxplot([data[i] for i in present], positions=[positions[i] for i in present], widths=width * 0.2,
                       showfliers=True, flierprops={"markersize": 2, "alpha": 0.5}, patch_artist=True,
                       boxprops={"facecolor": "white", "linewidth": 0.6}, medianprops={"color": "#333333"},
                       whiskerprops={"linewidth": 0.6}, capprops={"linewidth": 0.6}, manage_ticks=False)
