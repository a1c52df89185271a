"""Decision curve analysis (Fig. 6): is acting on the model better than treating everyone
or no one?

At a threshold probability pt a clinician treats (here: node dissection / chemoradiation
planning as if node-positive) every patient whose predicted risk is at least pt. The net
benefit TP/n - FP/n * pt/(1 - pt) counts true positives and charges each false positive
the odds pt/(1 - pt), the exchange rate implied by choosing pt. Treat-all and treat-none
(net benefit 0) are the reference strategies. As in R ``dcurves::dca`` the thresholds run
from 0 to 0.99 in steps of 0.01 and the plot's y-axis spans -10 % to 100 % of the cohort's
prevalence (``plot.dca``'s ``coord_cartesian(ylim = c(-0.1, 1) * prevalence)``).

Beyond the paper: percentile-bootstrap 95 % bands for the DLRC curve (patients resampled
within the cohort) and the net reduction in interventions per 100 patients,
(NB_model - NB_all) / (pt / (1 - pt)) * 100 (dcurves ``net_intervention_avoided``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd

from dlrc_lib import stats
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.evaluation.calibration import (
    MODEL_COLOURS,
    _cohorts,
    check_probabilities,
    draw_cohort_panels,
)

TREAT_ALL = "Treat all"
TREAT_NONE = "Treat none"


def threshold_grid(params) -> np.ndarray:
    """0, step, ..., threshold_max (``DecisionCurveParams``), rounded to avoid float drift."""
    step = float(params.threshold_step)
    k = int(np.floor(params.threshold_max / step + 1e-9))
    return np.round(np.arange(k + 1) * step, 10)


def net_benefit_arrays(y, prob, thresholds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(model, treat-all, treat-none) net benefit per threshold from
    :func:`dlrc_lib.stats.net_benefit` (a case is positive when prob >= pt)."""
    res = stats.net_benefit(np.asarray(y, dtype=int), np.asarray(prob, dtype=float), np.asarray(thresholds))
    return (res["net_benefit"].to_numpy(float), res["treat_all"].to_numpy(float),
            res["treat_none"].to_numpy(float))


def interventions_avoided(nb_model: np.ndarray, nb_all: np.ndarray, thresholds: np.ndarray,
                          per: int = 100) -> np.ndarray:
    """Net reduction in interventions per ``per`` patients; undefined (NaN) at pt = 0."""
    t = np.asarray(thresholds, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = t / (1 - t)
        out = (np.asarray(nb_model) - np.asarray(nb_all)) / odds * per
    return np.where(t > 0, out, np.nan)


def decision_curves(predictions: pd.DataFrame, models: dict[str, str], thresholds, *,
                    per: int = 100) -> pd.DataFrame:
    """Long frame: cohort, model, threshold, net_benefit, interventions_avoided; one block
    per cohort with the models, ``Treat all`` and ``Treat none``."""
    check_probabilities(predictions, models.values())
    t = np.asarray(thresholds, dtype=float)
    frames = []
    for coh in _cohorts(predictions):
        part = predictions[predictions["cohort"] == coh]
        y = part["lnm"].to_numpy(dtype=int)
        nb_all = nb_none = None
        for label, col in models.items():
            nb, nb_all, nb_none = net_benefit_arrays(y, part[col], t)
            frames.append(pd.DataFrame({"cohort": coh, "model": label, "threshold": t, "net_benefit": nb,
                                        "interventions_avoided": interventions_avoided(nb, nb_all, t, per)}))
        frames.append(pd.DataFrame({"cohort": coh, "model": TREAT_ALL, "threshold": t, "net_benefit": nb_all,
                                    "interventions_avoided": np.where(t > 0, 0.0, np.nan)}))
        frames.append(pd.DataFrame({"cohort": coh, "model": TREAT_NONE, "threshold": t,
                                    "net_benefit": nb_none, "interventions_avoided": np.nan}))
    return pd.concat(frames, ignore_index=True)


def bootstrap_bands(predictions: pd.DataFrame, column: str, thresholds, *, B: int = 200, seed: int = 0,
                    level: float = 0.95, per: int = 100, progress: bool = True) -> pd.DataFrame:
    """Percentile-bootstrap bands of one model's net benefit and interventions avoided,
    resampling patients within each cohort (``B`` samples, seeded).

    Columns: cohort, threshold, nb_lower, nb_upper, ia_lower, ia_upper.
    """
    from dlrc_lib.core.progress import progress_bar as tqdm

    check_probabilities(predictions, [column])
    t = np.asarray(thresholds, dtype=float)
    a = (1 - level) / 2
    rng = np.random.default_rng(seed)
    frames = []
    for coh in _cohorts(predictions):
        part = predictions[predictions["cohort"] == coh]
        y = part["lnm"].to_numpy(dtype=int)
        p = part[column].to_numpy(dtype=float)
        n = len(y)
        nb = np.full((B, t.size), np.nan)
        ia = np.full((B, t.size), np.nan)
        for b in tqdm(range(B), desc=f"net-benefit bootstrap ({coh})", disable=not progress):
            idx = rng.integers(0, n, n)
            m, al, _ = net_benefit_arrays(y[idx], p[idx], t)
            nb[b] = m
            ia[b] = interventions_avoided(m, al, t, per)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column at pt = 0
            q = lambda arr, qq: np.nanquantile(arr, qq, axis=0) if B else np.full(t.size, np.nan)  # noqa: E731
            frames.append(pd.DataFrame({
                "cohort": coh, "threshold": t, "nb_lower": q(nb, a), "nb_upper": q(nb, 1 - a),
                "ia_lower": np.where(t > 0, q(ia, a), np.nan), "ia_upper": np.where(t > 0, q(ia, 1 - a), np.nan)}))
    return pd.concat(frames, ignore_index=True)


def true_runs(mask: pd.Series) -> list[tuple]:
    """The intervals ``(first, last)`` of consecutive index values (thresholds) where ``mask``
    is true, in index order: a mask true at 0.05-0.40 and at 0.52 gives
    ``[(0.05, 0.40), (0.52, 0.52)]``."""
    runs, start, prev = [], None, None
    for t, ok in mask.items():
        if ok and start is None:
            start = t
        if not ok and start is not None:
            runs.append((start, prev))
            start = None
        prev = t
    if start is not None:
        runs.append((start, prev))
    return runs


def best_ranges(curves: pd.DataFrame, model: str = "DLRC") -> pd.DataFrame:
    """Per cohort, the threshold intervals where ``model`` has the highest net benefit of
    all curves (ties with treat-none at 0 excluded) — the paper's "wide range"."""
    rows = []
    for coh, part in curves.groupby("cohort", sort=False):
        wide = part.pivot(index="threshold", columns="model", values="net_benefit")
        if model not in wide.columns:
            raise DlrcError(f"decision curves: no model {model!r}")
        others = wide.drop(columns=[model]).max(axis=1)
        best = (wide[model] > others + 1e-12) & (wide[model] > 0)
        runs = true_runs(best)
        rows.append({"cohort": coh, "model": model,
                     "ranges": "; ".join(f"{lo:.2f}-{hi:.2f}" for lo, hi in runs) or "none",
                     "n_thresholds_best": int(best.sum())})
    return pd.DataFrame(rows)


def net_benefit_at(curves: pd.DataFrame, at=(0.1, 0.2, 0.3, 0.4, 0.5)) -> pd.DataFrame:
    """Net benefit of every strategy at a few thresholds (wide: cohort, model, pt columns)."""
    sel = curves[np.isclose(curves["threshold"].to_numpy()[:, None], np.asarray(at)[None, :]).any(axis=1)]
    wide = sel.pivot_table(index=["cohort", "model"], columns="threshold", values="net_benefit", sort=False)
    wide.columns = [f"pt={c:.2f}" for c in wide.columns]
    return wide.reset_index()


@dataclass
class DecisionCurveDisplay:
    """Decision curves, one panel per cohort (Fig. 6, or its interventions-avoided companion).

    Build with :meth:`from_curves` from :func:`decision_curves` (and optionally
    :func:`bootstrap_bands`), draw with :meth:`plot`. ``kind``: ``"net_benefit"`` (Fig. 6,
    with treat-all and treat-none; y from -10 % to 100 % of the prevalence as ``plot.dca``) or
    ``"interventions_avoided"`` (y from 0 to ``per``).
    """

    curves: pd.DataFrame
    bands: pd.DataFrame | None = None
    kind: str = "net_benefit"
    per: int = 100
    band_model: str = "DLRC"
    cohorts: list[str] = field(default_factory=list)

    @classmethod
    def from_curves(cls, curves: pd.DataFrame, *, bands: pd.DataFrame | None = None, kind: str = "net_benefit",
                    per: int = 100, band_model: str = "DLRC",
                    models: Iterable[str] | None = None) -> "DecisionCurveDisplay":
        """``models``: the strategies to show (default all; treat-all/none always kept)."""
        if kind not in ("net_benefit", "interventions_avoided"):
            raise DlrcError(f"decision curves: kind must be net_benefit or interventions_avoided, not {kind!r}")
        if models is not None:
            keep = set(models) | {TREAT_ALL, TREAT_NONE}
            curves = curves[curves["model"].isin(keep)]
        if curves.empty:
            raise DlrcError("decision curves: no rows to draw")
        return cls(curves, bands, kind, per, band_model, _cohorts(curves))

    def plot(self, axes=None, titles: Iterable[str] | None = None):
        """Draw one panel per cohort (``axes``: one matplotlib axis per cohort, else a new
        figure). Returns the figure."""
        return draw_cohort_panels(self._panel, self.cohorts, axes, titles, height=4.4)

    def _panel(self, ax, cohort: str, title: str) -> None:
        import matplotlib.pyplot as plt

        kind = self.kind
        part = self.curves[self.curves["cohort"] == cohort]
        models = [m for m in dict.fromkeys(part["model"]) if m not in (TREAT_ALL, TREAT_NONE)]
        if self.bands is not None:
            bp = self.bands[self.bands["cohort"] == cohort]
            lo, hi = ("nb_lower", "nb_upper") if kind == "net_benefit" else ("ia_lower", "ia_upper")
            colour = (MODEL_COLOURS[models.index(self.band_model) % len(MODEL_COLOURS)]
                      if self.band_model in models else "grey")
            ax.fill_between(bp["threshold"], bp[lo], bp[hi], color=colour, alpha=0.18, lw=0,
                            label=f"{self.band_model} bootstrap 95% band")
        for i, m in enumerate(models):
            d = part[part["model"] == m]
            ax.plot(d["threshold"], d[kind], color=MODEL_COLOURS[i % len(MODEL_COLOURS)], lw=1.6, label=m)
        if kind == "net_benefit":
            for m, style in ((TREAT_ALL, dict(color="black", lw=1)), (TREAT_NONE, dict(color="black", lw=1, ls="--"))):
                d = part[part["model"] == m]
                if len(d):
                    ax.plot(d["threshold"], d["net_benefit"], label="All" if m == TREAT_ALL else "None", **style)
            prevalence = _prevalence(self.curves, cohort)
            top = prevalence if prevalence > 0 else 0.05
            ax.set_ylim(-0.1 * top, top)
            ax.set_ylabel("Net benefit")
        else:
            ax.set_ylim(0, self.per)
            ax.set_ylabel(f"Net reduction in interventions\nper {self.per} patients")
        ax.set_xlim(0, 1)
        ax.set_xlabel("Threshold probability")
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
        ax.set_title(title, loc="left")
        ax.legend(loc="upper right", fontsize=7, frameon=False)


def _prevalence(curves: pd.DataFrame, cohort: str) -> float:
    """The cohort's prevalence: treat-all's net benefit at threshold 0."""
    d = curves[(curves["cohort"] == cohort) & (curves["model"] == TREAT_ALL)].sort_values("threshold")
    return float(d["net_benefit"].iloc[0]) if len(d) else 0.0
