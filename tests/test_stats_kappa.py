"""Cohen's kappa (dlrc_lib.stats.cohen_kappa) against a hand computation and R psych::cohen.kappa."""
from __future__ import annotations

import numpy as np
import pytest

from dlrc_lib import stats as S
from dlrc_lib.core.errors import DlrcError


def _pairs(table):
    """Rater-1 / rater-2 calls of a square count table (rows: rater 1, columns: rater 2)."""
    a, b = [], []
    for i, row in enumerate(table):
        for j, n in enumerate(row):
            a += [i] * n
            b += [j] * n
    return np.array(a), np.array(b)


def test_kappa_by_hand_2x2():
    # rows rater 1 (0, 1), columns rater 2: [[15, 10], [5, 20]], n = 50
    # p_o = 35/50 = 0.7; margins rater 1 (0.5, 0.5), rater 2 (0.4, 0.6): p_e = 0.2 + 0.3 = 0.5
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    # Fleiss-Cohen-Everitt: sum_i p_ii ((1-p_e) - (r_i+c_i)(1-p_o))^2
    #   = 0.3 (0.5 - 0.9*0.3)^2 + 0.4 (0.5 - 1.1*0.3)^2 = 0.015870 + 0.011560 = 0.027430
    # (1-p_o)^2 sum_{i!=j} p_ij (c_i + r_j)^2 = 0.09 (0.2*0.9^2 + 0.1*1.1^2) = 0.09 * 0.283 = 0.025470
    # (p_o p_e - 2 p_e + p_o)^2 = (0.35 - 1 + 0.7)^2 = 0.0025
    # var = (0.027430 + 0.025470 - 0.0025) / (50 * 0.5^4) = 0.0504 / 3.125 = 0.016128
    a, b = _pairs([[15, 10], [5, 20]])
    k = S.cohen_kappa(a, b)
    assert k.kappa == pytest.approx(0.4, abs=1e-12)
    assert k.se ** 2 == pytest.approx(0.016128, abs=1e-12)
    assert (k.agreement, k.chance, k.n) == (pytest.approx(0.7), pytest.approx(0.5), 50)
    # psych::cohen.kappa(cbind(a, b))$confid, unweighted row (R 4.2.2, psych 2.2.9)
    assert (k.lower, k.upper) == pytest.approx((0.151092290476661, 0.648907709523339), abs=1e-12)


def test_kappa_matches_psych_three_categories():
    a = [0, 0, 0, 1, 1, 2, 2, 2, 0, 1, 1, 2, 0, 0, 1, 2, 2, 1, 0, 0, 1, 1, 1, 2]
    b = [0, 0, 1, 1, 1, 2, 2, 1, 0, 1, 2, 2, 0, 1, 1, 2, 0, 1, 0, 0, 1, 2, 1, 2]
    k = S.cohen_kappa(a, b)
    # psych::cohen.kappa(cbind(a, b)): unweighted 0.359949375325926 0.622047244094488
    # 0.884145112863050; var.kappa 0.0178826055463507
    assert (k.lower, k.kappa, k.upper) == pytest.approx((0.359949375325926, 0.622047244094488, 0.884145112863050),
                                                        abs=1e-12)
    assert k.se ** 2 == pytest.approx(0.0178826055463507, abs=1e-14)


def test_kappa_upper_bound_set_to_one_like_psych():
    a = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    b = [1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    k = S.cohen_kappa(a, b)
    # psych: 0.515071750490953 0.791666666666667 1 (the upper bound 1.068 is set to 1)
    assert (k.lower, k.kappa, k.upper) == pytest.approx((0.515071750490953, 0.791666666666667, 1.0), abs=1e-12)


def test_kappa_agrees_with_sklearn_and_is_symmetric():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(5)
    a = rng.integers(0, 3, 200)
    b = np.where(rng.uniform(size=200) < 0.7, a, rng.integers(0, 3, 200))
    k = S.cohen_kappa(a, b)
    assert k.kappa == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    assert S.cohen_kappa(b, a).kappa == pytest.approx(k.kappa, abs=1e-12)
    assert S.cohen_kappa(b, a).se == pytest.approx(k.se, abs=1e-12)


def test_kappa_edge_cases():
    perfect = S.cohen_kappa([0, 1, 1, 0], [0, 1, 1, 0])
    assert (perfect.kappa, perfect.lower, perfect.upper) == (1.0, 1.0, 1.0)
    constant = S.cohen_kappa([1, 1, 1], [1, 1, 1])  # p_e = 1: undefined, as R (NA)
    assert np.isnan(constant.kappa) and constant.agreement == 1.0
    missing = S.cohen_kappa([0, 1, None, 1], [0, 1, 1, np.nan])  # incomplete pairs dropped
    assert missing.n == 2 and missing.kappa == 1.0
    with pytest.raises(DlrcError, match="calls of rater 1"):
        S.cohen_kappa([0, 1], [0, 1, 1])
    with pytest.raises(DlrcError, match="not among the categories"):
        S.cohen_kappa([0, 2], [0, 1], categories=(0, 1))
