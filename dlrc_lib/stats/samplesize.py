"""Minimum sample size to validate a prediction model of a binary outcome externally.

The criteria of Riley et al. (Stat Med 2021;40:4230-51, doi:10.1002/sim.9025; summarised in
Riley et al., BMJ 2024;384:e074821) and Archer et al. (Stat Med 2021;40:133-46,
doi:10.1002/sim.8766), with the conventions of ``pmvalsampsize`` 0.2.1 (Python; the R package
of the same name by J. Ensor), whose numbers ``tests/test_samplesize.py`` pins:

1. **O/E** — the observed/expected events ratio estimated precisely:
   SE(ln O/E) ≈ √((1 − φ) / (nφ)), φ the outcome prevalence, so n = (1 − φ) / (φ SE²). The
   target is the width of the 95 % CI *on the O/E scale*, exp(ln O/E ± 1.96 SE): SE is stepped
   up by 10⁻⁴ until the width reaches the target (default 0.2).
2. **Calibration slope** — var(β̂₁) of the recalibration model logit p = β₀ + β₁ LP at β₀ = 0,
   β₁ = 1 is I₀₀ / (n (I₀₀I₁₁ − I₀₁²)), with the information elements
   I_jk = E[LPʲ LPᵏ e^LP / (1 + e^LP)²] averaged over the linear predictor's distribution;
   n = I₀₀ / (SE² (I₀₀I₁₁ − I₀₁²)), SE = width / (2 × 1.96) (default width 0.2).
3. **C-statistic** — Newcombe's SE: SE(C)² = C(1 − C)(1 + (n/2 − 1)(1 − C)/(2 − C)
   + (n/2 − 1)C/(1 + C)) / (n² φ(1 − φ)); n is the smallest with 2 × 1.96 × SE ≤ the target
   width (default 0.1).
4. **Net benefit** (optional, at a risk threshold t) — the standardised net benefit
   sNB = (Se φ − (1 − Sp)(1 − φ) t/(1 − t)) / φ has
   SE² = (Se(1 − Se)/φ + w² Sp(1 − Sp)/(1 − φ) + w²(1 − Sp)²/(φ(1 − φ))) / n,
   w = (1 − φ)/φ × t/(1 − t); SE is stepped up by 10⁻⁴ to the target width (default 0.2) and
   rounded to 3 decimals, as the reference. Without a sensitivity and specificity they are read
   off the simulated linear predictor at the threshold.

The minimum is the largest of the criteria's n; the events are ⌈nφ⌉.

**The linear predictor.** Criterion 2 needs its distribution. The reference simulates
1,000,000 values (seed 123456, numpy's legacy ``RandomState``, which numpy keeps stable) from
a normal LP (``lp_normal=(mean, sd)``), a beta distribution of the risks (``lp_beta=(a, b)``)
or, given only C and φ, from a normal LP in events and in non-events with a common variance
σ² = 2Φ⁻¹(C)² and means m and m + σ² (then the AUC is C and the LP is calibrated). The
reference searches m by simulation from a starting guess; here it is solved:
logit P(event | LP) = logit φ + LP − m − σ²/2, so m = logit φ − Φ⁻¹(C)² makes the LP the true
log-odds and the mean risk φ. The draws are then those of ``pmvalsampsize(..., lpcstat=m)``,
which accepts that m at once when its simulated prevalence is within its tolerance (5 × 10⁻⁴;
true of every set pinned in the tests). The draws replicate the reference's, so its numbers
are matched exactly, not to within Monte Carlo error. That error itself is small: at the
paper's values the information integrated numerically gives 2,081.75 for criterion 2 where
the 1,000,000 draws give 2,085 (+0.2 %).

Where this departs from the reference, on purpose: the standardised net benefit is reported
with the false-positive term (the reference's 0.2.1 drops it from the printed value; its n is
unaffected), a sensitivity and specificity given with the threshold work (the reference 0.2.1
stops with an ``UnboundLocalError`` after computing n), and the reference's extra criteria
(accuracy, precision, F1, ...) are not computed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import special
from scipy import stats as sps

from dlrc_lib.core.errors import DlrcError

#: The normal quantile as the reference writes it (not 1.959964...).
Z = 1.96
#: The reference's simulation: number of linear predictor values and the seed.
SIMOBS = 1_000_000
SEED = 123456
#: Step of the SE searches (criteria 1 and 4).
SE_STEP = 1e-4
#: The C-statistic search looks at n = 1 ... this (as the reference).
MAX_N_CSTAT = 1_000_000

CRITERIA = ("O/E", "calibration slope", "C-statistic", "net benefit")


@dataclass(frozen=True)
class SampleSizeCriterion:
    """One criterion: the smallest n giving the target precision."""

    name: str            # one of CRITERIA
    n: int
    events: int          # ceil(n * prevalence)
    performance: float   # the anticipated value: O/E, calibration slope (1), C, standardised net benefit
    se: float            # the SE the criterion asks for
    ci_width: float      # the target 95 % CI width


@dataclass(frozen=True)
class ValidationSampleSize:
    """The minimum sample size for an external validation, criterion by criterion."""

    criteria: tuple[SampleSizeCriterion, ...]
    cstatistic: float
    prevalence: float
    lp: str                               # the linear predictor distribution assumed (criterion 2)
    simulated_prevalence: float | None    # mean outcome drawn from the simulated LP (C-and-prevalence LP)
    threshold: float | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    net_benefit: float | None = None      # NB = Se φ − (1 − Sp)(1 − φ) t/(1 − t)

    @property
    def binding(self) -> SampleSizeCriterion:
        """The criterion needing the most patients (the first of them on a tie)."""
        return max(self.criteria, key=lambda c: c.n)

    @property
    def n(self) -> int:
        return self.binding.n

    @property
    def events(self) -> int:
        return math.ceil(self.n * self.prevalence)

    def criterion(self, name: str) -> SampleSizeCriterion:
        for c in self.criteria:
            if c.name == name:
                return c
        raise KeyError(name)


def _check_inputs(cstatistic: float, prevalence: float, widths: dict[str, float], oe: float) -> None:
    if not (isinstance(prevalence, (int, float)) and 0 < prevalence < 1):
        raise DlrcError(f"prevalence must lie strictly between 0 and 1, got {prevalence}")
    if not (isinstance(cstatistic, (int, float)) and 0.5 < cstatistic < 1):
        raise DlrcError(f"C-statistic must lie strictly between 0.5 and 1, got {cstatistic}")
    for name, w in widths.items():
        if not (isinstance(w, (int, float)) and math.isfinite(w) and w > 0):
            raise DlrcError(f"{name} must be a positive number, got {w}")
    if not (isinstance(oe, (int, float)) and math.isfinite(oe) and oe > 0):
        raise DlrcError(f"O/E must be a positive number, got {oe}")


def oe_criterion(prevalence: float, ci_width: float = 0.2, oe: float = 1.0) -> tuple[int, float]:
    """Criterion 1: (n, SE(ln O/E)). SE(ln O/E) = √((1 − φ)/(nφ)) (Riley et al. 2021); SE is
    stepped up by :data:`SE_STEP` until exp(ln O/E + 1.96 SE) − exp(ln O/E − 1.96 SE) reaches
    ``ci_width`` (the width on the O/E scale)."""
    width = 0.0
    se = 0.0
    log_oe = np.log(oe)
    while width < ci_width:
        se += SE_STEP
        width = np.exp(log_oe + (Z * se)) - np.exp(log_oe - (Z * se))
    return math.ceil((1 - prevalence) / (prevalence * (se ** 2))), se


def binormal_lp(cstatistic: float, prevalence: float) -> tuple[float, float]:
    """(mean in non-events m, common variance σ²) of a normal LP in events (mean m + σ²) and
    non-events with AUC ``cstatistic``, calibrated at prevalence φ: σ² = 2Φ⁻¹(C)²,
    m = logit φ − Φ⁻¹(C)²."""
    q = float(sps.norm.ppf(cstatistic))
    return float(special.logit(prevalence) - q ** 2), 2 * (q ** 2)


def simulate_lp(cstatistic: float, prevalence: float, *, lp_normal: Optional[tuple[float, float]] = None,
                lp_beta: Optional[tuple[float, float]] = None, simobs: int = SIMOBS,
                seed: int = SEED) -> tuple[np.ndarray, np.random.RandomState, float | None, str]:
    """The simulated linear predictor, the random state after it (the net-benefit criterion draws
    on), the simulated prevalence (C-and-prevalence LP only) and a description, drawing as the
    reference: ``norm.rvs`` / ``beta.rvs`` / its ``lpcstat`` draws after ``np.random.seed(seed)``."""
    rs = np.random.RandomState(seed)
    if lp_normal is not None:
        mean, sd = (float(v) for v in lp_normal)
        if not sd > 0:
            raise DlrcError(f"the LP's SD must be positive, got {sd}")
        return rs.standard_normal(simobs) * sd + mean, rs, None, f"normal LP (mean {mean:g}, SD {sd:g})"
    if lp_beta is not None:
        a, b = (float(v) for v in lp_beta)
        if not (a > 0 and b > 0):
            raise DlrcError(f"the beta distribution's parameters must be positive, got {a}, {b}")
        p = rs.beta(a, b, simobs)
        return np.log(p / (1 - p)), rs, None, f"risks from a beta({a:g}, {b:g}) distribution"
    m, var = binormal_lp(cstatistic, prevalence)
    sd = math.sqrt(var)
    outcome = rs.binomial(1, prevalence, simobs)
    lp = rs.standard_normal(simobs) * sd + m
    lp_events = rs.standard_normal(simobs) * sd + (m + var)
    lp[outcome == 1] = lp_events[outcome == 1]
    p = np.exp(lp) / (1 + np.exp(lp))
    simulated = float(rs.binomial(1, p, simobs).mean())
    what = (f"normal LP in events and non-events, common SD {sd:.3f}, means {m + var:.3f} and {m:.3f} "
            f"(AUC {cstatistic:g}, calibrated at prevalence {prevalence:.3f})")
    return lp, rs, simulated, what


def slope_criterion(lp: np.ndarray, ci_width: float = 0.2) -> tuple[int, float]:
    """Criterion 2: (n, SE of the slope). The information elements of logit p = β₀ + β₁ LP at
    β₀ = 0, β₁ = 1 averaged over ``lp`` (Riley et al. 2021, after Borenstein's formulation);
    n = I₀₀ / (SE² (I₀₀I₁₁ − I₀₁²)), SE = ``ci_width`` / (2 × 1.96)."""
    e = np.exp(lp)
    d = (1 + e) ** 2
    i00 = (e / d).mean()
    i01 = (lp * e / d).mean()
    i11 = (lp * lp * e / d).mean()
    se = ci_width / (2 * Z)
    return math.ceil(i00 / (se * se * ((i00 * i11) - (i01 * i01)))), se


def _cstat_se(cstatistic: float, prevalence: float, n):
    """Newcombe's SE(C)² at n patients (n a scalar or an integer array)."""
    c = cstatistic
    half = (n / 2) - 1
    return (c * (1 - c) * (1 + (half * ((1 - c) / (2 - c))) + ((half * c) / (1 + c)))
            / (n * n * prevalence * (1 - prevalence)))


def cstat_criterion(cstatistic: float, prevalence: float, ci_width: float = 0.1) -> tuple[int, float]:
    """Criterion 3: (n, SE(C)), the smallest n ≤ :data:`MAX_N_CSTAT` whose 95 % CI for C
    (± 1.96 Newcombe SE) is no wider than ``ci_width``."""
    sizes = np.arange(1, MAX_N_CSTAT + 1, dtype=np.int64)
    width = 2 * Z * (_cstat_se(cstatistic, prevalence, sizes) ** 0.5)
    ok = np.flatnonzero(width <= ci_width)
    if ok.size == 0:
        raise DlrcError(f"a C-statistic CI width of {ci_width:g} needs more than {MAX_N_CSTAT:,} patients")
    n = int(sizes[ok[0]])
    return n, math.sqrt(_cstat_se(cstatistic, prevalence, n))


def net_benefit_criterion(prevalence: float, threshold: float, sensitivity: float, specificity: float,
                          ci_width: float = 0.2) -> tuple[int, float, float]:
    """Criterion 4: (n, SE of the standardised net benefit, standardised net benefit) at risk
    threshold t (Riley et al. 2021, net benefit; Vickers' standardisation by φ)."""
    odds = threshold / (1 - threshold)
    snb = ((sensitivity * prevalence) - ((1 - specificity) * (1 - prevalence) * odds)) / prevalence
    w = ((1 - prevalence) / prevalence) * odds
    width = 0.0
    se = 0.0
    while width < ci_width:
        se += SE_STEP
        width = (snb + (Z * se)) - (snb - (Z * se))
    se = round(se, 3)
    n = math.ceil((1 / (se ** 2)) * (((sensitivity * (1 - sensitivity)) / prevalence)
                                     + (w * w * specificity * (1 - specificity) / (1 - prevalence))
                                     + (w * w * (1 - specificity) * (1 - specificity)
                                        / (prevalence * (1 - prevalence)))))
    return n, se, snb


def _classify_simulated(lp: np.ndarray, rs: np.random.RandomState, threshold: float,
                        simobs: int) -> tuple[float, float]:
    """Sensitivity and specificity at the threshold (risk > t) of outcomes drawn from the simulated
    LP, rounded to 3 decimals as the reference."""
    p = np.exp(lp) / (1 + np.exp(lp))
    y = rs.binomial(1, p, simobs)
    positive = p > threshold
    sens = float(np.round(positive[y == 1].mean(), 3))
    spec = float(1 - np.round(positive[y == 0].mean(), 3))
    return sens, spec


def validation_sample_size(cstatistic: float, prevalence: float, *, oe: float = 1.0, oe_ciwidth: float = 0.2,
                           slope_ciwidth: float = 0.2, cstat_ciwidth: float = 0.1,
                           lp_normal: Optional[tuple[float, float]] = None,
                           lp_beta: Optional[tuple[float, float]] = None,
                           threshold: Optional[float] = None, sensitivity: Optional[float] = None,
                           specificity: Optional[float] = None, nb_ciwidth: float = 0.2,
                           simobs: int = SIMOBS, seed: int = SEED) -> ValidationSampleSize:
    """The minimum sample size to validate a model of anticipated C-statistic ``cstatistic`` in a
    population of outcome prevalence ``prevalence``, as
    ``pmvalsampsize(type="b", cstatistic=, prevalence=, oeciwidth=, csciwidth=, cstatciwidth=,
    lpnormal= | lpbeta= | lpcstat=m, threshold=, sensitivity=, specificity=, nbciwidth=)``.

    Without ``lp_normal`` or ``lp_beta`` the linear predictor is the calibrated binormal one of
    :func:`binormal_lp`. The net-benefit criterion is computed when ``threshold`` is given (with
    ``sensitivity`` and ``specificity``, or both read off the simulated LP)."""
    widths = {"the O/E CI width": oe_ciwidth, "the calibration slope CI width": slope_ciwidth,
              "the C-statistic CI width": cstat_ciwidth}
    if threshold is not None:
        widths["the net benefit CI width"] = nb_ciwidth
    _check_inputs(cstatistic, prevalence, widths, oe)
    if lp_normal is not None and lp_beta is not None:
        raise DlrcError("give one linear predictor distribution: lp_normal or lp_beta, not both")
    if (sensitivity is None) != (specificity is None):
        raise DlrcError("give both the sensitivity and the specificity, or neither")
    if sensitivity is not None and threshold is None:
        raise DlrcError("the sensitivity and specificity need the risk threshold they are at")
    if not (isinstance(simobs, (int, np.integer)) and simobs > 0):
        raise DlrcError(f"the number of simulated linear predictor values must be a positive integer, got {simobs}")
    if threshold is not None and not 0 < threshold < 1:
        raise DlrcError(f"the risk threshold must lie strictly between 0 and 1, got {threshold}")
    for name, v in (("sensitivity", sensitivity), ("specificity", specificity)):
        if v is not None and not 0 <= v <= 1:
            raise DlrcError(f"the {name} must lie between 0 and 1, got {v}")

    def row(name: str, n: int, perf: float, se: float, width: float) -> SampleSizeCriterion:
        return SampleSizeCriterion(name, int(n), math.ceil(n * prevalence), float(perf), float(se), float(width))

    n1, se1 = oe_criterion(prevalence, oe_ciwidth, oe)
    lp, rs, simulated, what = simulate_lp(cstatistic, prevalence, lp_normal=lp_normal, lp_beta=lp_beta,
                                          simobs=simobs, seed=seed)
    n2, se2 = slope_criterion(lp, slope_ciwidth)
    n3, se3 = cstat_criterion(cstatistic, prevalence, cstat_ciwidth)
    rows = [row("O/E", n1, oe, se1, oe_ciwidth), row("calibration slope", n2, 1.0, se2, slope_ciwidth),
            row("C-statistic", n3, cstatistic, se3, cstat_ciwidth)]
    nb = None
    if threshold is not None:
        if sensitivity is None:
            sensitivity, specificity = _classify_simulated(lp, rs, threshold, simobs)
        n4, se4, snb = net_benefit_criterion(prevalence, threshold, sensitivity, specificity, nb_ciwidth)
        rows.append(row("net benefit", n4, snb, se4, nb_ciwidth))
        nb = snb * prevalence
    return ValidationSampleSize(tuple(rows), float(cstatistic), float(prevalence), what, simulated,
                                threshold, sensitivity, specificity, nb)
