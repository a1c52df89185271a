"""How much a run's cohort can tell: the numbers the verdict's three outcomes are decided on.

A claim is decided against the paper by the statistics of :mod:`dlrc_lib.stats.replication`:
an AUC or a difference by the **prediction interval** of the paper's estimate for a cohort of
this run's size, a significance claim by this run's **power** to find the paper's effect, a
Hosmer–Lemeshow test by its **expected counts per risk group**, a decision curve by the
**bootstrap interval** of the net-benefit difference. The functions here take the run's own
frames (``data/predictions.parquet``, ``data/sra_calls.parquet``) and plain numbers, and return
plain numbers or :class:`Judgement`; :mod:`dlrc_lib.reporting.claims` turns them into rows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from dlrc_lib.stats.calibration import hosmer_lemeshow
from dlrc_lib.stats.replication import (
    PredictionInterval, auc_prediction_interval, calibration_in_the_large, calibration_slope,
    difference_prediction_interval, hanley_mcneil_se, net_benefit_difference, paired_proportion_difference_se,
    patients_for_auc_interval, patients_for_interval, patients_for_power, power_two_sided,
    proportion_difference_se, se_from_ci,
)
from dlrc_lib.stats.roc import delong_test

#: a non-significant replicate counts against a significant finding only with at least this power
POWER_TO_DECIDE = 0.8
#: Hosmer & Lemeshow's own condition on the expected counts per risk group
MIN_EXPECTED_PER_GROUP = 5.0


@dataclass(frozen=True)
class Judgement:
    """``too_small``: the cohort cannot tell; else ``holds`` decides. ``reason`` says why."""

    holds: bool
    too_small: bool
    reason: str


@dataclass(frozen=True)
class Cohort:
    """Patients and LNM events of one cohort of the run."""

    patients: int
    events: int

    def scaled(self, patients: int | None) -> str:
        """``about 410 patients (~127 LNM)``: a cohort of ``patients`` at this prevalence."""
        if patients is None:
            return "no cohort size would do: the paper's own interval already reaches chance"
        events = int(round(patients * self.events / self.patients)) if self.patients else 0
        return f"about {patients:,} patients (~{events:,} LNM) would make it testable"

    def __str__(self) -> str:
        return f"{self.patients} patients ({self.events} LNM)"


def cohort_of(predictions: pd.DataFrame | None, cohort: str, counts: list | None = None) -> Cohort | None:
    """The cohort's size: from the run's predictions, else from its Table 1 counts [neg, pos]."""
    if predictions is not None and {"cohort", "lnm"} <= set(predictions.columns):
        part = predictions[predictions["cohort"].astype(str) == cohort]
        if len(part):
            return Cohort(len(part), int(pd.to_numeric(part["lnm"], errors="coerce").fillna(0).sum()))
    if isinstance(counts, list) and len(counts) == 2:
        try:
            neg, pos = (int(float(x)) for x in counts)
        except (TypeError, ValueError):
            return None
        return Cohort(neg + pos, pos)
    return None


def _cohort_rows(predictions: pd.DataFrame, cohort: str, *columns: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The cohort's patients with ``columns`` and their LNM status known, and that status as numbers."""
    part = predictions[predictions["cohort"].astype(str) == cohort].dropna(subset=[*columns, "lnm"])
    return part, pd.to_numeric(part["lnm"], errors="coerce").to_numpy()


def z_for_p(p: float) -> float:
    """The |z| of a two-sided normal test with p-value ``p``."""
    return float(sps.norm.isf(float(p) / 2))


def _p(x: float) -> str:
    return f"{x:.3f}"


# ----------------------------------------------------------------------------- AUCs
def replicate_auc_se(rep: list[float], cohort: Cohort | None, published_auc: float) -> tuple[float, str]:
    """This run's DeLong SE of the AUC, read back from its (symmetric, possibly clipped) CI; where
    DeLong's SE is zero (a perfectly separating score) Hanley & McNeil's at the paper's AUC."""
    auc, lo, hi = rep
    se = se_from_ci(auc, lo, hi) if np.isfinite([auc, lo, hi]).all() else float("nan")
    if se > 0:
        return se, "DeLong"
    if cohort is None or cohort.events < 1 or cohort.events >= cohort.patients:
        return float("nan"), ""
    return hanley_mcneil_se(published_auc, cohort.events, cohort.patients - cohort.events), \
        "Hanley–McNeil at the paper's AUC (DeLong's is 0 for a separating score)"


def judge_auc(pub: list[float], rep: list[float], cohort: Cohort | None) -> Judgement:
    """Inside the paper's prediction interval: holds; outside: fails; an interval that includes
    0.5: too small to tell (a chance-level model could not have failed it)."""
    se_pub = se_from_ci(*pub)
    se_rep, how = replicate_auc_se(rep, cohort, pub[0])
    if not np.isfinite(se_rep):
        return Judgement(False, True, "this run has no standard error for the AUC (a cohort with one class "
                         "or a single case); too small to tell")
    pi = auc_prediction_interval(pub[0], se_pub, se_rep, rep[0])
    inside = pi.contains(rep[0])
    where = (f"reproduced {_p(rep[0])} {'inside' if inside else 'outside'} the 95 % prediction interval "
             f"{_p(pi.lower)}–{_p(pi.upper)} (the paper's {_p(pub[0])}, SE {_p(se_pub)}; this run's SE "
             f"{_p(se_rep)}{'' if how == 'DeLong' else ', ' + how}; logit scale)")
    if pi.lower <= 0.5 <= pi.upper:
        size = f" for {cohort}" if cohort else ""
        need = cohort.scaled(patients_for_auc_interval(cohort.patients, pi, rep[0])) if cohort else ""
        return Judgement(inside, True, f"the prediction interval{size} includes 0.5: a chance-level model "
                         f"could not have failed it ({where})" + (f"; {need}" if need else ""))
    return Judgement(inside, False, where)


# ----------------------------------------------------------------------------- significance
def difference_se(predictions: pd.DataFrame | None, cohort: str, col_a: str | None, col_b: str | None) -> float:
    """DeLong SE of AUC(a) - AUC(b) in ``cohort`` from the run's predictions (NaN if not there)."""
    if predictions is None or col_a not in predictions or col_b not in predictions:
        return float("nan")
    part, y = _cohort_rows(predictions, cohort, col_a, col_b)
    if len(part) < 4 or y.sum() < 2 or (len(y) - y.sum()) < 2:
        return float("nan")
    return delong_test(y, part[col_a].to_numpy(float), part[col_b].to_numpy(float)).se


def judge_nonsignificant(effect: float | None, se: float, cohort: Cohort | None, alpha: float) -> Judgement:
    """A non-significant result against the paper's significant one: fails only with power ≥ 0.8."""
    if effect is None or not np.isfinite(se) or not se > 0:
        return Judgement(False, False, "no effect size or standard error to judge its power: graded as a failure")
    power = power_two_sided(effect, se, alpha)
    text = f"power {power:.2f} to find the paper's AUC difference {effect:+.3f} (SE here {se:.3f})"
    if power >= POWER_TO_DECIDE:
        return Judgement(False, False, text)
    need = ""
    if cohort is not None:
        n = patients_for_power(cohort.patients, effect, se, alpha, POWER_TO_DECIDE)
        need = "; " + cohort.scaled(n).replace("make it testable", f"give power {POWER_TO_DECIDE:g}")
    return Judgement(False, True, f"{text} < {POWER_TO_DECIDE:g}: too small to tell{need}")


# ----------------------------------------------------------------------------- differences
def judge_difference(pub_diff: float, se_pub: float, rep_diff: float, se_rep: float, n: int | None,
                     cohort: Cohort | None, unit: str = "points") -> Judgement:
    """A difference against the paper's prediction interval; too small where it includes 0."""
    if not (np.isfinite(se_pub) and np.isfinite(se_rep)):
        return Judgement(False, True, "no standard error for the difference (an empty subgroup?): too small to tell")
    pi = difference_prediction_interval(pub_diff, se_pub, se_rep)
    inside = pi.contains(rep_diff)
    where = (f"{rep_diff:+.1f} {unit} {'inside' if inside else 'outside'} the 95 % prediction interval "
             f"{pi.lower:+.1f} to {pi.upper:+.1f} (the paper's {pub_diff:+.1f}, SE {se_pub:.1f}; here SE {se_rep:.1f})")
    if pi.lower <= 0 <= pi.upper:
        need = ""
        if cohort is not None and n:
            m = patients_for_interval(n, centre=pub_diff, var_original=se_pub ** 2, var_replicate=se_rep ** 2, null=0.0)
            need = "; " + cohort.scaled(None if m is None else int(math.ceil(m * cohort.patients / n)))
        return Judgement(inside, True, f"the prediction interval includes no difference: too small to tell ({where}){need}")
    return Judgement(inside, False, where)


def calls_difference_se(calls: pd.DataFrame | None, cohort: str, first: str, second: str, measure: str,
                        below_mm: float | None = None) -> tuple[float, int]:
    """Paired SE (in points) of ``measure`` (sen / spe) of call column ``first`` minus ``second``
    among the cohort's LNM-positive (sen) or -negative (spe) patients, optionally with the largest
    node's short axis below ``below_mm``; and the patients it is computed on."""
    if calls is None or first not in calls or second not in calls:
        return float("nan"), 0
    part = calls[calls["cohort"].astype(str) == cohort]
    if below_mm is not None and "lnsd_mm" in part:
        part = part[pd.to_numeric(part["lnsd_mm"], errors="coerce") < below_mm]
    lnm = pd.to_numeric(part["lnm"], errors="coerce")
    part = part[lnm == (1 if measure == "sen" else 0)]
    if part.empty:
        return float("nan"), 0
    hit = 1 if measure == "sen" else 0
    a = part[first].to_numpy() == hit
    b = part[second].to_numpy() == hit
    return 100 * paired_proportion_difference_se(a, b), len(part)


def unpaired_points_se(a_pct: float, b_pct: float, n: int) -> float:
    """SE (in points) of two percentages of the same ``n`` patients, taken as independent."""
    return 100 * proportion_difference_se(a_pct / 100, n, b_pct / 100, n) if n else float("nan")


# ----------------------------------------------------------------------------- calibration
def hl_expected_minimum(predictions: pd.DataFrame | None, cohort: str, column: str, groups: int) -> float | None:
    """The smallest expected count (events or non-events) of a Hosmer–Lemeshow risk group."""
    if predictions is None or column not in predictions:
        return None
    part, y = _cohort_rows(predictions, cohort, column)
    if len(part) < 2 or part[column].nunique() < 2:
        return None
    table = hosmer_lemeshow(y, part[column].to_numpy(float), groups).table
    table = table[table["n"] > 0]
    return float(min(table["expected_0"].min(), table["expected_1"].min()))


def calibration_text(predictions: pd.DataFrame | None, cohort: str, column: str) -> str:
    """``calibration intercept -0.12 (-0.45 to 0.21), slope 0.91 (0.62 to 1.20)`` for the cohort."""
    if predictions is None or column not in predictions:
        return ""
    part, y = _cohort_rows(predictions, cohort, column)
    if len(part) < 3 or y.sum() in (0, len(y)):
        return ""
    a = calibration_in_the_large(y, part[column].to_numpy(float))
    b = calibration_slope(y, part[column].to_numpy(float))
    show = lambda e: f"{e.estimate:.2f} ({e.lower:.2f} to {e.upper:.2f})"  # noqa: E731
    return f"calibration intercept {show(a)}, slope {show(b)} (ideal 0 and 1)"


def judge_hosmer_lemeshow(minimum: float | None, cohort: Cohort | None, groups: int) -> Judgement | None:
    """Too small to tell where a risk group expects fewer than 5 events or non-events; ``None``:
    the test may be read. Without predictions, a cohort with fewer than 5 x groups events (or
    non-events) has such a group whatever the risks."""
    if minimum is None and cohort is not None:
        minimum = min(cohort.events, cohort.patients - cohort.events) / groups
        if minimum >= MIN_EXPECTED_PER_GROUP:
            return None
    if minimum is None or minimum >= MIN_EXPECTED_PER_GROUP:
        return None
    need = ""
    fewer = min(cohort.events, cohort.patients - cohort.events) if cohort is not None else 0
    if fewer > 0:  # at least 5 expected per group on average: 5 x groups of the rarer outcome
        n = int(math.ceil(cohort.patients * MIN_EXPECTED_PER_GROUP * groups / fewer))
        need = "; " + cohort.scaled(max(n, cohort.patients + 1)).replace("about", "at least about")
    return Judgement(False, True, f"a risk group expects only {minimum:.1f} events or non-events (< "
                     f"{MIN_EXPECTED_PER_GROUP:g}, Hosmer & Lemeshow's condition for the χ² test): too small to tell{need}")


# ----------------------------------------------------------------------------- decision curves
def net_benefit_intervals(predictions: pd.DataFrame, cohort: str, column: str, others: dict[str, str | None],
                          thresholds: np.ndarray, *, B: int, seed: int) -> dict[str, pd.DataFrame]:
    """Per comparator: the bootstrap interval of ``column``'s net benefit minus its, per threshold.
    ``others`` maps a comparator's name to a probability column, ``"all"`` or ``"none"``."""
    part, y = _cohort_rows(predictions, cohort, column)
    out = {}
    for name, other in others.items():
        theirs = other if other in ("all", "none") else part[other].to_numpy(float)
        out[name] = net_benefit_difference(y, part[column].to_numpy(float), theirs, thresholds, B=B, seed=seed)
    return out


def judge_net_benefit(intervals: dict[str, pd.DataFrame], cohort: Cohort | None, B: int) -> Judgement | None:
    """Too small to tell where, for a comparator, the interval spans zero at every threshold and the
    model is nowhere clearly below it; ``None``: decide on the curves."""
    clearly_below = [n for n, f in intervals.items() if (f["upper"] < 0).any()]
    # an interval of width 0 at 0 (two identical curves) is no uncertainty: decided by the curves
    undecided = [n for n, f in intervals.items()
                 if ((f["lower"] <= 0) & (f["upper"] >= 0) & (f["upper"] > f["lower"])).all()]
    if clearly_below or not undecided:
        return None
    size = f" in {cohort}" if cohort else ""
    need = ""
    if cohort is not None:
        factors = [_interval_factor(intervals[n]) for n in undecided]
        need = "; " + ("no cohort size would do: the curves coincide over the tested thresholds"
                       if any(f is None for f in factors) else
                       cohort.scaled(max(int(math.ceil(cohort.patients * max(factors))), cohort.patients + 1)))
    return Judgement(False, True, f"the {B}-sample bootstrap interval of the net-benefit difference over "
                     f"{', '.join(undecided)} spans zero at every tested threshold{size}: too small to tell{need}")


def _interval_factor(frame: pd.DataFrame) -> float | None:
    """How many times this cohort's size would bring the interval off zero at its best threshold
    (the half-width shrinking as 1/sqrt(n)); ``None`` where the difference is zero everywhere."""
    diff = frame["difference"].abs().to_numpy()
    half = ((frame["upper"] - frame["lower"]) / 2).to_numpy()
    ok = diff > 1e-12
    if not ok.any():
        return None
    return float(np.min((half[ok] / diff[ok]) ** 2))


def interval_note(intervals: dict[str, pd.DataFrame]) -> str:
    """Where each comparison is decided: ``above Radiomics at 0.10–0.32 (95 % bootstrap)``."""
    parts = []
    for name, f in intervals.items():
        above = f.loc[f["lower"] > 0, "threshold"]
        parts.append(f"clearly above {name} at {len(above)} of {len(f)} thresholds")
    return "; ".join(parts)


__all__ = ["Cohort", "Judgement", "PredictionInterval", "calibration_text", "calls_difference_se", "cohort_of",
           "difference_se", "hl_expected_minimum", "judge_auc", "judge_difference", "judge_hosmer_lemeshow",
           "judge_net_benefit", "judge_nonsignificant", "net_benefit_intervals", "interval_note",
           "replicate_auc_se", "unpaired_points_se", "z_for_p"]
