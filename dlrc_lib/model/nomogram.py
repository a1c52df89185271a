"""Fig. 3: the DLRC nomogram, laid out as R ``rms::nomogram`` draws a logistic model.

How a nomogram turns a logistic model into arithmetic on paper: each term's contribution
``beta * x`` is rescaled so that the term with the widest effect over its range spans
0-100 "points"; the other terms get proportionally shorter axes. A reader locates the
patient's value on each term's axis, reads the points above it on the top axis, adds
them up, and finds the total on the "Total Points" axis; directly below it are the linear
predictor and the predicted risk. In formulas (rms' scaling)::

    points_j(x) = 100 * (beta_j * x - min_j) / R,   R = max_j (max_j - min_j)
    lp(total)   = intercept + sum_j min_j + total * R / 100
    risk        = 1 / (1 + exp(-lp))

where ``min_j`` / ``max_j`` are the smallest / largest ``beta_j * x`` over the term's
observed range (a binary term's two values). :class:`Nomogram` holds that scale,
computes points and risks exactly (:meth:`Nomogram.points_for`,
:meth:`Nomogram.risk_from_total`), lists the axes as drawn (:meth:`Nomogram.axes`), reads
a patient off those drawn ticks as a person would (:meth:`Nomogram.read_off`) and draws the
figure with matplotlib (:meth:`Nomogram.draw`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

RISK_TICKS = (0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)


def pretty(lo: float, hi: float, n: int = 7) -> np.ndarray:
    """About ``n`` round tick values inside [lo, hi] (R ``pretty``-like: steps 1, 2, 2.5, 5)."""
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.array([lo])
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** np.floor(np.log10(raw))
    step = min((s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= 0.75 * raw), default=10 * mag)
    start = np.ceil(lo / step - 1e-9) * step
    ticks = np.arange(start, hi + step * 1e-9, step)
    ticks = ticks[(ticks >= lo - 1e-9) & (ticks <= hi + 1e-9)]
    return np.round(ticks, 10) + 0.0  # no "-0"


@dataclass
class Axis:
    """One drawn row: ``ticks`` are (value, x position on the 0-100 drawing scale, text)."""

    name: str
    label: str
    kind: str  # points | term | total | lp | risk
    ticks: list[tuple[float, float, str]]
    extent: tuple[float, float]  # x of the axis line's two ends


@dataclass
class Nomogram:
    """The scale of a fitted logistic model's nomogram.

    ``coef``: ``(Intercept)`` and one coefficient per term; ``ranges``: per continuous term
    its (lowest, highest) value drawn; ``binary``: per two-valued term the labels of its
    values 0 and 1 (e.g. ``{"c_LNM": ("No", "Yes")}``); ``labels``: axis titles.
    """

    coef: dict[str, float]
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    binary: dict[str, tuple[str, str]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    risk_label: str = "Risk of LNM"

    def __post_init__(self) -> None:
        self.coef = {k: float(v) for k, v in self.coef.items()}
        self.terms = [t for t in self.coef if t != "(Intercept)"]
        missing = [t for t in self.terms if t not in self.ranges and t not in self.binary]
        if missing:
            raise ValueError(f"nomogram: no range for term(s) {', '.join(missing)}")
        self.ranges = {k: (float(v[0]), float(v[1])) for k, v in self.ranges.items()}
        self.binary = {k: (str(v[0]), str(v[1])) for k, v in self.binary.items()}
        lo, hi = {}, {}
        for t in self.terms:
            a, b = (0.0, 1.0) if t in self.binary else self.ranges[t]
            e = sorted((self.coef[t] * a, self.coef[t] * b))
            lo[t], hi[t] = e
        self.effect_min_ = lo
        self.effect_max_ = hi
        self.scale_ = max((hi[t] - lo[t]) for t in self.terms) if self.terms else 1.0
        if self.scale_ <= 0:
            raise ValueError("nomogram: every term has zero effect over its range")
        self.max_points_ = {t: 100.0 * (hi[t] - lo[t]) / self.scale_ for t in self.terms}
        self.total_max_ = float(sum(self.max_points_.values()))
        self.lp_offset_ = self.coef.get("(Intercept)", 0.0) + sum(lo.values())

    # ------------------------------------------------------------ construction
    @classmethod
    def from_model(cls, coef: Mapping[str, float], training: Any,
                   binary: Mapping[str, tuple[str, str]] | None = None,
                   labels: Mapping[str, str] | None = None) -> "Nomogram":
        """Scale from fitted coefficients, term ranges observed in ``training`` (a DataFrame
        with one column per term). Terms with only the values 0/1 are drawn as two-point
        axes (labels "No"/"Yes" unless given)."""
        coef = {str(k): float(v) for k, v in dict(coef).items()}
        binary = dict(binary or {})
        ranges = {}
        for t in coef:
            if t == "(Intercept)" or t in binary:
                continue
            v = np.asarray(training[t], float)
            if set(np.unique(v)) <= {0.0, 1.0}:
                binary[t] = ("No", "Yes")
            else:
                ranges[t] = (float(np.nanmin(v)), float(np.nanmax(v)))
        return cls(coef=dict(coef), ranges=ranges, binary=binary, labels=dict(labels or {}))

    def to_dict(self) -> dict:
        return {"coef": self.coef, "ranges": {k: list(v) for k, v in self.ranges.items()},
                "binary": {k: list(v) for k, v in self.binary.items()}, "labels": self.labels,
                "risk_label": self.risk_label, "points_per_unit_lp": 100.0 / self.scale_,
                "lp_at_zero_points": self.lp_offset_, "total_points_max": self.total_max_}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Nomogram":
        return cls(coef=dict(d["coef"]), ranges={k: tuple(v) for k, v in d["ranges"].items()},
                   binary={k: tuple(v) for k, v in d.get("binary", {}).items()},
                   labels=dict(d.get("labels", {})), risk_label=d.get("risk_label", "Risk of LNM"))

    # ------------------------------------------------------------- arithmetic
    def term_points(self, term: str, value: float) -> float:
        return 100.0 * (self.coef[term] * float(value) - self.effect_min_[term]) / self.scale_

    def points_for(self, patient: Mapping[str, Any]) -> dict[str, float]:
        """Points of each term for one patient (a mapping term -> value) and their total."""
        pts = {t: self.term_points(t, patient[t]) for t in self.terms}
        pts["total"] = float(sum(pts.values()))
        return pts

    def lp_from_total(self, total: Any) -> Any:
        return self.lp_offset_ + np.asarray(total, float) * self.scale_ / 100.0

    def risk_from_total(self, total: Any) -> Any:
        """Predicted risk for a number of total points (exact, not read off the drawing)."""
        r = 1.0 / (1.0 + np.exp(-self.lp_from_total(total)))
        return float(r) if np.ndim(r) == 0 else r

    def total_from_lp(self, lp: Any) -> Any:
        return (np.asarray(lp, float) - self.lp_offset_) * 100.0 / self.scale_

    def total_from_risk(self, risk: Any) -> Any:
        r = np.asarray(risk, float)
        return self.total_from_lp(np.log(r / (1 - r)))

    # ------------------------------------------------------------------- axes
    def _x_total(self, total: Any) -> Any:
        """Drawing x (0-100) of a total on the Total Points axis."""
        return np.asarray(total, float) * 100.0 / self.total_axis_max

    @property
    def total_axis_max(self) -> float:
        """The Total Points axis runs from 0 to a round number at or above the maximum."""
        ticks = pretty(0, self.total_max_ * 1.0000001, 8)
        step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
        top = float(ticks[-1])
        return top if top >= self.total_max_ - 1e-9 else top + step

    def axes(self) -> list[Axis]:
        """The rows of the drawing, top to bottom, with every tick's value and position."""
        rows = [Axis("points", "Points", "points",
                     [(v, v, f"{v:g}") for v in np.arange(0, 101, 10.0)], (0.0, 100.0))]
        for t in self.terms:
            label = self.labels.get(t, t)
            if t in self.binary:
                ticks = [(v, self.term_points(t, v), self.binary[t][int(v)]) for v in (0.0, 1.0)]
                ext = (0.0, self.max_points_[t])
            else:
                lo, hi = self.ranges[t]
                ticks = [(float(v), self.term_points(t, v), f"{v:g}") for v in pretty(lo, hi, 10)]
                ext = tuple(sorted((self.term_points(t, lo), self.term_points(t, hi))))
            rows.append(Axis(t, label, "term", ticks, ext))  # type: ignore[arg-type]
        tmax = self.total_axis_max
        rows.append(Axis("total", "Total Points", "total",
                         [(float(v), float(self._x_total(v)), f"{v:g}") for v in pretty(0, tmax, 9)],
                         (0.0, 100.0)))
        lp_lo, lp_hi = float(self.lp_from_total(0.0)), float(self.lp_from_total(tmax))
        rows.append(Axis("lp", "Linear Predictor", "lp",
                         [(float(v), float(self._x_total(self.total_from_lp(v))), f"{v:g}")
                          for v in pretty(lp_lo, lp_hi, 8)], (0.0, 100.0)))
        risk_ticks = []
        for r in RISK_TICKS:
            tot = float(self.total_from_risk(r))
            if 0.0 <= tot <= tmax:
                risk_ticks.append((r, float(self._x_total(tot)), f"{r:g}"))
        ext = (risk_ticks[0][1], risk_ticks[-1][1]) if risk_ticks else (0.0, 0.0)
        rows.append(Axis("risk", self.risk_label, "risk", risk_ticks, ext))
        return rows

    # --------------------------------------------------------------- read off
    @staticmethod
    def _interp(x: float, xs: Sequence[float], ys: Sequence[float], clamp: bool = False) -> float:
        """Linear interpolation between drawn ticks; beyond the end ticks, extend the
        nearest interval (a straight axis) or clamp (a curved scale such as risk)."""
        order = np.argsort(xs)
        xs, ys = np.asarray(xs, float)[order], np.asarray(ys, float)[order]
        if len(xs) == 1:
            return float(ys[0])
        if clamp or xs[0] <= x <= xs[-1]:
            return float(np.interp(x, xs, ys))
        i = 0 if x < xs[0] else len(xs) - 2
        return float(ys[i] + (x - xs[i]) * (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]))

    def read_off(self, patient: Mapping[str, Any]) -> dict[str, float]:
        """Read a patient off the drawn axes as a person would: each value's position
        between its axis' ticks gives its points (on the Points axis above), the points are
        summed, located on the Total Points axis, and the risk is interpolated linearly
        between the two risk ticks around that position."""
        rows = {a.name: a for a in self.axes()}
        pts = {}
        for t in self.terms:
            ax = rows[t]
            x = self._interp(float(patient[t]), [v for v, _, _ in ax.ticks], [x for _, x, _ in ax.ticks])
            p_ax = rows["points"]
            pts[t] = self._interp(x, [x for _, x, _ in p_ax.ticks], [v for v, _, _ in p_ax.ticks])
        total = float(sum(pts.values()))
        t_ax = rows["total"]
        x_total = self._interp(total, [v for v, _, _ in t_ax.ticks], [x for _, x, _ in t_ax.ticks])
        r_ax = rows["risk"]
        risk = self._interp(x_total, [x for _, x, _ in r_ax.ticks], [v for v, _, _ in r_ax.ticks],
                            clamp=True)
        return {**pts, "total": total, "risk": risk}

    # ------------------------------------------------------------------ draw
    def draw(self, ax: Any = None, title: str | None = None):
        """Draw the nomogram (matplotlib); return the Figure. Sized for a printed page."""
        import matplotlib.pyplot as plt

        rows = self.axes()
        if ax is None:
            fig, ax = plt.subplots(figsize=(10, 0.75 * len(rows) + 0.8))
        else:
            fig = ax.figure
        for i, row in enumerate(rows):
            y = -float(i)
            ax.text(-4, y, row.label, ha="right", va="center", fontsize=11, fontweight="bold")
            ax.plot(row.extent, [y, y], color="black", lw=1.0, solid_capstyle="butt")
            if row.kind == "points":
                for v in np.arange(0, 101, 2.0):
                    ax.plot([v, v], [y, y + (0.12 if v % 10 == 0 else 0.06)], color="black", lw=0.7)
            last_above = last_below = -np.inf
            for value, x, text in row.ticks:
                ax.plot([x, x], [y, y + 0.12], color="black", lw=1.0)
                width = 0.9 * len(text) + 1.5  # label width in drawing units at 9 pt
                if x - last_above >= width:
                    ax.text(x, y + 0.18, text, ha="center", va="bottom", fontsize=9)
                    last_above = x
                elif x - last_below >= width:  # crowded (risk near 50 %): label below
                    ax.plot([x, x], [y, y - 0.12], color="black", lw=1.0)
                    ax.text(x, y - 0.18, text, ha="center", va="top", fontsize=9)
                    last_below = x
        risk = rows[-1]
        if risk.ticks and risk.extent[1] - risk.extent[0] < 5:
            # a model that separates its training cohort: the whole risk scale within a few points
            lo_t, hi_t = risk.ticks[0], risk.ticks[-1]
            ax.text(100, -float(len(rows) - 1) - 0.45,
                    f"risk rises from {lo_t[2]} to {hi_t[2]} within "
                    f"{(hi_t[1] - lo_t[1]) * self.total_axis_max / 100:.1f} total points "
                    "(the model separates the training cohort)", ha="right", va="top", fontsize=8,
                    style="italic")
        ax.set_xlim(-30, 104)
        ax.set_ylim(-len(rows) + 0.5, 0.7)
        ax.axis("off")
        if title:
            ax.set_title(title, fontsize=12)
        return fig
