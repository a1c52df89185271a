"""The statistics behind the verdict's three outcomes (dlrc_lib.stats.replication,
dlrc_lib.reporting.evidence), each against an independent computation: numbers worked by hand
(in the comments), statsmodels' power and GLM with an offset, and the package's own net benefit."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.stats.power import normal_power

from dlrc_lib.reporting import evidence as E
from dlrc_lib.stats import calibration as cal
from dlrc_lib.stats import replication as R


def test_se_from_a_symmetric_interval_and_from_a_clipped_one():
    # the paper's radiomics AUC in the internal cohort: 0.767 (0.700–0.834): 0.067 / 1.959964
    assert R.se_from_ci(0.767, 0.700, 0.834) == pytest.approx(0.03418430161395182, rel=1e-12)
    # pROC clips at 1: the unclipped side still gives the SE
    assert R.se_from_ci(0.95, 0.85, 1.0) == pytest.approx(0.10 / 1.959963984540054, rel=1e-12)


def test_auc_prediction_interval_worked_by_hand():
    # logit(0.767) = 1.191351; var_o = (0.0341843 / (0.767 * 0.233))^2 = 0.036589;
    # var_r = (0.1 / (0.6 * 0.4))^2 = 0.173611; half-width 1.959964 * sqrt(0.2102) = 0.898608
    # -> expit(0.292743) = 0.572694, expit(2.089959) = 0.889932
    pi = R.auc_prediction_interval(0.767, 0.03418430161395182, 0.1, 0.6)
    assert (pi.lower, pi.upper) == pytest.approx((0.5726942364349494, 0.8899317915847296), rel=1e-10)
    assert pi.contains(0.6) and not pi.contains(0.5)
    # this interval already excludes 0.5 at 30 patients: the answer is never below one more patient
    assert R.patients_for_auc_interval(30, pi, 0.6) == 31
    # 5 patients with var_r 2.0: n * var_r / ((logit(A) / z)^2 - var_o) = 10 / 0.332876 = 30.04 -> 31
    assert R.patients_for_interval(5, centre=1.191351, var_original=0.036589, var_replicate=2.0, null=0.0) == 31


def test_patients_for_interval_is_the_smallest_size_that_excludes_the_null():
    centre, vo, vr, n = 0.9, 0.04, 0.5, 40
    need = R.patients_for_interval(n, centre=centre, var_original=vo, var_replicate=vr, null=0.0)
    z = R.z_of(0.95)
    half = lambda m: z * np.sqrt(vo + vr * n / m)  # noqa: E731
    assert centre - half(need) > 0 >= centre - half(need - 1)
    # the original's own interval reaches the null: no replicate size would do
    assert R.patients_for_interval(n, centre=0.1, var_original=0.04, var_replicate=vr, null=0.0) is None


def test_hanley_mcneil_worked_by_hand():
    # A 0.8, 50 cases, 100 controls: Q1 = 0.6667, Q2 = 0.7111,
    # var = (0.16 + 49 * 0.02667 + 99 * 0.07111) / 5000 = 0.0017013
    assert R.hanley_mcneil_se(0.8, 50, 100) == pytest.approx(0.041247222128688046, rel=1e-12)


@pytest.mark.parametrize("effect,se", [(0.07, 0.05), (0.03, 0.04), (0.2, 0.05), (-0.1, 0.03)])
def test_power_equals_statsmodels(effect, se):
    expected = normal_power(abs(effect) / se, nobs=1, alpha=0.05, alternative="two-sided")
    assert R.power_two_sided(effect, se) == pytest.approx(expected, rel=1e-12)


def test_patients_for_power_reaches_eighty_percent():
    n, effect, se = 60, 0.07, 0.09
    need = R.patients_for_power(n, effect, se)
    at = lambda m: R.power_two_sided(effect, se * np.sqrt(n / m))  # noqa: E731
    assert at(need) >= 0.8 > at(need - 1)


def test_difference_standard_errors_worked_by_hand():
    # Agresti & Min: 3 and 1 discordant pairs of 20, 0.5 added to each cell:
    # p10 = 3.5/22, p01 = 1.5/22, sqrt((5/22 - (2/22)^2) / 22) = 0.0997744
    a = np.array([1] * 3 + [0] * 1 + [1] * 6 + [0] * 10, bool)
    b = np.array([0] * 3 + [1] * 1 + [1] * 6 + [0] * 10, bool)
    assert R.paired_proportion_difference_se(a, b) == pytest.approx(0.09977435097231104, rel=1e-12)
    # no disagreement at all still has a standard error
    assert R.paired_proportion_difference_se(a, a) > 0
    # Agresti & Caffo: 0.6 and 0.3 of 50 -> 31/52 and 16/52
    assert R.proportion_difference_se(0.6, 50, 0.3, 50) == pytest.approx(0.09341513933358822, rel=1e-12)


def _calibration_data(n=300, seed=3):
    rng = np.random.default_rng(seed)
    lp = rng.normal(-0.8, 1.2, n)
    y = rng.random(n) < 1 / (1 + np.exp(-(0.3 + 0.7 * lp)))
    return y.astype(int), 1 / (1 + np.exp(-lp))


def test_calibration_intercept_and_slope_equal_statsmodels_glm():
    y, p = _calibration_data()
    lp = np.log(p / (1 - p))
    citl = sm.GLM(y, np.ones((y.size, 1)), family=sm.families.Binomial(), offset=lp).fit()
    slope = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit()
    a, b = R.calibration_in_the_large(y, p), R.calibration_slope(y, p)
    assert a.estimate == pytest.approx(citl.params[0], abs=1e-9) and a.se == pytest.approx(citl.bse[0], rel=1e-6)
    assert (a.lower, a.upper) == pytest.approx(tuple(citl.conf_int()[0]), abs=1e-6)
    assert b.estimate == pytest.approx(slope.params[1], abs=1e-7) and b.se == pytest.approx(slope.bse[1], rel=1e-6)
    assert (b.lower, b.upper) == pytest.approx(tuple(slope.conf_int()[1]), abs=1e-6)


def test_net_benefit_difference_point_estimates_and_bootstrap():
    y, p = _calibration_data(200, 5)
    other = np.clip(p + np.random.default_rng(1).normal(0, 0.1, p.size), 0.01, 0.99)
    t = np.round(np.arange(0.1, 0.61, 0.05), 10)
    nb = cal.net_benefit(y, p, t).set_index("threshold")
    nb_other = cal.net_benefit(y, other, t).set_index("threshold")
    d = R.net_benefit_difference(y, p, other, t, B=200, seed=7)
    assert d["difference"].to_numpy() == pytest.approx((nb["net_benefit"] - nb_other["net_benefit"]).to_numpy(), abs=1e-12)
    d_all = R.net_benefit_difference(y, p, "all", t, B=200, seed=7)
    assert d_all["difference"].to_numpy() == pytest.approx((nb["net_benefit"] - nb["treat_all"]).to_numpy(), abs=1e-12)
    d_none = R.net_benefit_difference(y, p, "none", t, B=200, seed=7)
    assert d_none["difference"].to_numpy() == pytest.approx(nb["net_benefit"].to_numpy(), abs=1e-12)
    assert ((d["lower"] <= d["difference"] + 1e-12) & (d["difference"] <= d["upper"] + 1e-12)).all()
    # the same seed gives the same intervals
    pd.testing.assert_frame_equal(d, R.net_benefit_difference(y, p, other, t, B=200, seed=7))


def test_judgements_name_the_cohort_and_what_would_do():
    cohort = E.Cohort(20, 6)
    small = E.judge_auc([0.767, 0.700, 0.834], [0.60, 0.30, 0.90], cohort)
    assert small.too_small and "includes 0.5" in small.reason and "20 patients (6 LNM)" in small.reason
    assert "patients (~" in small.reason and "would make it testable" in small.reason
    big = E.judge_auc([0.767, 0.700, 0.834], [0.60, 0.55, 0.65], E.Cohort(400, 120))
    assert not big.too_small and not big.holds and "outside the 95 % prediction interval" in big.reason
    # power: 0.8 decides; below it the result cannot tell
    assert E.judge_nonsignificant(0.07, 0.02, cohort, 0.05).too_small is False
    weak = E.judge_nonsignificant(0.07, 0.05, cohort, 0.05)
    assert weak.too_small and "power 0.29" in weak.reason
    # Hosmer–Lemeshow: 6 events over 10 groups cannot give 5 expected in each
    hl = E.judge_hosmer_lemeshow(None, cohort, 10)
    assert hl is not None and hl.too_small and "at least about 167 patients" in hl.reason
    assert E.judge_hosmer_lemeshow(None, E.Cohort(500, 150), 10) is None
    assert E.judge_hosmer_lemeshow(5.2, E.Cohort(500, 150), 10) is None


def test_net_benefit_judgement_too_small_decided_and_identical_curves():
    t = np.array([0.2, 0.3])
    frame = lambda d, lo, hi: pd.DataFrame({"threshold": t, "difference": d, "lower": lo, "upper": hi})  # noqa: E731
    cohort = E.Cohort(40, 12)
    # spans zero everywhere: too small; the best threshold's half-width / difference = 0.04 / 0.02 -> 4x the cohort
    j = E.judge_net_benefit({"Radiomics": frame([0.02, 0.01], [-0.02, -0.05], [0.06, 0.07])}, cohort, 500)
    assert j is not None and j.too_small and "about 160 patients (~48 LNM)" in j.reason
    # clearly below somewhere: decided by the curves
    assert E.judge_net_benefit({"Radiomics": frame([-0.05, 0.01], [-0.08, -0.05], [-0.01, 0.07])}, cohort, 500) is None
    # identical curves: an interval of width 0 is no uncertainty
    assert E.judge_net_benefit({"Radiomics": frame([0.0, 0.0], [0.0, 0.0], [0.0, 0.0])}, cohort, 500) is None
