"""Interactive views of the models: a nomogram calculator, a cut-off explorer with its ROC
panel, a decision-curve explorer and a calibration explorer.

In JupyterLab they are ipywidgets; where no widget frontend can show them (a headless
papermill run, which the runner marks with ``DLRC_HEADLESS=1``, or ipywidgets missing)
the same functions return static tables instead, so a report is never broken by a widget.
Every number a view shows comes from a plain function of this module
(:func:`calculator_table`, :func:`cutoff_table`, :func:`roc_points`,
:func:`decision_curve_window`, :func:`calibration_summary`), which the widgets only
re-evaluate on every change; the browser test compares the displayed numbers with them.
"""
from __future__ import annotations

import html as _html
import io
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from dlrc_lib.core.figures import render
from dlrc_lib.core.progress import headless as runner_headless
from dlrc_lib.core.theme import COHORT_COLOURS
from dlrc_lib.evaluation.calibration import calibration_table
from dlrc_lib.evaluation.decision_curve import DecisionCurveDisplay
from dlrc_lib.evaluation.performance import metrics_at_cutoff
from dlrc_lib.evaluation.roc import roc_points as roc_curve_points
from dlrc_lib.model.nomogram import Nomogram
from dlrc_lib.reporting.display import people_number
from dlrc_lib.study.schema import COHORT_LABELS
from dlrc_lib.study.schema import COHORTS, PROB_COLUMNS

MODEL_LABELS = {"radiomics": "Radiomics", "dl": "Deep learning", "dlrc": "DLRC"}
RATES = ("SEN", "SPE", "PPV", "NPV", "ACC")
THRESHOLD_STEP = 0.005  # cut-off explorer: one slider step
CLNM_TERM = "c_LNM"
CLNM_TEXT = "c_LNM (largest pelvic node short axis ≥ 10 mm on MRI)"
STYLE = {"description_width": "initial"}


def headless() -> bool:
    """True when widgets cannot be displayed: ``DLRC_HEADLESS=1`` (set by the runner for
    papermill), no IPython kernel, or ipywidgets not installed."""
    if runner_headless():
        return True
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return True
    ip = get_ipython()
    return ip is None or not hasattr(ip, "kernel")


def model_labels(best_model: str | None = None) -> dict[str, str]:
    """Display names per model role; the deep-learning model by its name (e.g. ResNet50_2D)."""
    return {**MODEL_LABELS, **({"dl": str(best_model)} if best_model else {})}


# The nomogram's score terms: the linear predictor of their own logistic model, shown to a
# reader as that model's risk of LNM (probability = logistic of the score).
SCORE_MODELS = {"Rad_score": "Radiomics", "DL_score": "Deep-learning"}


def _sigmoid(x: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, float)))


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-9), 1 - 1e-9)
    return float(np.log(p / (1.0 - p)))


def percent(value: float, decimals: int = 1) -> str:
    """``85.7 %``; an undefined rate (0/0) as ``n/a``."""
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{decimals}f} %"


# ----------------------------------------------------------------- computation
def calculator_table(nom: Nomogram, patients: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Points per term, total points and risk for each patient (a mapping term -> value)."""
    rows = []
    for p in patients:
        pts = nom.points_for(p)
        row = {t: p[t] for t in nom.terms}
        row.update({f"points_{t}": round(pts[t], 1) for t in nom.terms})
        row["total_points"] = round(pts["total"], 1)
        row["risk"] = round(float(nom.risk_from_total(pts["total"])), 3)
        rows.append(row)
    return pd.DataFrame(rows)


def example_patients(nom: Nomogram) -> list[dict[str, float]]:
    """A grid for the static calculator: each binary term at both values, each score at the
    lower quartile, middle and upper quartile of its drawn range."""
    grid: list[dict[str, float]] = [{}]
    for t in nom.terms:
        if t in nom.binary:
            values = [0.0, 1.0]
        else:
            lo, hi = nom.ranges[t]
            values = [round(lo + f * (hi - lo), 2) for f in (0.25, 0.5, 0.75)]
        grid = [{**g, t: v} for g in grid for v in values]
    return grid


def absent_term_note(nom: Nomogram, screening: pd.DataFrame | None = None,
                     term: str = CLNM_TERM) -> str | None:
    """Why a clinical term (c_LNM) has no axis: the screening p-value or the stepwise fit.

    None when the term is in the fitted model. ``screening``: the table of
    :func:`dlrc_lib.model.screen_clinical` (columns term, p_shown, candidate, note).
    """
    if term in nom.terms:
        return None
    text = CLNM_TEXT if term == CLNM_TERM else term
    row = None
    if screening is not None and "term" in screening:
        hits = screening[screening["term"] == term]
        row = hits.iloc[0] if len(hits) else None
    if row is None:
        return f"{text} is not a term of this fitted model, so it has no control here."
    p = row.get("p_shown", row.get("p"))
    if bool(row.get("candidate")):
        return (f"{text} passed the clinical screening in the training cohort (p = {p}) but the backward "
                f"stepwise selection (AIC) removed it: with the two scores in the model it did not improve "
                f"the fit enough. It therefore has no control here.")
    return (f"{text} is not in this fitted model: in the training cohort its screening test gave p = {p} "
            f"({row.get('note', 'not a candidate')}), so it was never offered to the stepwise selection. "
            f"The paper's model kept it; on this study it carried too little evidence.")


def cutoff_table(predictions: pd.DataFrame, model: str, threshold: float) -> pd.DataFrame:
    """Confusion counts and SEN/SPE/PPV/NPV/ACC (percent) per cohort when ``model``'s
    probability >= ``threshold`` is called positive (``model``: radiomics, dl or dlrc)."""
    col = PROB_COLUMNS[model]
    rows = []
    for cohort in COHORTS:
        sub = predictions[predictions["cohort"] == cohort]
        if sub.empty:
            continue
        m = metrics_at_cutoff(sub["lnm"].to_numpy(int), sub[col].to_numpy(float) >= threshold)
        row: dict[str, Any] = {"cohort": COHORT_LABELS[cohort], "threshold": round(float(threshold), 4)}
        for k in ("tp", "fn", "tn", "fp"):
            row[k.upper()] = m[k]
        for k in ("sen", "spe", "ppv", "npv", "acc"):
            row[k.upper()] = round(m[k], 1) if np.isfinite(m[k]) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def for_people(table: pd.DataFrame) -> pd.DataFrame:
    """Rates as ``85.7 %`` (``n/a`` when undefined), counts as integers."""
    out = table.copy()
    for k in RATES:
        if k in out:
            out[k] = [percent(v) for v in out[k]]
    return out


def cutoff_summary(predictions: pd.DataFrame, cutoffs: Mapping[str, float],
                   best_model: str | None = None) -> pd.DataFrame:
    """The static cut-off explorer: every model at its training Youden cut-off."""
    labels = model_labels(best_model)
    parts = []
    for model in [m for m in PROB_COLUMNS if m in cutoffs]:  # no "dl" when deep learning was switched off
        t = cutoff_table(predictions, model, cutoffs[model])
        t.insert(0, "model", labels[model])
        parts.append(t)
    return for_people(pd.concat(parts, ignore_index=True))


def roc_points(predictions: pd.DataFrame, model: str, cohort: str) -> pd.DataFrame:
    """The empirical ROC curve (fpr, tpr) of ``model`` in ``cohort``: one point per distinct
    probability, calling positive when probability >= it, from (0, 0) to (1, 1)."""
    sub = predictions[predictions["cohort"] == cohort]
    return roc_curve_points(sub["lnm"].to_numpy(int), sub[PROB_COLUMNS[model]].to_numpy(float))


def roc_svg(predictions: pd.DataFrame, model: str, threshold: float, size: int = 230) -> str:
    """A small ROC panel (inline SVG): each cohort's curve of ``model`` and a dot where the
    current ``threshold`` puts it (1 - specificity, sensitivity of :func:`cutoff_table`)."""
    pad, inner = 30, size - 40
    x = lambda f: pad + f * inner  # noqa: E731
    y = lambda t: 10 + (1 - t) * inner  # noqa: E731
    parts = [f'<svg class="dlrc-roc" xmlns="http://www.w3.org/2000/svg" width="{size + 120}" height="{size}" '
             f'font-family="sans-serif" font-size="10">',
             f'<rect x="{x(0)}" y="{y(1)}" width="{inner}" height="{inner}" fill="none" stroke="#999"/>',
             f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#ccc" stroke-dasharray="3,3"/>']
    for v in (0, 0.5, 1):
        parts.append(f'<text x="{x(v)}" y="{y(0) + 12}" text-anchor="middle">{v:g}</text>')
        parts.append(f'<text x="{x(0) - 4}" y="{y(v) + 3}" text-anchor="end">{v:g}</text>')
    parts.append(f'<text x="{x(0.5)}" y="{size - 2}" text-anchor="middle">1 − specificity</text>')
    parts.append(f'<text x="8" y="{y(0.5)}" text-anchor="middle" transform="rotate(-90 8 {y(0.5)})">'
                 f'sensitivity</text>')
    table = cutoff_table(predictions, model, threshold).set_index("cohort")
    row_y = 16
    for cohort in COHORTS:
        if COHORT_LABELS[cohort] not in table.index:
            continue
        colour = COHORT_COLOURS[COHORTS.index(cohort) % len(COHORT_COLOURS)]
        pts = roc_points(predictions, model, cohort)
        path = " ".join(f"{x(f):.1f},{y(t):.1f}" for f, t in zip(pts["fpr"], pts["tpr"]))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        r = table.loc[COHORT_LABELS[cohort]]
        fpr = r["FP"] / max(r["FP"] + r["TN"], 1)
        tpr = r["TP"] / max(r["TP"] + r["FN"], 1)
        parts.append(f'<circle class="dlrc-roc-point" data-cohort="{cohort}" data-fpr="{fpr:.6f}" '
                     f'data-tpr="{tpr:.6f}" cx="{x(fpr):.1f}" cy="{y(tpr):.1f}" r="4" fill="{colour}" '
                     f'stroke="black"/>')
        parts.append(f'<rect x="{size + 2}" y="{row_y - 8}" width="10" height="3" fill="{colour}"/>'
                     f'<text x="{size + 16}" y="{row_y - 4}">{COHORT_LABELS[cohort]}</text>')
        row_y += 14
    parts.append(f'<text x="{size + 2}" y="{row_y + 6}">dot: current</text>'
                 f'<text x="{size + 2}" y="{row_y + 18}">threshold</text></svg>')
    return "".join(parts)


def snapped_range(cut: float, step: float = THRESHOLD_STEP) -> tuple[float, float]:
    """(min, max) of a slider grid with ``step`` inside [0, 1] that passes exactly through
    ``cut``, so the slider can start at the training cut-off itself, not a rounded value."""
    below = int(np.floor(cut / step + 1e-9))
    lo = cut - below * step
    above = int(np.floor((1.0 - cut) / step + 1e-9))
    return float(lo), float(cut + above * step)


TIED = "several tied"  # decision_curve_window's row for thresholds where the best strategies tie


def decision_curve_window(curves: pd.DataFrame, low: float, high: float,
                          models: Sequence[str] | None = None) -> pd.DataFrame:
    """Per cohort and strategy, over thresholds in [low, high]: net benefit at both ends and
    the share of the range in which the strategy alone has the highest net benefit of those
    shown. Thresholds where two or more strategies tie for the highest (treat-none and a model
    calling nobody positive both at 0) are counted once, in a row :data:`TIED` per cohort that
    names them, so that each cohort's shares add up to 100 %.

    ``curves``: :func:`dlrc_lib.decision_curve.decision_curves`; ``models``: the strategies
    compared (default all, including Treat all / Treat none).
    """
    t = curves["threshold"].to_numpy(float)
    part = curves[(t >= low - 1e-9) & (t <= high + 1e-9)]
    if models is not None:
        part = part[part["model"].isin(list(models))]
    rows = []
    for cohort in dict.fromkeys(part["cohort"]):
        sub = part[part["cohort"] == cohort]
        wide = sub.pivot_table(index="threshold", columns="model", values="net_benefit", sort=False)
        wide = wide[[m for m in dict.fromkeys(sub["model"])]]
        values = wide.to_numpy(float)
        best = np.isclose(values, values.max(axis=1, keepdims=True), rtol=0, atol=1e-12)
        alone = best & (best.sum(axis=1, keepdims=True) == 1)
        tied = best.sum(axis=1) > 1
        lo_t, hi_t = float(wide.index.min()), float(wide.index.max())
        label = COHORT_LABELS.get(cohort, cohort)
        for j, m in enumerate(wide.columns):
            rows.append({"cohort": label, "strategy": m,
                         f"net benefit at {lo_t:.0%}": float(wide.loc[lo_t, m]),
                         f"net benefit at {hi_t:.0%}": float(wide.loc[hi_t, m]),
                         "highest in (% of range)": round(100.0 * float(alone[:, j].mean()), 1)})
        if tied.any():
            names = [m for j, m in enumerate(wide.columns) if best[tied, j].any()]
            rows.append({"cohort": label, "strategy": f"{TIED} ({', '.join(names)})",
                         f"net benefit at {lo_t:.0%}": np.nan, f"net benefit at {hi_t:.0%}": np.nan,
                         "highest in (% of range)": round(100.0 * float(tied.mean()), 1)})
    return pd.DataFrame(rows)


def calibration_summary(predictions: pd.DataFrame, models: Mapping[str, str], groups: int) -> pd.DataFrame:
    """Hosmer-Lemeshow statistic and p per model and cohort for ``groups`` risk groups."""
    tab = calibration_table(predictions, dict(models), groups=groups)
    out = pd.DataFrame({"model": tab["model"], "cohort": tab["cohort"].map(COHORT_LABELS),
                        "groups": groups, "HL chi-square": tab["hl_statistic"].round(2),
                        "df": tab["hl_df"], "p": tab["hl_p_text"]})
    return out


# ---------------------------------------------------------------- HTML helpers
def _html_table(df: pd.DataFrame, css: str, row_key: str | None = None) -> str:
    """A plain HTML table whose cells carry ``data-field`` (and rows ``data-key``) so that a
    reader (and the browser test) can find each number."""
    head = "".join(f"<th>{_html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, r in df.iterrows():
        key = f' data-key="{_html.escape(str(r[row_key]))}"' if row_key else ""
        cells = []
        for c in df.columns:
            v = r[c]
            text = v if isinstance(v, str) else _num(v)
            cells.append(f'<td data-field="{_html.escape(str(c))}">{_html.escape(str(text))}</td>')
        body.append(f"<tr{key}>{''.join(cells)}</tr>")
    return (f'<table class="{css}" style="border-collapse:collapse"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _num(v: Any) -> str:
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if v is None or not np.isfinite(float(v)):
        return "—"  # e.g. the net benefit of the decision-curve window's row of ties
    return people_number(float(v))


TABLE_CSS = ("<style>.dlrc-w table td,.dlrc-w table th{padding:2px 8px;text-align:right;"
             "border-bottom:1px solid #ddd}.dlrc-w table td:first-child,.dlrc-w table th:first-child"
             "{text-align:left}.dlrc-w .dlrc-note{color:#444;max-width:760px}</style>")


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


# --------------------------------------------------------------------- widgets
def nomogram_calculator(nom: Nomogram, screening: pd.DataFrame | None = None,
                        force_static: bool | None = None) -> Any:
    """One control per fitted term (binary terms a toggle, scores a slider over their drawn
    range) -> each term's points, the total points and the risk. When c_LNM is not in the
    fitted model, a note says so and why (its screening p-value, from ``screening``).

    Headless: a table of :func:`example_patients` with their points and risk.
    """
    note = absent_term_note(nom, screening)
    if force_static or (force_static is None and headless()):
        tab = calculator_table(nom, example_patients(nom))
        for t in [t for t in nom.terms if t in SCORE_MODELS]:  # each score also as its model's risk
            tab.insert(tab.columns.get_loc(t) + 1, f"{SCORE_MODELS[t]} model's risk (%)",
                       np.round(100.0 * _sigmoid(tab[t]), 1))
        if note:
            from IPython.display import Markdown, display

            display(Markdown(f"*{note}*"))
        return tab
    import ipywidgets as w

    controls: dict[str, Any] = {}
    for t in nom.terms:
        label = nom.labels.get(t, t)
        if t in nom.binary:
            c = w.ToggleButtons(options=[(nom.binary[t][0], 0.0), (nom.binary[t][1], 1.0)], value=0.0,
                                description=f"{label}:", style=STYLE)
        elif t in SCORE_MODELS:  # a score is read as the probability its own model gives
            lo, hi = (100.0 * float(_sigmoid(v)) for v in nom.ranges[t])
            c = w.FloatSlider(value=round((lo + hi) / 2, 1), min=lo, max=hi, step=(hi - lo) / 200,
                              description=f"{SCORE_MODELS[t]} model's risk (%):", continuous_update=True,
                              readout_format=".1f", style=STYLE, layout=w.Layout(width="560px"))
        else:  # a clinical measurement on its own scale
            lo, hi = nom.ranges[t]
            c = w.FloatSlider(value=round((lo + hi) / 2, 3), min=lo, max=hi, step=(hi - lo) / 200,
                              description=f"{label}:", continuous_update=True, readout_format=".2f",
                              style=STYLE, layout=w.Layout(width="560px"))
        c.add_class(f"dlrc-term-{t}")
        controls[t] = c
    intro = ("<div class='dlrc-note'>Set a patient's values: the sliders and toggles are the model's "
             "<b>inputs</b> — each score as the risk of LNM its own model (radiomics, deep learning) gives "
             "the patient, a clinical term as its value — and the table gives the <b>points</b> each input "
             "earns on the nomogram (Fig. 3), their total and the predicted risk.</div>")
    if note:
        intro += f"<div class='dlrc-note dlrc-absent'><i>{_html.escape(note)}</i></div>"
    head = w.HTML(TABLE_CSS + intro)
    out = w.HTML()
    out.add_class("dlrc-calc-out")

    def value_of(t: str) -> float:
        v = float(controls[t].value)
        return _logit(v / 100.0) if t in SCORE_MODELS else v

    def update(*_: Any) -> None:
        patient = {t: value_of(t) for t in controls}
        tab = calculator_table(nom, [patient]).iloc[0]
        cells = []
        for t in nom.terms:
            v = patient[t]
            shown = (nom.binary[t][int(v)] if t in nom.binary else
                     f"{controls[t].value:.1f} % (score {v:.2f})" if t in SCORE_MODELS else f"{v:.2f}")
            cells.append(f"<tr><td>{_html.escape(nom.labels.get(t, t))}</td><td>{shown}</td>"
                         f"<td data-field='points_{t}'>{tab[f'points_{t}']:.1f}</td></tr>")
        out.value = (f"<table class='dlrc-calc'><thead><tr><th>Term</th><th>Input value</th><th>Points</th>"
                     f"</tr></thead><tbody>{''.join(cells)}"
                     f"<tr><th>Total points</th><td></td><th data-field='total_points'>"
                     f"{tab['total_points']:.1f}</th></tr>"
                     f"<tr><th>{_html.escape(nom.risk_label)}</th><td></td><th data-field='risk'>"
                     f"{100 * tab['risk']:.1f} %</th></tr></tbody></table>")

    for c in controls.values():
        c.observe(update, names="value")
    update()
    box = w.VBox([head, *controls.values(), out])
    box.add_class("dlrc-w")
    box.add_class("dlrc-calculator")
    return box


def cutoff_explorer(predictions: pd.DataFrame, cutoffs: Mapping[str, float],
                    best_model: str | None = None, force_static: bool | None = None) -> Any:
    """Pick a model and slide its probability threshold -> per-cohort confusion counts and
    SEN/SPE/PPV/NPV/ACC, and a small ROC panel with the current threshold on each cohort's
    curve. The slider starts exactly at the model's training Youden cut-off (its grid passes
    through it); "Training cut-off" returns there.

    Headless: :func:`cutoff_summary` (every model at its training cut-off).
    """
    if force_static or (force_static is None and headless()):
        return cutoff_summary(predictions, cutoffs, best_model)
    import ipywidgets as w

    labels = model_labels(best_model)
    model = w.Dropdown(options=[(labels[m], m) for m in PROB_COLUMNS if m in cutoffs], value="dlrc", description="Model:",
                       style=STYLE)
    reset = w.Button(description="Training cut-off", tooltip="back to the model's training Youden cut-off")
    lo, hi = snapped_range(float(cutoffs["dlrc"]))
    thr = w.FloatSlider(value=float(cutoffs["dlrc"]), min=lo, max=hi, step=THRESHOLD_STEP,
                        description="Threshold:", readout=False, continuous_update=False, style=STYLE,
                        layout=w.Layout(width="520px"))
    thr.add_class("dlrc-threshold")
    out = w.HTML()
    out.add_class("dlrc-cutoff-out")
    roc = w.HTML()
    roc.add_class("dlrc-roc-out")

    def to_cutoff(m: str) -> None:
        cut = float(cutoffs[m])
        lo, hi = snapped_range(cut)
        with thr.hold_trait_notifications():
            thr.min, thr.max = min(lo, thr.min), max(hi, thr.max)  # never clamp on the way
            thr.value = cut
            thr.min, thr.max = lo, hi
        update()

    def update(*_: Any) -> None:
        m, t = model.value, float(thr.value)
        tab = cutoff_table(predictions, m, t)
        shown = for_people(tab.drop(columns="threshold"))
        at_cut = abs(t - float(cutoffs[m])) < 1e-12
        out.value = (TABLE_CSS + f"<div class='dlrc-note'>Positive when the <b>{_html.escape(labels[m])}</b> "
                     f"probability ≥ <b class='dlrc-thr' data-value='{t!r}'>{t:.4f}</b> "
                     + ("(the training cut-off: Youden index in the training cohort)" if at_cut else
                        f"(training cut-off {float(cutoffs[m]):.4f})")
                     + "</div>" + _html_table(shown, "dlrc-cutoff", row_key="cohort"))
        roc.value = roc_svg(predictions, m, t)

    model.observe(lambda ch: to_cutoff(ch["new"]), names="value")
    reset.on_click(lambda _: to_cutoff(model.value))
    thr.observe(update, names="value")
    update()
    box = w.VBox([w.HBox([model, reset]), thr, w.HBox([out, roc])])
    box.add_class("dlrc-w")
    box.add_class("dlrc-cutoff-explorer")
    return box


def decision_curve_explorer(curves: pd.DataFrame, default_range: tuple[float, float] = (0.05, 0.6),
                            force_static: bool | None = None) -> Any:
    """Choose a threshold range and the strategies to compare -> the decision curves of the
    three cohorts over that range and :func:`decision_curve_window` (net benefit at both
    ends, share of the range in which each strategy alone is best, ties once).

    Headless: :func:`decision_curve_window` over ``default_range`` with every strategy.
    """
    grid = np.sort(curves["threshold"].unique())
    lo, hi = (float(grid[np.abs(grid - v).argmin()]) for v in default_range)
    strategies = list(dict.fromkeys(curves["model"]))
    if force_static or (force_static is None and headless()):
        return decision_curve_window(curves, lo, hi)
    import ipywidgets as w

    step = float(np.round(np.diff(grid).min(), 10)) if len(grid) > 1 else 0.01
    rng = w.FloatRangeSlider(value=(lo, hi), min=float(grid[0]), max=float(grid[-1]), step=step,
                             description="Threshold range:", readout_format=".2f", continuous_update=False,
                             style=STYLE, layout=w.Layout(width="560px"))
    rng.add_class("dlrc-dca-range")
    boxes = {m: w.Checkbox(value=True, description=m, indent=False, layout=w.Layout(width="auto"))
             for m in strategies}
    for i, b in enumerate(boxes.values()):
        b.add_class(f"dlrc-dca-model-{i}")
    img = w.Image(format="png")
    out = w.HTML()
    out.add_class("dlrc-dca-out")

    def update(*_: Any) -> None:
        import plotnine as p9

        a, b = (float(v) for v in rng.value)
        chosen = [m for m, c in boxes.items() if c.value]
        table = decision_curve_window(curves, a, b, chosen)
        out.value = (TABLE_CSS + f"<div class='dlrc-note'>Thresholds <b class='dlrc-dca-lo'>{a:.0%}</b> to "
                     f"<b class='dlrc-dca-hi'>{b:.0%}</b>: net benefit at both ends, and how much of the "
                     f"range each strategy shown alone has the highest net benefit (thresholds where several tie: one row).</div>"
                     + _html_table(table, "dlrc-dca"))
        if not chosen:  # nothing to draw
            img.value = b""
            return
        # whole curves (the y-axis scale follows the cohort's prevalence), zoomed to the range
        disp = DecisionCurveDisplay.from_curves(curves, models=chosen, references=[])
        gg = disp.plot(titles=[COHORT_LABELS.get(c, c) for c in disp.cohorts]) + p9.coord_cartesian(xlim=(a, b))
        fig = render(gg, 4.2 * len(disp.cohorts) + 1.4, 3.2)
        img.value = _png(fig)

    rng.observe(update, names="value")
    for c in boxes.values():
        c.observe(update, names="value")
    update()
    box = w.VBox([rng, w.HBox([w.HTML("Compare:"), *boxes.values()]), img, out])
    box.add_class("dlrc-w")
    box.add_class("dlrc-dca-explorer")
    return box


def calibration_explorer(predictions: pd.DataFrame, models: Mapping[str, str], groups: int = 10,
                         force_static: bool | None = None) -> Any:
    """Change the number of risk groups of the Hosmer-Lemeshow test -> its statistic and
    p-value per model and cohort: how much the test's verdict depends on that choice.

    Headless: :func:`calibration_summary` at ``groups``.
    """
    if force_static or (force_static is None and headless()):
        return calibration_summary(predictions, models, groups)
    import ipywidgets as w

    g = w.IntSlider(value=groups, min=3, max=15, step=1, description="Risk groups:", continuous_update=False,
                    style=STYLE)
    g.add_class("dlrc-hl-groups")
    out = w.HTML()
    out.add_class("dlrc-hl-out")

    def update(*_: Any) -> None:
        out.value = (TABLE_CSS + f"<div class='dlrc-note'>Hosmer-Lemeshow test with <b class='dlrc-hl-g'>"
                     f"{g.value}</b> risk groups (the paper: 10).</div>"
                     + _html_table(calibration_summary(predictions, models, g.value), "dlrc-hl"))

    g.observe(update, names="value")
    update()
    box = w.VBox([g, out])
    box.add_class("dlrc-w")
    box.add_class("dlrc-calibration-explorer")
    return box
