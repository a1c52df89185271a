"""dlrc_lib.stats against R: every expected number below was computed with the R call in
the comment next to it (R 4.2, pROC 1.18, psych, MASS, rms); R is not needed to run them."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings, strategies as st

from dlrc_lib import stats as S
from dlrc_lib.core.errors import DlrcError

PUBLISHED = yaml.safe_load(open("params/published_values.yaml"))

# Small example used by several tests (ties in the scores).
Y12 = [0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0]
A12 = [.1, .4, .35, .8, .4, .9, .4, .65, .7, .8, .2, .55]
B12 = [.3, .2, .5, .6, .1, .7, .3, .9, .4, .8, .6, .5]


# ------------------------------------------------------------------ Table 1 p-values
@pytest.mark.parametrize("var", list(PUBLISHED["table1"]["categorical"]))
@pytest.mark.parametrize("cohort", ["train", "internal", "external"])
def test_table1_categorical_pvalues_reproduce_paper(var, cohort):
    block = PUBLISHED["table1"]["categorical"][var]
    table = [block["levels"][lv][cohort] for lv in block["levels"]]
    res = S.compare_categorical(table)
    assert S.format_p(res.pvalue) == block["p"][cohort], (var, cohort, res)


def test_parity_internal_uses_fisher_rxc_like_r():
    # fisher.test(rbind(c(4,4), c(103,54), c(26,5), c(8,0)))$p.value = 0.0191... (SciPy-style
    # approximations give 0.0198)
    res = S.compare_categorical([[4, 4], [103, 54], [26, 5], [8, 0]])
    assert res.method == "Fisher's exact test"
    assert round(res.pvalue, 3) == 0.019


def test_lnm_rate_across_cohorts():
    n = PUBLISHED["table1"]["n"]
    res = S.compare_categorical([n["train"], n["internal"], n["external"]])
    assert res.method == "Chi-squared test"
    assert S.format_p(res.pvalue) == PUBLISHED["table1"]["lnm_rate_p"]


# ------------------------------------------------------------------ Fisher / chi-square
@pytest.mark.parametrize("table, expected", [
    ([[3, 1], [1, 3]], 0.485714285714286),                      # fisher.test(matrix(c(3,1,1,3),2))
    ([[12, 8], [4, 4], [7, 4]], 0.83127064773339),              # fisher.test(rbind(c(12,8),c(4,4),c(7,4)))
    ([[2, 0, 1], [0, 3, 1]], 0.142857142857143),                # fisher.test(rbind(c(2,0,1),c(0,3,1)))
    ([[5, 0], [0, 5]], 0.00793650793650794),                    # perfect association
    ([[1, 1], [1, 1], [1, 1]], 0.999999999999999),              # every table as extreme
    ([[4, 2, 0, 1], [0, 3, 5, 2], [1, 1, 1, 6]], 0.00942031859909908),
])
def test_fisher_exact_matches_r(table, expected):
    assert S.fisher_exact(table) == pytest.approx(expected, rel=1e-9)


def test_fisher_zero_count_row_is_dropped():
    # compareGroups drops the empty level: same p as without the row
    with_zero = S.compare_categorical([[12, 8], [4, 4], [0, 0], [7, 4]])
    assert with_zero.pvalue == pytest.approx(0.83127064773339, rel=1e-9)
    assert S.compare_categorical([[0, 0], [3, 4]]).pvalue != S.compare_categorical([[0, 0], [3, 4]]).pvalue


@pytest.mark.parametrize("table, expected", [
    ([[20, 30], [25, 25]], 0.421379503742869),                  # chisq.test(...) Yates on 2x2
    ([[20, 30, 10], [25, 25, 12]], 0.560054067565343),          # no correction on 2x3
])
def test_chisq_matches_r(table, expected):
    assert S.chisq_test(table)[1] == pytest.approx(expected, rel=1e-9)


def test_bad_table_names_the_problem():
    with pytest.raises(DlrcError, match="non-negative"):
        S.compare_categorical([[1, -2], [3, 4]])


def _fisher_brute(table):
    """Enumerate every table with the observed margins (R's definition of the p-value)."""
    import itertools
    from scipy.special import gammaln

    t = np.asarray(table)
    t = t[t.sum(1) > 0][:, t.sum(0) > 0]
    rows, cols = t.sum(1), t.sum(0)
    logp = lambda x: -gammaln(np.asarray(x) + 1).sum()
    obs = logp(t)
    total = 0.0
    norm = 0.0
    ranges = [range(min(r, c) + 1) for r in rows[:-1] for c in cols[:-1]]
    for cells in itertools.product(*ranges):
        x = np.array(cells).reshape(len(rows) - 1, len(cols) - 1)
        last_col = rows[:-1] - x.sum(1)
        last_row = cols[:-1] - x.sum(0)
        corner = rows[-1] - last_row.sum()
        if (last_col < 0).any() or (last_row < 0).any() or corner < 0:
            continue
        full = np.block([[x, last_col[:, None]], [last_row[None, :], np.array([[corner]])]])
        lp = logp(full)
        norm += math.exp(lp)
        if lp <= obs + math.log1p(1e-7):
            total += math.exp(lp)
    return total / norm


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.integers(2, 3), st.integers(2, 3), st.lists(st.integers(0, 4), min_size=9, max_size=9))
def test_property_fisher_equals_full_enumeration(r, c, cells):
    t = np.array(cells[: r * c]).reshape(r, c)
    t2 = t[t.sum(1) > 0][:, t.sum(0) > 0]
    if min(t2.shape) < 2:
        return
    assert S.fisher_exact(t) == pytest.approx(_fisher_brute(t), rel=1e-9, abs=1e-14)
    assert S.fisher_exact(t.T) == pytest.approx(S.fisher_exact(t), rel=1e-12)


def test_fisher_larger_table_beyond_r_default_workspace():
    # fisher.test(x, workspace=2e8)$p.value = 1.40965904898549e-05 (R's default workspace
    # stops with FEXACT error 7 on this table; the exact enumeration has no such limit)
    t = [[4, 1, 8], [0, 3, 3], [3, 13, 8], [2, 7, 3], [20, 10, 2]]
    assert S.fisher_exact(t) == pytest.approx(1.40965904898549e-05, rel=1e-9)


# ------------------------------------------------------------------ Mann-Whitney
def test_mann_whitney_matches_wilcox_test():
    y = np.array(Y12)
    a = np.array(A12)
    X = np.column_stack([
        a,                                  # ties
        np.r_[1.0, np.zeros(11)],           # almost constant
        np.ones(12),                        # constant: NaN (R: NaN)
        y * 2.0,                            # perfectly separating
    ])
    p = S.mann_whitney_pvalues(X, y)
    # wilcox.test(a[y==1], a[y==0], exact=FALSE, correct=TRUE)$p.value
    assert p[0] == pytest.approx(0.808532411491914, rel=1e-12)
    assert math.isnan(p[2])
    # wilcox.test(c(2,2,2,2,2,2), c(0,0,0,0,0,0), exact=FALSE)$p.value
    assert p[3] == pytest.approx(2 * __import__("scipy").stats.norm.sf((18 - 0.5) / math.sqrt(36 / 12 * (13 - (2 * (6**3 - 6)) / (12 * 11)))), rel=1e-12)


@pytest.mark.parametrize("x1, x0, expected", [
    ([1], [3, 4], 0.54029137460742),                            # tiny groups
    ([5, 6, 7], [1, 2, 3], 0.0808555983700523),
    ([1, 1, 2, 2, 2], [1, 2, 2, 3, 3, 3], 0.142715064933002),    # heavy ties
])
def test_mann_whitney_small_groups(x1, x0, expected):
    X = np.array(x1 + x0, dtype=float)[:, None]
    y = [1] * len(x1) + [0] * len(x0)
    assert S.mann_whitney_pvalues(X, y)[0] == pytest.approx(expected, rel=1e-12)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6)), min_size=4, max_size=60))
def test_property_mann_whitney_equals_per_column_reference(pairs):
    from scipy.stats import mannwhitneyu

    y = np.array([p[0] for p in pairs])
    x = np.array([p[1] for p in pairs], dtype=float)
    if y.min() == y.max() or np.ptp(x) == 0:
        return
    ref = mannwhitneyu(x[y == 1], x[y == 0], use_continuity=True, method="asymptotic").pvalue
    got = S.mann_whitney_pvalues(np.column_stack([x, -x, x * 3 + 1]), y)
    assert got == pytest.approx([ref, ref, ref], rel=1e-9)


def test_mann_whitney_frame_and_missing_values():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(30, 3)), columns=["a", "b", "c"])
    y = rng.integers(0, 2, 30)
    X.iloc[:4, 1] = np.nan
    p = S.mann_whitney_pvalues(X, y)
    assert list(p.index) == ["a", "b", "c"]
    ok = X["b"].notna().to_numpy()
    single = S.mann_whitney_pvalues(X.loc[ok, ["b"]].to_numpy(), y[ok])[0]
    assert p["b"] == pytest.approx(single, rel=1e-12)


# ------------------------------------------------------------------ ROC / DeLong / Youden
def test_auc_ci_matches_proc_with_ties():
    # ci.auc(roc(y, a, direction="<", levels=c(0,1)), method="delong")
    ci = S.auc_ci(Y12, A12)
    assert ci == pytest.approx((0.555555555555556, 0.196889352693181, 0.91422175841793), rel=1e-12)


def test_delong_matches_proc():
    # roc.test(roc(y,a,direction="<"), roc(y,b,direction="<"), method="delong", paired=TRUE)
    z, p = S.delong_test(Y12, A12, B12)
    assert z == pytest.approx(0.148741029327182, rel=1e-10)
    assert p == pytest.approx(0.881757984608166, rel=1e-10)


# pROC's own test expectations (tests/testthat/test-roc.test.R, data aSAH, curves built with
# roc(aSAH$outcome, aSAH$<marker>), all of direction "<").
@pytest.mark.parametrize("a, b, z, p", [
    ("wfns", "s100b", 2.20898359144091, 0.0271757822291882),
    ("wfns", "ndka", 2.79777591868904, 0.00514557970691098),
    ("ndka", "s100b", -1.39077002573558, 0.164295175223054),
])
def test_delong_reproduces_proc_test_suite(a, b, z, p):
    data = {"wfns": ASAH_WFNS, "s100b": ASAH_S100B, "ndka": ASAH_NDKA}
    res = S.delong_test(ASAH_OUTCOME, data[a], data[b])
    assert res.statistic == pytest.approx(z, rel=1e-10)
    assert res.pvalue == pytest.approx(p, rel=1e-10)
    rev = S.delong_test(ASAH_OUTCOME, data[b], data[a])
    assert rev.statistic == pytest.approx(-z, rel=1e-10) and rev.pvalue == pytest.approx(p, rel=1e-10)


@pytest.mark.parametrize("marker, ci, best", [
    # sprintf("%.15g", ci.auc(roc(aSAH$outcome, aSAH$<marker>), method="delong")); coords(r, "best")
    ("wfns", (0.823678861788618, 0.748534887819453, 0.898822835757783), (3.5, 0.634146341463415, 0.833333333333333)),
    ("s100b", (0.731368563685637, 0.630118211761623, 0.832618915609651), (0.205, 0.634146341463415, 0.805555555555556)),
    ("ndka", (0.611957994579946, 0.501244999271703, 0.722670989888189), (11.08, 0.707317073170732, 0.513888888888889)),
])
def test_auc_ci_and_youden_on_asah(marker, ci, best):
    x = {"wfns": ASAH_WFNS, "s100b": ASAH_S100B, "ndka": ASAH_NDKA}[marker]
    assert S.auc_ci(ASAH_OUTCOME, x) == pytest.approx(ci, rel=1e-12)
    pt = S.youden_point(ASAH_OUTCOME, x)
    assert (pt.threshold, pt.sensitivity, pt.specificity) == pytest.approx(best, rel=1e-12)
    assert S.youden_threshold(ASAH_OUTCOME, x) == pytest.approx(best[0], rel=1e-12)


def test_youden_ties_listed_lowest_returned():
    # coords(roc(y, a, direction="<"), "best", best.method="youden") -> 0.150, 0.375, 0.850
    pt = S.youden_point(Y12, A12)
    assert pt.tied_thresholds == pytest.approx((0.15, 0.375, 0.85))
    assert pt.threshold == pytest.approx(0.15)


def test_perfect_separation_roc():
    y, s = [0, 0, 0, 1, 1, 1], [1, 2, 3, 4, 5, 6]
    # ci.auc(...) = 1 1 1 ; coords(..., "best") threshold 3.5
    assert tuple(S.auc_ci(y, s)) == (1.0, 1.0, 1.0)
    assert S.youden_threshold(y, s) == 3.5
    yp = (np.array(s) >= 3.5).astype(int)
    m = S.classification_metrics(y, yp)
    assert m.percent() == {"acc": 100.0, "sen": 100.0, "spe": 100.0, "ppv": 100.0, "npv": 100.0}


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 5), st.integers(0, 5)), min_size=6, max_size=40))
def test_property_fast_delong_equals_naive_placements(rows):
    y = np.array([r[0] for r in rows])
    a = np.array([r[1] for r in rows], float)
    b = np.array([r[2] for r in rows], float)
    if min(y.sum(), (1 - y).sum()) < 2:
        return

    def naive(s):
        cases, controls = s[y == 1], s[y == 0]
        psi = (cases[:, None] > controls[None, :]) + 0.5 * (cases[:, None] == controls[None, :])
        return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)

    ta, xa, ya = naive(a)
    tb, xb, yb = naive(b)
    m, n = xa.size, ya.size
    var = np.var(xa - xb, ddof=1) / m + np.var(ya - yb, ddof=1) / n
    res = S.delong_test(y, a, b)
    assert res.auc_a == pytest.approx(ta) and res.auc_b == pytest.approx(tb)
    if var > 1e-15:
        assert res.statistic == pytest.approx((ta - tb) / math.sqrt(var), rel=1e-9, abs=1e-12)


def test_single_case_interval_undefined():
    # pROC: ci.auc(roc(c(0,0,0,1), c(.1,.4,.2,.3), direction="<"), method="delong") -> NA NA NA
    ci = S.auc_ci([0, 0, 0, 1], [.1, .4, .2, .3])
    assert ci.auc == pytest.approx(2 / 3) and math.isnan(ci.lower) and math.isnan(ci.upper)
    res = S.delong_test([0, 0, 0, 1], [.1, .4, .2, .3], [.3, .1, .2, .4])
    assert math.isnan(res.pvalue) and "two cases" in res.undefined


def test_roc_needs_both_classes():
    with pytest.raises(DlrcError, match="both classes"):
        S.auc_ci([1, 1, 1], [0.1, 0.2, 0.3])


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(-5, 5)), min_size=4, max_size=40))
def test_property_auc_of_negated_score(pairs):
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs], dtype=float)
    if y.min() == y.max():
        return
    assert S.auc_ci(y, -s).auc == pytest.approx(1 - S.auc_ci(y, s).auc, abs=1e-12)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 1), st.floats(-10, 10)), min_size=6, max_size=40))
def test_property_delong_self_is_undefined(pairs):
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs])
    if min(y.sum(), (1 - y).sum()) < 2:
        return
    res = S.delong_test(y, s, s)
    assert math.isnan(res.statistic) and math.isnan(res.pvalue)
    assert res.undefined and "undefined" in res.undefined


# ------------------------------------------------------------------ classification metrics
def _implied():
    for model, cohorts in PUBLISHED["implied_confusion"].items():
        for cohort, subsets in cohorts.items():
            for subset, counts in subsets.items():
                yield model, cohort, subset, counts


@pytest.mark.parametrize("model, cohort, subset, counts", list(_implied()))
def test_tables_2_and_5_metrics_from_implied_counts(model, cohort, subset, counts):
    tp, fn, tn, fp = counts
    m = S.metrics_from_counts(tp, fn, tn, fp)
    if subset == "all":
        printed = PUBLISHED["table2"][cohort][model]
    else:
        printed = PUBLISHED["table5"][subset][cohort][model]
    got = m.percent(1)
    for key in ("acc", "sen", "spe", "ppv", "npv"):
        assert got[key] == printed[key], (model, cohort, subset, key, got[key], printed[key])


def test_undefined_ratio_is_flagged_not_zero():
    m = S.metrics_from_counts(tp=40, fn=0, tn=0, fp=8)
    assert m.npv.undefined and math.isnan(m.npv.estimate) and m.percent()["npv"] is None
    frame = m.to_frame().set_index("metric")
    assert not frame.loc["NPV", "defined"] and frame.loc["SPE", "defined"]


def test_wilson_interval_matches_prop_test():
    # prop.test(7, 20, correct=FALSE)$conf.int
    ci = S.wilson_ci(7, 20)
    assert (ci.lower, ci.upper) == pytest.approx((0.181191824101082, 0.567145723314764), rel=1e-9)
    # prop.test(0, 10, correct=FALSE)$conf.int = 0 0.277532799862889; (10, 10): 0.722467200137111 1
    assert tuple(S.wilson_ci(0, 10)[1:3]) == pytest.approx((0.0, 0.277532799862889), abs=1e-12)
    assert tuple(S.wilson_ci(10, 10)[1:3]) == pytest.approx((0.722467200137111, 1.0), abs=1e-12)


# ------------------------------------------------------------------ ICC
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
TWO_READERS = np.array([[1.2, 1.0], [3.4, 3.9], [2.2, 2.0], [5.1, 4.8], [4.4, 4.9], [0.3, 0.1], [2.9, 3.3]])


@pytest.mark.parametrize("x, form, expected", [
    # psych::ICC(x, lmer=FALSE)$results rows Single_random_raters / Single_fixed_raters:
    # ICC, F, p, lower bound, upper bound
    (SHROUT_FLEISS, "ICC(2,1)", (0.289763779527559, 11.02724795640327, 0.000134566516484337, 0.0187865133747120, 0.761084369648953)),
    (SHROUT_FLEISS, "ICC(3,1)", (0.714840714840715, 11.02724795640327, 0.000134566516484337, 0.3424647650339254, 0.945858259955360)),
    (TWO_READERS, "ICC(2,1)", (0.980538364029528, 91.0684931506851, 1.26056211221289e-05, 0.897547693690567, 0.996596914260545)),
    (TWO_READERS, "ICC(3,1)", (0.978277042106829, 91.0684931506851, 1.26056211221289e-05, 0.879866617568177, 0.996233496562476)),
])
def test_icc_matches_psych(x, form, expected):
    r = S.icc(x, form, estimator="anova")
    assert (r.icc, r.F, r.pvalue, r.lower, r.upper) == pytest.approx(expected, rel=1e-9)
    assert S.icc_many(x[None], form, estimator="anova")[0] == pytest.approx(expected[0], rel=1e-12)


def test_icc_default_matches_psych_lmer():
    # psych::ICC(TWO_READERS)$results$ICC (default lmer=TRUE; the raters' variance component
    # is estimated negative by ANOVA and set to 0 by REML): Single_random_raters
    # 0.980560778587627 (lmer's optimiser tolerance ~1e-7)
    assert S.icc(TWO_READERS).icc == pytest.approx(0.980560778587627, abs=1e-6)
    assert S.icc_many(TWO_READERS[None])[0] == pytest.approx(0.980560778587627, abs=1e-6)
    # Shrout & Fleiss data have no negative component: REML = ANOVA
    assert S.icc(SHROUT_FLEISS).icc == pytest.approx(0.289763779527559, rel=1e-12)


def test_icc_many_matches_single_and_handles_missing():
    rng = np.random.default_rng(1)
    R = rng.normal(size=(50, 12, 2)) + rng.normal(size=(50, 12, 1)) * 2
    R[3, 4, 1] = np.nan
    many = S.icc_many(R)
    single = [S.icc(R[i]).icc for i in range(50)]
    assert many == pytest.approx(single, rel=1e-12)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=30, unique=True))
def test_property_icc_identical_raters_is_one(values):
    x = np.column_stack([values, values])
    for form in ("ICC(2,1)", "ICC(3,1)"):
        assert S.icc(x, form).icc == pytest.approx(1.0, abs=1e-12)
        assert S.icc_many(x[None], form)[0] == pytest.approx(1.0, abs=1e-12)


# ------------------------------------------------------------------ calibration
def test_hosmer_lemeshow_matches_hoslem_test():
    # ResourceSelection::hoslem.test(Y, P, g=10) -> X-squared 8.00127044997536, p 0.433346028339296
    hl = S.hosmer_lemeshow(HL_Y, HL_P, 10)
    assert (hl.statistic, hl.df, hl.pvalue) == pytest.approx((8.00127044997536, 8, 0.433346028339296), rel=1e-10)
    # g = 5 -> 2.76866814131469, p 0.428683703629984 (df = 3)
    hl5 = S.hosmer_lemeshow(HL_Y, HL_P, 5)
    assert (hl5.statistic, hl5.df, hl5.pvalue) == pytest.approx((2.76866814131469, 3, 0.428683703629984), rel=1e-10)
    assert hl.table["n"].sum() == len(HL_Y)


def test_hosmer_lemeshow_tied_probabilities_like_r():
    # Heavily tied probabilities: unique() leaves 7 breaks, one interval is empty and
    # hoslem.test returns NaN (0/0) - reported as such, not hidden
    p = [0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.2, 0.3, 0.3, 0.5, 0.5, 0.5, 0.5, 0.5, 0.7, 0.7, 0.8, 0.9, 0.9, 0.9]
    y = [0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 0, 1]
    hl = S.hosmer_lemeshow(y, p)
    assert math.isnan(hl.statistic) and math.isnan(hl.pvalue)
    assert len(hl.table) == 6 and (hl.table["n"] == 0).sum() == 1


def test_calibration_matches_val_prob():
    # rms::val.prob(P, Y, pl=FALSE)[c("Intercept","Slope","Brier","C (ROC)")]
    c = S.calibration_curve(HL_Y, HL_P)
    assert c.intercept == pytest.approx(0.0280766510538773, abs=1e-7)
    assert c.slope == pytest.approx(1.030310383038, abs=1e-7)
    assert c.brier == pytest.approx(0.206553333333333, rel=1e-12)
    assert c.c_index == pytest.approx(0.738042269187987, abs=2e-4)  # rms bins predictions for C
    assert c.groups["n"].sum() == len(HL_Y)
    assert ((c.groups["lower"] <= c.groups["observed"]) & (c.groups["observed"] <= c.groups["upper"])).all()


def test_net_benefit_formula_and_references():
    y = np.array([1, 0, 1, 0, 0, 1, 0, 0, 1, 0])
    p = np.array([.9, .8, .7, .6, .5, .4, .3, .2, .1, .05])
    nb = S.net_benefit(y, p, [0.0, 0.25, 0.5, 0.7])
    # pt = 0.25: 7 treated, TP 3, FP 4; pt = 0.5: 5 treated, TP 2, FP 3; pt = 0.7: TP 2, FP 1
    assert nb["net_benefit"].tolist() == pytest.approx([0.4, 0.3 - 0.4 / 3, 0.2 - 0.3, 0.2 - 0.1 * 0.7 / 0.3])
    assert nb["treat_all"].tolist() == pytest.approx([0.4 - 0.6 * t / (1 - t) for t in (0, .25, .5, .7)])
    assert (nb["treat_none"] == 0).all()
    # dcurves: a probability of exactly 0 is never treated, even at pt = 0
    nb0 = S.net_benefit([1, 0, 0], [0.5, 0.0, 0.2], [0.0])
    assert nb0["tp"].tolist() == [1] and nb0["fp"].tolist() == [1]


# ------------------------------------------------------------------ logistic / stepAIC
def _step_data():
    X = np.array(STEP_X).reshape(5, 80).T
    return pd.DataFrame(X, columns=[f"X{i}" for i in range(1, 6)]), np.array(STEP_Y)


def test_logistic_glm_matches_r():
    X, y = _step_data()
    fit = S.logistic_glm(X, y)
    # coef(glm(y ~ ., binomial, df)); deviance; AIC
    assert fit.coef == pytest.approx([-0.459446516754753, 1.50176634557555, -0.692473705793505,
                                      0.104833306694124, 0.482871262657054, 0.433684287132703], rel=1e-8)
    assert fit.deviance == pytest.approx(77.677621363541, rel=1e-10)
    assert fit.aic == pytest.approx(89.677621363541, rel=1e-10)


def test_logistic_glm_results_read_like_statsmodels():
    # the same fit through statsmodels' Logit: params, bse, pvalues and conf_int agree, by name
    sm = pytest.importorskip("statsmodels.api")
    X, y = _step_data()
    fit = S.logistic_glm(X, y)
    ref = sm.Logit(y, sm.add_constant(X).rename(columns={"const": "(Intercept)"})).fit(disp=0, tol=1e-12)
    assert list(fit.params.index) == ["(Intercept)", "X1", "X2", "X3", "X4", "X5"]
    pd.testing.assert_series_equal(fit.params, ref.params, rtol=1e-7, check_names=False)
    pd.testing.assert_series_equal(fit.bse, ref.bse, rtol=1e-6, check_names=False)
    pd.testing.assert_series_equal(fit.pvalues, ref.pvalues, rtol=1e-6, check_names=False)
    np.testing.assert_allclose(fit.conf_int().to_numpy(), ref.conf_int().to_numpy(), rtol=1e-6, atol=1e-7)
    table = fit.summary_frame()
    assert table.columns.tolist() == ["term", "coef", "se", "z", "p", "coef_lower", "coef_upper",
                                      "OR", "OR_lower", "OR_upper"]
    np.testing.assert_allclose(table["OR_upper"], np.exp(ref.conf_int()[1]), rtol=1e-6)


def test_backward_aic_matches_stepaic():
    X, y = _step_data()
    res = S.backward_aic(X, y)
    # stepAIC(glm(y ~ ., binomial, df), direction="backward") keeps X1 X2 X4 X5, AIC 87.8025115407943
    assert res.selected == ["X1", "X2", "X4", "X5"]
    assert res.aic == pytest.approx(87.8025115407943, rel=1e-10)
    assert res.coef.to_numpy() == pytest.approx([-0.460148908956802, 1.5214228783352, -0.693762553093219,
                                                 0.481033532352575, 0.410279285002293], rel=1e-8)
    assert list(res) == res.selected and not res.separation


def test_stepwise_both_directions_ends_at_a_local_aic_minimum():
    X, y = _step_data()
    both = S.backward_aic(X, y, direction="both")
    # from the full model no dropped term lowers the AIC again: same model as backward
    assert both.selected == ["X1", "X2", "X4", "X5"] and "added" in both.path.columns
    rng = np.random.default_rng(7)
    Z = pd.DataFrame(rng.normal(size=(90, 5)), columns=list("abcde"))
    yy = (rng.random(90) < 1 / (1 + np.exp(-(Z["a"] - 0.5 * Z["b"])))).astype(int)
    res = S.backward_aic(Z, yy, direction="both")

    def aic(cols):
        return S.logistic_glm(Z[cols], yy).aic if cols else S.logistic_glm(np.ones((90, 0)), yy).aic

    # no single drop or addition improves on the chosen model
    for c in Z.columns:
        other = [k for k in res.selected if k != c] if c in res.selected else res.selected + [c]
        assert aic(other) >= res.aic - 1e-7
    with pytest.raises(DlrcError, match="direction"):
        S.backward_aic(Z, yy, direction="forward")


def test_backward_aic_under_perfect_separation():
    xs = [-2.1, -1.3, -0.7, -0.2, 0.4, 0.9, 1.5, 2.2]
    z = [0.5, -0.3, 0.8, 0.1, -0.6, 0.2, 0.9, -0.4]
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    X = pd.DataFrame({"xs": xs, "z": z})
    # glm(ys ~ xs + z): deviance 2.3e-10, AIC 6.00000000023235; stepAIC keeps xs
    fit = S.logistic_glm(X, y)
    assert fit.aic == pytest.approx(6.0, abs=1e-6) and fit.boundary_fitted
    res = S.backward_aic(X, y)
    assert res.selected == ["xs"] and res.separation and res.warnings


def test_backward_aic_collinear_term_dropped_first():
    rng = np.random.default_rng(4)
    X = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    X["d"] = X["a"] + X["b"]
    y = (rng.random(120) < 1 / (1 + np.exp(-(X["a"] - X["b"])))).astype(int)
    res = S.backward_aic(X, y)
    assert res.path["removed"].iloc[1] == "d"


# ------------------------------------------------------------------ continuous comparisons
def test_compare_continuous_matches_r():
    a = [53, 43, 59, 61, 48, 52, 50, 49, 57, 66, 41]
    b = [52, 44, 59, 70, 71, 68, 80, 49]
    # shapiro.test(c(a,b)) p = 0.4536 -> normal; compareGroups then runs
    # t.test(x ~ g, var.equal = TRUE) (its default): p = 0.0687164285826436
    res = S.compare_continuous(a, b)
    assert res.pvalue == pytest.approx(0.0687164285826436, rel=1e-10) and res.method == "t-test"
    # var.equal = FALSE (Welch): t.test(x ~ g) p = 0.100519891196553
    res = S.compare_continuous(a, b, var_equal=False)
    assert res.pvalue == pytest.approx(0.100519891196553, rel=1e-10) and res.method == "Welch t-test"
    # kruskal.test p = 0.10690051705186
    res = S.compare_continuous(a, b, method="nonnormal")
    assert res.pvalue == pytest.approx(0.10690051705186, rel=1e-10) and res.method == "Kruskal-Wallis test"


def test_quantile7_matches_r():
    # quantile(c(50,49,52,53,55,48,51,52.5), c(.5,.25,.75)) = 51.5 49.75 52.625
    assert S.quantile7([50, 49, 52, 53, 55, 48, 51, 52.5], [.5, .25, .75]).tolist() == [51.5, 49.75, 52.625]


def test_format_p():
    assert S.format_p(0.0004) == "<0.001" and S.format_p(0.0191) == 0.019


# ------------------------------------------------------------------ performance
def test_vectorised_speed():
    import time

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2000))
    y = rng.integers(0, 2, 300)
    t = time.perf_counter()
    S.mann_whitney_pvalues(X, y)
    assert time.perf_counter() - t < 2.0
    R = rng.normal(size=(3000, 30, 2))
    t = time.perf_counter()
    S.icc_many(R)
    assert time.perf_counter() - t < 1.0

@pytest.mark.slow
def test_performance_targets_full_size():
    """The issue's targets: Mann-Whitney over 10,000 features x 1,000 patients < 2 s;
    ICC over thousands of features x 30 cases well under 1 s."""
    import time

    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 10000))
    y = rng.integers(0, 2, 1000)
    t = time.perf_counter()
    S.mann_whitney_pvalues(X, y)
    assert time.perf_counter() - t < 2.0
    R = rng.normal(size=(5000, 30, 2))
    t = time.perf_counter()
    S.icc_many(R)
    assert time.perf_counter() - t < 0.5


# ------------------------------------------------------------------ reference data
# pROC's data(aSAH): outcome (Poor = 1), wfns (as integer), s100b, ndka.
# STEP_X (80 x 5, column-major) and STEP_Y: set.seed(7); X <- matrix(round(rnorm(400), 3), 80);
#   y <- rbinom(80, 1, plogis(1.2*X[,1] - 0.8*X[,2] + 0.3*X[,4])).
# HL_P and HL_Y: set.seed(3); p <- round(plogis(rnorm(60)), 2); y <- rbinom(60, 1, p).
ASAH_OUTCOME = [0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0,
    0, 0, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0,
    0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0]
ASAH_WFNS = [1, 1, 1, 1, 3, 2, 5, 4, 1, 2, 5, 2, 5, 5, 1, 2, 5, 2, 2, 5, 2, 1, 1, 1, 1, 2, 1,
    2, 1, 1, 3, 4, 2, 1, 4, 5, 4, 1, 4, 2, 5, 5, 1, 1, 2, 4, 1, 1, 2, 5, 5, 2, 1, 2, 5, 1, 2,
    2, 2, 1, 5, 1, 1, 2, 5, 2, 1, 4, 5, 2, 4, 4, 1, 4, 1, 2, 1, 4, 2, 1, 2, 3, 2, 4, 2, 1, 4,
    5, 1, 1, 5, 4, 2, 2, 1, 1, 1, 3, 1, 2, 5, 2, 2, 5, 5, 5, 2, 4, 4, 5, 1, 1, 1]
ASAH_S100B = [0.13, 0.14, 0.1, 0.04, 0.13, 0.1, 0.47, 0.16, 0.18, 0.1, 0.12, 0.1, 0.44, 0.71,
    0.04, 0.08, 0.49, 0.04, 0.07, 0.33, 0.09, 0.09, 0.07, 0.11, 0.07, 0.17, 0.07, 0.11, 0.13,
    0.19, 0.05, 0.16, 0.41, 0.14, 0.34, 0.35, 0.48, 0.09, 0.96, 0.25, 0.5, 0.46, 0.16, 0.07,
    0.43, 0.45, 0.11, 0.08, 0.09, 0.86, 0.52, 0.08, 0.06, 0.13, 2.07, 0.1, 0.14, 0.15, 0.07,
    0.06, 0.77, 0.05, 0.09, 0.3, 0.03, 0.09, 0.04, 0.23, 0.7, 0.09, 0.27, 0.71, 0.08, 0.26,
    0.08, 0.16, 0.09, 0.13, 0.1, 0.08, 0.11, 0.33, 0.11, 0.28, 0.07, 0.1, 0.32, 0.22, 0.07,
    0.05, 0.24, 0.38, 0.1, 0.15, 0.08, 0.14, 0.1, 0.07, 0.04, 0.19, 0.56, 0.14, 0.58, 0.32,
    0.82, 0.74, 0.15, 0.47, 0.17, 0.44, 0.15, 0.5, 0.48]
ASAH_NDKA = [3.01, 8.54, 8.09, 10.42, 17.4, 12.75, 6, 13.2, 15.54, 6.01, 15.96, 17.86, 5.18,
    8.9, 13.41, 20.75, 11.6, 16.11, 32.37, 54.82, 32.41, 49.94, 40.34, 9.47, 6.29, 12.53, 6.54,
    6.3, 80.3, 12.8, 9.8, 9.81, 9.85, 18.21, 5.03, 14.04, 21.93, 8.02, 7.42, 8.38, 6.59, 9.63,
    13.12, 7.96, 14.34, 41.43, 7.63, 7.06, 12.59, 13.56, 3.87, 9.44, 7.66, 12.98, 419.19,
    27.19, 22.27, 9.95, 21.22, 11.73, 10.4, 58.83, 6.39, 11.09, 12.22, 13.67, 17.21, 22.63,
    12.9, 9.7, 21.57, 8.23, 72.57, 15.54, 10.51, 10.6, 14.57, 5.19, 9.63, 4.61, 21.48, 17.3,
    12.71, 9.44, 11.07, 19.46, 10.83, 5.37, 11.97, 7.75, 9.83, 10.55, 28.49, 8.53, 12.57, 12.9,
    46.83, 11.68, 12.67, 9.01, 9.57, 34.06, 11.72, 14.26, 47.61, 11.67, 24.58, 10.33, 13.87,
    15.89, 22.43, 6.79, 13.45]
HL_P = [0.28, 0.43, 0.56, 0.24, 0.55, 0.51, 0.52, 0.75, 0.23, 0.78, 0.32, 0.24, 0.33, 0.56,
    0.54, 0.42, 0.28, 0.34, 0.77, 0.55, 0.36, 0.28, 0.45, 0.16, 0.38, 0.32, 0.76, 0.73, 0.48,
    0.24, 0.71, 0.7, 0.67, 0.68, 0.41, 0.67, 0.79, 0.51, 0.27, 0.69, 0.69, 0.42, 0.85, 0.31,
    0.59, 0.09, 0.46, 0.76, 0.39, 0.29, 0.67, 0.31, 0.57, 0.15, 0.2, 0.39, 0.26, 0.8, 0.71,
    0.31]
HL_Y = [0, 1, 0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 1,
    0, 0, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 1,
    0]
STEP_X = [2.287, -1.197, -0.694, -0.412, -0.971, -0.947, 0.748, -0.117, 0.153, 2.19, 0.357,
    2.717, 2.281, 0.324, 1.896, 0.468, -0.894, -0.307, -0.005, 0.988, 0.84, 0.705, 1.306,
    -1.388, 1.273, 0.184, 0.752, 0.592, -0.983, -0.276, -0.871, 0.719, 0.111, -0.078, -0.42,
    -0.562, 0.998, -1.105, -0.142, 0.315, 1.219, -0.699, -0.285, -1.312, -0.391, -0.402, 1.351,
    0.591, 0.101, 0.931, -0.263, -0.008, 0.367, 1.707, 0.724, 0.481, -1.568, 0.318, 0.166,
    -0.9, 0.076, 0.159, 0.544, 0.705, 0.319, 1.109, 0.769, 1.153, 1.261, 0.701, 0.433, -0.923,
    -0.616, -0.867, -1.64, -1.326, -0.889, -0.558, -0.062, 2.423, 0.343, 0.004, 0.029, -0.393,
    -0.793, -0.312, -0.346, -0.305, -1.786, 0.587, 1.636, -0.645, 0.619, 0.236, 0.847, -0.574,
    1.118, -1.54, -0.438, -0.151, 0.519, 0.588, -0.079, -1.174, 0.309, -1.604, 0.991, 1.023,
    0.84, 0.12, -0.426, 0.459, 0.645, 0.612, -0.889, 1.544, -1.242, 1.103, 0.983, 0.304,
    -1.555, 1.57, 0.688, -0.178, 0.729, 1.533, 0.507, 0.033, -1.468, 1.019, -0.593, 0.812,
    0.866, 0.368, 1.135, -0.757, 0.445, 0.916, 0.27, 1.008, -1.461, -0.875, 0.165, 0.207,
    0.482, -0.072, -0.889, 0.486, 0.34, -1.098, -0.356, 1.097, -0.907, -0.207, 0.679, -0.798,
    -1.592, 1.18, 1.223, -0.011, 0.346, 0.094, 0.007, 0.743, 1.042, -0.319, 0.323, 0.685, 0.32,
    -1.915, -2.34, 0.483, 1.179, -1.293, 0.616, 0.256, 0.728, 1.324, 0.147, -0.599, 2.193,
    2.327, 1.135, -0.191, 0.475, -0.545, 1.056, 0.429, -1.82, -0.692, -1.932, 1.21, -0.279,
    -1.096, -0.102, 0.357, -0.882, -0.057, -0.581, 0.644, 2.023, 0.862, -0.025, 0.601, 1.216,
    -1.177, -0.609, 0.387, -1.399, 1.232, 0.016, -1.621, -0.665, -0.575, -0.902, 1.492, -0.137,
    0.108, -1.035, -0.445, -0.196, -1.269, 0.954, 0.473, -0.559, 1.242, -0.015, -0.792, -0.402,
    -1.897, 0.972, -0.514, 0.015, -0.261, 1.522, -1.473, -0.017, 0.025, -0.001, -0.434, -0.406,
    0.155, -0.972, 1.548, -0.37, 1.962, -0.61, -0.077, -1.829, 0.806, -1.478, -2.973, -1.34,
    -0.266, -0.384, -0.603, -0.652, 1.758, -0.019, 0.155, -0.761, -1.55, 2.75, 1.047, 0.918,
    0.47, -0.617, 0.042, -0.902, 1.34, 0.804, 0.318, -0.19, -1.087, 0.145, 2.463, 0.924, 0.742,
    1.416, 1.252, 2.109, 0.71, -1.475, -0.59, 0.14, -0.512, 0.151, 0.442, -0.162, 0.972,
    -0.671, 1.638, -1.068, -0.011, -1.865, 0.018, -0.247, -0.919, -2.173, -0.649, 0.525,
    -0.276, 0.055, -0.388, -0.417, -1.164, 1.738, -0.254, -0.974, 1.111, 0.973, 1.257, 1.776,
    -2.683, 0.66, 1.179, 0.394, -1.19, -0.357, -1.466, -1.091, -0.657, 2.263, 0.088, 0.768,
    -0.613, 0.153, -0.592, -0.961, -0.585, 0.657, -0.29, 0.904, 0.199, -0.052, -0.908, -1.142,
    0.99, 0.112, 1.15, -0.91, -1.104, -1.635, -1.616, -0.837, 1.093, 1.235, 0.172, 0.12, 0.558,
    0.491, -0.069, -1.351, 0.799, -0.32, -0.357, -0.511, -1.879, -0.952, 2.273, 0.203, -2.309,
    -0.057, 0.063, 0.71, -0.592, 0.299, 0.643, 2.113, 0.918, -1.573, 0.993, 0.48, -0.297,
    0.816, -1, 0.549, 0.28, 0.917, -1.731, -1.48, 2.23, 0.386, 0.66, -0.276, 0.276, -2.274,
    0.908, -1.086, -0.216, -0.733, 0.212, -0.939, -0.619, 0.244, 0.372, 0.627, -1.073, -0.709,
    0.907]
STEP_Y = [1, 0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1,
    0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0,
    1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1]

