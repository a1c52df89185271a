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
from dlrc_lib.core import theme as T
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.figures import GgplotDisplay
from dlrc_lib.core.progress import progress_bar as tqdm
from dlrc_lib.evaluation.calibration import _cohorts, check_probabilities, panel_titles, with_panels

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


def _inside(y0: float, y1: float, lo: float, hi: float) -> tuple[float, float] | None:
    """The part ``(t0, t1)`` of the segment from y0 to y1 (t from 0 to 1) inside [lo, hi]."""
    if y0 == y1:
        return (0.0, 1.0) if lo <= y0 <= hi else None
    ta, tb = (lo - y0) / (y1 - y0), (hi - y0) / (y1 - y0)
    t0, t1 = max(0.0, min(ta, tb)), min(1.0, max(ta, tb))
    return (t0, t1) if t0 <= t1 else None


def clip_lines(frame: pd.DataFrame, x: str, y: str, by: list[str],
               limits: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """The polylines of ``frame`` (one per ``by`` group, in ``x`` order) cut to their
    cohort's y-range ``limits[cohort] = (lo, hi)`` as an axis clips them: a line leaving the
    range ends on its edge and starts again where it comes back; each piece is numbered in
    ``piece``. Drawing these, rather than limiting each panel, gives every cohort its own
    y-range and leaves no row for plotnine to drop."""
    frames, k = [], 0
    for key, part in frame.groupby(by, sort=False, observed=True):
        part = part.sort_values(x)
        lo, hi = limits[part["cohort"].iloc[0]]
        xs, ys = part[x].to_numpy(float), part[y].to_numpy(float)
        pieces, cur = [], []
        for i in range(1, len(xs)):
            seg = _inside(ys[i - 1], ys[i], lo, hi) if np.isfinite(ys[i - 1]) and np.isfinite(ys[i]) else None
            if seg is None:
                if cur:
                    pieces.append(cur)
                cur = []
                continue
            dx, dy = xs[i] - xs[i - 1], ys[i] - ys[i - 1]
            if not cur or seg[0] > 0:
                if cur:
                    pieces.append(cur)
                cur = [(xs[i - 1] + seg[0] * dx, ys[i - 1] + seg[0] * dy)]
            cur.append((xs[i - 1] + seg[1] * dx, ys[i - 1] + seg[1] * dy))
            if seg[1] < 1:
                pieces.append(cur)
                cur = []
        if cur:
            pieces.append(cur)
        keys = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        for pts in pieces:
            frames.append(pd.DataFrame(pts, columns=[x, y]).assign(piece=k, **keys))
            k += 1
    if not frames:
        return pd.DataFrame(columns=[*by, x, y, "piece"])
    return pd.concat(frames, ignore_index=True)


@dataclass
class DecisionCurveDisplay(GgplotDisplay):
    """Decision curves, one panel per cohort (Fig. 6, or its interventions-avoided companion).

    Build with :meth:`from_curves` from :func:`decision_curves` (and optionally
    :func:`bootstrap_bands`); :meth:`plot` returns the plotnine ``ggplot``, :meth:`save`
    writes it. ``kind``: ``"net_benefit"`` (Fig. 6, with treat-all and treat-none; y from
    -10 % to 100 % of each cohort's prevalence as ``plot.dca``) or ``"interventions_avoided"``
    (y from 0 to ``per``). ``prevalence``: cohort -> prevalence (treat-all at threshold 0).
    """

    curves: pd.DataFrame
    bands: pd.DataFrame | None = None
    kind: str = "net_benefit"
    per: int = 100
    band_model: str = "DLRC"
    cohorts: list[str] = field(default_factory=list)
    prevalence: dict[str, float] = field(default_factory=dict)
    colours: dict[str, str] | None = None

    @classmethod
    def from_curves(cls, curves: pd.DataFrame, *, bands: pd.DataFrame | None = None, kind: str = "net_benefit",
                    per: int = 100, band_model: str = "DLRC", models: Iterable[str] | None = None,
                    references: Iterable[str] = (TREAT_ALL, TREAT_NONE),
                    colours: dict[str, str] | None = None) -> "DecisionCurveDisplay":
        """``models``: the strategies to show (default all); ``references``: the reference
        strategies kept beside them (default treat-all and treat-none)."""
        if kind not in ("net_benefit", "interventions_avoided"):
            raise DlrcError(f"decision curves: kind must be net_benefit or interventions_avoided, not {kind!r}")
        prevalence = {c: _prevalence(curves, c) for c in dict.fromkeys(curves["cohort"])}
        if models is not None:
            keep = set(models) | set(references)
            curves = curves[curves["model"].isin(keep)]
        else:
            drop = {TREAT_ALL, TREAT_NONE} - set(references)
            curves = curves[~curves["model"].isin(drop)]
        if curves.empty:
            raise DlrcError("decision curves: no rows to draw")
        return cls(curves, bands, kind, per, band_model, _cohorts(curves), prevalence, colours)

    def limits(self) -> dict[str, tuple[float, float]]:
        """cohort -> the panel's y-range."""
        if self.kind == "interventions_avoided":
            return {c: (0.0, float(self.per)) for c in self.cohorts}
        out = {}
        for c in self.cohorts:
            top = self.prevalence.get(c, 0.0)
            top = top if top > 0 else 0.05
            out[c] = (-0.1 * top, top)
        return out

    def plot(self, titles: Iterable[str] | None = None):
        """The ggplot: one panel per cohort with the models' curves, treat-all and treat-none
        (net benefit), ``band_model``'s bootstrap band when given; each panel's y-range its
        own (net benefit: -10 % to 100 % of the cohort's prevalence)."""
        import plotnine as p9

        kind = self.kind
        names = panel_titles(self.cohorts, titles)
        limits = self.limits()
        strategies = list(dict.fromkeys(self.curves["model"]))
        models = [m for m in strategies if m not in (TREAT_ALL, TREAT_NONE)]
        refs = [m for m in (TREAT_ALL, TREAT_NONE) if m in strategies] if kind == "net_benefit" else []
        keys = models + refs
        colours = {**T.colours_for(models, self.colours), TREAT_ALL: "black", TREAT_NONE: "black"}
        lines = self.curves[self.curves["model"].isin(keys)]
        lines = with_panels(clip_lines(lines, "threshold", kind, ["cohort", "model"], limits), names)
        lines["model"] = pd.Categorical(lines["model"], keys)
        frame = with_panels(pd.DataFrame({"cohort": [c for c in names for _ in (0, 1)],
                                          "y": [v for c in names for v in limits[c]], "threshold": 0.0}), names)
        gg = p9.ggplot(lines, p9.aes("threshold", kind)) + p9.geom_blank(p9.aes("threshold", "y"), data=frame)
        if self.bands is not None:
            lo, hi = ("nb_lower", "nb_upper") if kind == "net_benefit" else ("ia_lower", "ia_upper")
            band = self.bands[self.bands["cohort"].isin(list(names))].dropna(subset=[lo, hi]).copy()
            for c, (a, b) in limits.items():
                sel = band["cohort"] == c
                band.loc[sel, lo] = band.loc[sel, lo].clip(a, b)
                band.loc[sel, hi] = band.loc[sel, hi].clip(a, b)
            band = with_panels(band, names).assign(what=f"{self.band_model} bootstrap 95% band")
            fill = colours.get(self.band_model, "grey")
            gg = (gg + p9.geom_ribbon(p9.aes("threshold", ymin=lo, ymax=hi, fill="what"), data=band,
                                      inherit_aes=False, alpha=0.18, size=0)
                  + p9.scale_fill_manual(values={f"{self.band_model} bootstrap 95% band": fill}, name=""))
        gg = (gg + p9.geom_path(p9.aes(colour="model", linetype="model", size="model", group="piece"))
              + p9.scale_colour_manual(values={k: colours[k] for k in keys}, limits=keys, name="Strategy")
              + p9.scale_linetype_manual(values={k: "dashed" if k == TREAT_NONE else "solid" for k in keys},
                                         limits=keys, name="Strategy")
              + p9.scale_size_manual(values={k: T.pt(1.0) if k in refs else T.pt(1.6) for k in keys},
                                     limits=keys, name="Strategy")
              + p9.facet_wrap("panel", nrow=1, scales="free_y")
              + p9.scale_x_continuous(limits=(0, 1), expand=(0, 0), labels=lambda v: [f"{x:.0%}" for x in v])
              + p9.scale_y_continuous(expand=(0, 0))
              + T.theme_dlrc(figure_size=(5.2 * len(names) + 1.6, 4.4))
              + p9.theme(panel_spacing_x=0.04, legend_key_width=22))
        ylab = "Net benefit" if kind == "net_benefit" else f"Net reduction in interventions\nper {self.per} patients"
        return gg + p9.labs(x="Threshold probability", y=ylab, fill="")


def _prevalence(curves: pd.DataFrame, cohort: str) -> float:
    """The cohort's prevalence: treat-all's net benefit at threshold 0."""
    d = curves[(curves["cohort"] == cohort) & (curves["model"] == TREAT_ALL)].sort_values("threshold")
    return float(d["net_benefit"].iloc[0]) if len(d) else 0.0
