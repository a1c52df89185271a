"""Interactive views of the DLRC model: a nomogram calculator and a cut-off explorer.

In JupyterLab they are ipywidgets; where no widget frontend can show them (a headless
papermill run, which the runner marks with ``DLRC_HEADLESS=1``, or ipywidgets missing)
the same functions return static tables instead, so a report is never broken by a widget.
The numbers behind both views come from :func:`calculator_table` and
:func:`cutoff_table`, which the widgets only re-evaluate on every change.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from dlrc_lib.evaluation.performance import metrics_at_cutoff
from dlrc_lib.model.dlrc import PROB_COLUMNS
from dlrc_lib.model.nomogram import Nomogram
from dlrc_lib.study.schema import COHORT_LABELS, COHORTS

MODEL_LABELS = {"radiomics": "Radiomics", "dl": "Deep learning", "dlrc": "DLRC"}


def headless() -> bool:
    """True when widgets cannot be displayed: ``DLRC_HEADLESS=1`` (set by the runner for
    papermill), no IPython kernel, or ipywidgets not installed."""
    from dlrc_lib.core.progress import headless as runner_headless

    if runner_headless():
        return True
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return True
    ip = get_ipython()
    return ip is None or not hasattr(ip, "kernel")


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


def cutoff_table(predictions: pd.DataFrame, model: str, threshold: float) -> pd.DataFrame:
    """Confusion counts and SEN/SPE/PPV/NPV (percent) per cohort when ``model``'s
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


def cutoff_summary(predictions: pd.DataFrame, cutoffs: Mapping[str, float]) -> pd.DataFrame:
    """The static cut-off explorer: every model at its training Youden cut-off."""
    parts = []
    for model in PROB_COLUMNS:
        t = cutoff_table(predictions, model, cutoffs[model])
        t.insert(0, "model", MODEL_LABELS[model])
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------- widgets
def nomogram_calculator(nom: Nomogram, force_static: bool | None = None) -> Any:
    """c_LNM as a toggle, each score as a slider over its drawn range -> points and risk.

    Headless: a table of :func:`example_patients` with their points and risk.
    """
    if force_static or (force_static is None and headless()):
        return calculator_table(nom, example_patients(nom))
    import ipywidgets as w

    controls: dict[str, Any] = {}
    for t in nom.terms:
        label = nom.labels.get(t, t)
        if t in nom.binary:
            controls[t] = w.ToggleButtons(options=[(nom.binary[t][0], 0.0), (nom.binary[t][1], 1.0)],
                                          value=0.0, description=label)
        else:
            lo, hi = nom.ranges[t]
            controls[t] = w.FloatSlider(value=round((lo + hi) / 2, 3), min=lo, max=hi,
                                        step=(hi - lo) / 200, description=label,
                                        continuous_update=True, readout_format=".2f")
    out = w.HTML()

    def update(*_: Any) -> None:
        patient = {t: float(c.value) for t, c in controls.items()}
        tab = calculator_table(nom, [patient]).iloc[0]
        cells = "".join(f"<tr><td>{nom.labels.get(t, t)}</td><td>{tab[f'points_{t}']:.1f}</td></tr>"
                        for t in nom.terms)
        out.value = (f"<table>{cells}<tr><th>Total points</th><th>{tab['total_points']:.1f}</th></tr>"
                     f"<tr><th>{nom.risk_label}</th><th>{100 * tab['risk']:.1f} %</th></tr></table>")

    for c in controls.values():
        c.observe(update, names="value")
    update()
    return w.VBox([*controls.values(), out])


def cutoff_explorer(predictions: pd.DataFrame, cutoffs: Mapping[str, float],
                    force_static: bool | None = None) -> Any:
    """Slide a probability threshold and pick a model -> per-cohort confusion counts and
    SEN/SPE/PPV/NPV; starts at the model's training Youden cut-off.

    Headless: :func:`cutoff_summary` (every model at its training cut-off).
    """
    if force_static or (force_static is None and headless()):
        return cutoff_summary(predictions, cutoffs)
    import ipywidgets as w

    model = w.Dropdown(options=[(MODEL_LABELS[m], m) for m in PROB_COLUMNS], value="dlrc",
                       description="Model")
    thr = w.FloatSlider(value=round(float(cutoffs["dlrc"]), 3), min=0.0, max=1.0, step=0.005,
                        description="Threshold", readout_format=".3f")
    out = w.HTML()

    def on_model(change: Any) -> None:
        thr.value = round(float(cutoffs[change["new"]]), 3)

    def update(*_: Any) -> None:
        out.value = cutoff_table(predictions, model.value, thr.value).to_html(index=False)

    model.observe(on_model, names="value")
    model.observe(update, names="value")
    thr.observe(update, names="value")
    update()
    return w.VBox([model, thr, out])
