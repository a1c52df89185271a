"""The one look of every figure of the package, for both libraries it draws with.

Charts of data (ROC, calibration, decision curves, PCA, funnels, violins, heatmaps, the
specification curve) are plotnine ``ggplot``\\ s; diagrams (the nomogram, the flow chart,
MRI panels) are matplotlib figures. Both take their fonts, sizes, lines and colours from
the constants below: :func:`theme_dlrc` (plotnine) and :data:`STYLE` (matplotlib rc) are
two spellings of the same theme, and the colour scales (:func:`scale_colour_models`, ...)
use the same palettes as the matplotlib code.

Sizes are in points as matplotlib counts them. plotnine sizes geoms in its own unit (a line
of ``size`` s is ``s * sqrt(pi)`` points wide); :func:`pt` converts.
"""
from __future__ import annotations

from typing import Mapping, Sequence

# ------------------------------------------------------------------ fonts and sizes
FONT_FAMILY = "DejaVu Sans"  # matplotlib's own font: present wherever matplotlib is
BASE_SIZE = 9.0  # axis labels, body text
TITLE_SIZE = 10.0  # plot and panel titles
TICK_SIZE = 8.0  # tick labels
LEGEND_SIZE = 8.0  # legend entries
NOTE_SIZE = 7.0  # text inside panels (AUC, calibration statistics)

# ------------------------------------------------------------------------- lines
GRID_COLOUR = "#e5e5e5"
GRID_WIDTH = 0.6
EDGE_COLOUR = "#333333"
EDGE_WIDTH = 0.8
REFERENCE_COLOUR = "grey"  # chance diagonal, ideal calibration line

# ----------------------------------------------------------------------- colours
#: The models of Figs. 4-6 (and any list of models or comparisons), in order.
MODEL_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")
#: Fig. 4's fixed colours: radiomics, the best deep-learning model, DLRC.
ROLE_COLOURS = {"radiomics": "#1b9e77", "dl": "#7570b3", "dlrc": "#d95f02"}
#: Models known by their label: the same colour in every figure.
LABEL_COLOURS = {"Radiomics": ROLE_COLOURS["radiomics"], "DLRC": ROLE_COLOURS["dlrc"]}
#: The two LNM groups: LNM(-), LNM(+).
LNM_COLOURS = ("#4c72b0", "#dd8452")
LNM_LABELS = ("LNM(-)", "LNM(+)")
#: The three cohorts (training, internal, external validation), where a figure colours them.
COHORT_COLOURS = ("#4daf4a", "#377eb8", "#984ea3")
#: Centres and scanners (many groups): matplotlib's tab10 / tab20.
GROUP_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf")
GROUP_COLOURS_20 = ("#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
                    "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7",
                    "#bcbd22", "#dbdb8d", "#17becf", "#9edae5")
THRESHOLD_COLOUR = "#b2182b"  # a cut-off (ICC threshold), the params file's choice
BAR_COLOUR = "#3b6ea8"  # single-series bars and points
PAPER_COLOUR = "#d08a1a"  # the published value
PAPER_FILL = "#f4c27a"  # ... and its confidence interval

#: matplotlib rc settings of the theme (diagrams; :func:`dlrc_lib.core.figures.style`).
STYLE = {
    "figure.dpi": 100,
    "font.family": "sans-serif",
    "font.sans-serif": [FONT_FAMILY],
    "font.size": BASE_SIZE,
    "axes.titlesize": TITLE_SIZE,
    "axes.labelsize": BASE_SIZE,
    "axes.grid": True,
    "grid.color": GRID_COLOUR,
    "grid.linewidth": GRID_WIDTH,
    "axes.edgecolor": EDGE_COLOUR,
    "axes.linewidth": EDGE_WIDTH,
    "axes.axisbelow": True,
    "legend.frameon": False,
    "legend.fontsize": LEGEND_SIZE,
    "xtick.labelsize": TICK_SIZE,
    "ytick.labelsize": TICK_SIZE,
    "savefig.facecolor": "white",
}


def pt(points: float) -> float:
    """plotnine's ``size`` of a line (or a point's diameter) ``points`` wide."""
    import math

    return points / math.sqrt(math.pi)


def colours_for(names: Sequence[str], colours: Mapping[str, str] | None = None,
                palette: Sequence[str] = MODEL_COLOURS) -> dict[str, str]:
    """``name -> colour``: the given mapping where it has the name, then the fixed colours of
    the radiomics and DLRC models (:data:`LABEL_COLOURS`, so Figs. 4-6 agree), then the
    palette's unused colours in order."""
    given = dict(LABEL_COLOURS)
    given.update(colours or {})
    fixed = {n: given[n] for n in names if n in given}
    free = [c for c in palette if c not in fixed.values()] or list(palette)
    out, k = {}, 0
    for n in names:
        if n in fixed:
            out[n] = fixed[n]
        else:
            out[n] = free[k % len(free)]
            k += 1
    return out


def group_palette(n: int) -> tuple[str, ...]:
    """Colours for ``n`` centres or scanners (tab10, tab20 beyond ten)."""
    return GROUP_COLOURS if n <= 10 else GROUP_COLOURS_20


def theme_dlrc(base_size: float = BASE_SIZE, figure_size: tuple[float, float] | None = None):
    """The package's plotnine theme: white panels with a thin dark border and light grid,
    left-aligned panel titles without a strip box (as matplotlib's ``set_title(loc="left")``),
    legends without a frame; fonts and sizes of :data:`STYLE`."""
    import plotnine as p9

    scale = base_size / BASE_SIZE
    th = p9.theme_bw(base_size=base_size, base_family=FONT_FAMILY) + p9.theme(
        text=p9.element_text(family=FONT_FAMILY, size=base_size, color="black"),
        axis_title=p9.element_text(size=base_size),
        axis_text=p9.element_text(size=TICK_SIZE * scale, color="#222222"),
        axis_ticks=p9.element_line(color=EDGE_COLOUR, size=EDGE_WIDTH),
        panel_border=p9.element_rect(color=EDGE_COLOUR, size=EDGE_WIDTH, fill=None),
        panel_grid_major=p9.element_line(color=GRID_COLOUR, size=GRID_WIDTH),
        panel_grid_minor=p9.element_blank(),
        panel_background=p9.element_rect(fill="white"),
        plot_background=p9.element_rect(fill="white", color="white"),
        plot_title=p9.element_text(size=TITLE_SIZE * scale, ha="left"),
        strip_background=p9.element_blank(),
        strip_text=p9.element_text(size=TITLE_SIZE * scale, ha="left", color="black"),
        legend_title=p9.element_text(size=LEGEND_SIZE * scale),
        legend_text=p9.element_text(size=LEGEND_SIZE * scale),
        legend_key=p9.element_blank(),
        legend_background=p9.element_blank(),
        dpi=100,
    )
    if figure_size is not None:
        th = th + p9.theme(figure_size=figure_size)
    return th


def scale_colour_models(models: Sequence[str], colours: Mapping[str, str] | None = None, name: str = "Model",
                        aesthetics: Sequence[str] = ("colour",), **kw):
    """A manual colour scale: each model its colour (``colours``, else :data:`MODEL_COLOURS`
    in order), the legend in the models' order."""
    import plotnine as p9

    values = colours_for(list(models), colours)
    return p9.scale_colour_manual(values=values, breaks=list(models), limits=list(models), name=name,
                                  aesthetics=list(aesthetics), **kw)


def scale_fill_models(models: Sequence[str], colours: Mapping[str, str] | None = None, name: str = "Model", **kw):
    """:func:`scale_colour_models` for the fill."""
    return scale_colour_models(models, colours, name, aesthetics=("fill",), **kw)


def scale_fill_lnm(name: str = "", **kw):
    """LNM(-) / LNM(+) fill (a column holding :data:`LNM_LABELS`)."""
    import plotnine as p9

    return p9.scale_fill_manual(values=dict(zip(LNM_LABELS, LNM_COLOURS)), limits=list(LNM_LABELS), name=name, **kw)


def scale_colour_groups(levels: Sequence[str], name: str = "", aesthetics: Sequence[str] = ("colour",), **kw):
    """Centres or scanners: tab10 (tab20 beyond ten groups), in the levels' order."""
    import plotnine as p9

    pal = group_palette(len(levels))
    return p9.scale_colour_manual(values={lv: pal[i % len(pal)] for i, lv in enumerate(levels)},
                                  limits=list(levels), name=name, aesthetics=list(aesthetics), **kw)
