"""Tests of contingency tables as R: ``chisq.test`` and ``fisher.test`` (any R x C), and compareGroups' choice between them; two-group comparisons of continuous variables."""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import special
from scipy import stats as sps

from dlrc_lib.core.errors import DlrcError


class TestResult(NamedTuple):
    pvalue: float
    method: str


_FISHER_RELERR = 1 + 1e-7  # R fisher.test: tables with prob <= p_obs * (1 + 1e-7) count


def chisq_test(table, correct: bool = True) -> tuple[float, float, int, np.ndarray]:
    """Pearson chi-square as ``chisq.test(table, correct=correct)``: Yates' correction
    ``min(0.5, |x - E|)`` on 2x2 only. Returns (statistic, pvalue, df, expected)."""
    x = np.asarray(table, dtype=float)
    n = x.sum()
    E = np.outer(x.sum(axis=1), x.sum(axis=0)) / n
    if correct and x.shape == (2, 2):
        yates = min(0.5, float(np.min(np.abs(x - E))))
    else:
        yates = 0.0
    stat = float(np.sum((np.abs(x - E) - yates) ** 2 / E))
    df = (x.shape[0] - 1) * (x.shape[1] - 1)
    return stat, float(sps.chi2.sf(stat, df)), df, E


def fisher_exact(table) -> float:
    """Two-sided Fisher exact p-value for any R x C table, as R ``fisher.test(table)``.

    Sums the probabilities of all tables with the observed margins whose probability is
    at most the observed one times (1 + 1e-7) (R's relative tolerance). Exact network
    enumeration (:class:`_FisherNetwork`): tables are built row by row; partial tables
    reaching the same remaining column margins with the same probability are merged, and
    subtrees whose every completion is (or none is) as extreme as the observed table are
    summed in closed form. Unlike R's FEXACT it needs no workspace setting: tables for which
    R's default ``workspace`` stops with "FEXACT error 7" get the exact p-value that R gives
    with a larger workspace.
    """
    t = np.asarray(table, dtype=np.int64)
    if t.ndim != 2 or (t < 0).any():
        raise DlrcError(f"contingency table: expected a 2-D table of non-negative counts, got {t.tolist()}")
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    if min(t.shape) < 2:
        return 1.0
    if t.shape[1] > t.shape[0]:
        t = t.T
    return _FisherNetwork(t).pvalue()


class _FisherNetwork:
    """The network algorithm behind :func:`fisher_exact` for one table (rows >= columns).

    Values are log-kernels ``-sum log x_ij!``; a table is as extreme as the observed one when
    its kernel is at most the observed kernel plus log(1 + 1e-7).
    """

    def __init__(self, t: np.ndarray):
        self.rows = np.sort(t.sum(axis=1))  # smallest rows first; the largest one is determined last
        self.cols = t.sum(axis=0)
        n = int(t.sum())
        self.lf = special.gammaln(np.arange(n + 2) + 1.0)
        self.const = float(np.sum(self.lf[self.rows]) + np.sum(self.lf[self.cols]) - self.lf[n])
        self.thr = -float(np.sum(self.lf[t])) + math.log(_FISHER_RELERR)
        self.suffix_n = np.concatenate([np.cumsum(self.rows[::-1])[::-1], [0]])
        self._bounds: dict = {}
        self._compositions: dict = {}

    def even_max(self, total: int, caps: np.ndarray) -> float:
        """max of -sum log x_j! s.t. sum x = total, 0 <= x <= caps (even water-filling)."""
        lf = self.lf
        caps = np.sort(caps)
        rem, m, val = total, caps.size, 0.0
        for i, c in enumerate(caps):
            share = rem // (m - i)
            if c <= share:
                val -= lf[c]
                rem -= c
            else:
                q, r = divmod(rem, m - i)
                val -= (m - i - r) * lf[q] + r * lf[q + 1]
                rem = 0
                break
        return val

    def greedy_min(self, total: int, caps: np.ndarray) -> float:
        """min of -sum log x_j! under the same constraints (fill the largest caps first)."""
        val, rem = 0.0, total
        for c in np.sort(caps)[::-1]:
            x = min(c, rem)
            val -= self.lf[x]
            rem -= x
            if rem == 0:
                break
        return val

    def bounds(self, i: int, m: tuple) -> tuple[float, float, float]:
        """(upper, lower bound of the remaining kernel, log of the sum of its exponentials)
        for the tables completing rows ``i..`` with remaining column margins ``m``."""
        key = (i, m)
        hit = self._bounds.get(key)
        if hit is not None:
            return hit
        lf, marr, rr = self.lf, np.asarray(m), self.rows[i:]
        up_r = sum(self.even_max(int(r), marr) for r in rr)
        up_c = sum(self.even_max(int(c), rr) for c in marr)
        lo_r = sum(self.greedy_min(int(r), marr) for r in rr)
        lo_c = sum(self.greedy_min(int(c), rr) for c in marr)
        total = float(lf[self.suffix_n[i]] - np.sum(lf[rr]) - np.sum(lf[marr]))  # log sum of exp(K)
        out = (min(up_r, up_c), max(lo_r, lo_c), total)
        self._bounds[key] = out
        return out

    def compositions(self, total: int, caps: tuple) -> np.ndarray:
        """All vectors x with sum total, 0 <= x_j <= caps_j, as an (n, len(caps)) array."""
        key = (total, caps)
        hit = self._compositions.get(key)
        if hit is not None:
            return hit
        if len(caps) == 1:
            out = np.array([[total]], dtype=np.int64) if total <= caps[0] else np.zeros((0, 1), np.int64)
        else:
            rest = sum(caps[1:])
            parts = []
            for x0 in range(max(0, total - rest), min(caps[0], total) + 1):
                tail = self.compositions(total - x0, caps[1:])
                if tail.shape[0]:
                    parts.append(np.column_stack([np.full(tail.shape[0], x0, np.int64), tail]))
            out = np.concatenate(parts) if parts else np.zeros((0, len(caps)), np.int64)
        self._compositions[key] = out
        return out

    def pvalue(self) -> float:
        lf, rows, const, thr = self.lf, self.rows, self.const, self.thr
        R, C = rows.size, self.cols.size
        pvalue = 0.0
        # level state: remaining column margins (sorted, descending), past log-kernel, multiplicity
        M = np.sort(self.cols)[::-1][None, :].astype(np.int64)
        V = np.zeros(1)
        W = np.ones(1)
        for i in range(R - 1):
            # merge partial tables with the same remaining margins and the same past value
            keys = np.column_stack([M, np.round(V / 1e-9).astype(np.int64)])
            uk, first, inv = np.unique(keys, axis=0, return_index=True, return_inverse=True)
            inv = inv.ravel()
            W = np.bincount(inv, weights=W)
            V = V[first]
            M = uk[:, :C]
            node_keys, node_start = np.unique(M, axis=0, return_index=True)
            bounds_idx = np.r_[node_start, M.shape[0]]
            new_m, new_v, new_w = [], [], []
            r = int(rows[i])
            for g in range(node_keys.shape[0]):
                sl = slice(bounds_idx[g], bounds_idx[g + 1])
                m = tuple(int(v) for v in node_keys[g])
                v, w = V[sl], W[sl]
                up, lo, tot = self.bounds(i, m)
                every = v + up <= thr
                if every.any():
                    pvalue += float(np.sum(w[every] * np.exp(const + v[every] + tot)))
                keep = ~every & (v + lo <= thr)
                if not keep.any():
                    continue
                v, w = v[keep], w[keep]
                X = self.compositions(r, m)
                kx = -lf[X].sum(axis=1)
                children = np.asarray(m, dtype=np.int64)[None, :] - X
                if i == R - 2:
                    # the last row is determined by the remaining margins
                    ktot = kx - lf[children].sum(axis=1)
                    vals = v[None, :] + ktot[:, None]
                    hit = vals <= thr
                    if hit.any():
                        pvalue += float(np.sum((np.exp(const + vals) * w[None, :])[hit]))
                    continue
                children = np.sort(children, axis=1)[:, ::-1]
                new_m.append(np.repeat(children, v.size, axis=0))
                new_v.append((kx[:, None] + v[None, :]).ravel())
                new_w.append(np.tile(w, X.shape[0]))
            if i == R - 2 or not new_m:
                break
            M = np.concatenate(new_m)
            V = np.concatenate(new_v)
            W = np.concatenate(new_w)
        return float(min(1.0, pvalue))


def compare_categorical(table) -> TestResult:
    """p-value of a groups x levels count table by R compareGroups' rule.

    Empty rows and columns are dropped; if any expected count is below 5, Fisher's exact
    test (R ``fisher.test``, any R x C); otherwise Pearson's chi-square (``chisq.test``,
    Yates' continuity correction on 2x2). Returns ``(pvalue, method)`` with method
    "Fisher's exact test" or "Chi-squared test".
    """
    t = np.asarray(table)
    if t.ndim != 2:
        raise DlrcError(f"contingency table: expected 2-D counts, got shape {t.shape}")
    t = np.asarray(t, dtype=float)
    if (t < 0).any() or not np.all(np.equal(np.round(t), t)):
        raise DlrcError(f"contingency table: counts must be non-negative integers, got {t.tolist()}")
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0].astype(np.int64)
    if min(t.shape) < 2:
        return TestResult(float("nan"), "not testable (fewer than two non-empty rows/columns)")
    _, p, _, E = chisq_test(t, correct=True)
    if (E < 5).any():
        return TestResult(fisher_exact(t), "Fisher's exact test")
    return TestResult(p, "Chi-squared test")


def compare_continuous(a, b, method: str = "auto", alpha: float = 0.05, var_equal: bool = True) -> TestResult:
    """Compare a continuous variable between two groups as R compareGroups does.

    method "normal": ``t.test(x ~ g, var.equal = var_equal)`` — compareGroups' two-group test,
    whose ``var.equal`` defaults to TRUE: Student's t-test (the "independent samples t-test" of
    SPSS' first row, as the paper names it); ``var_equal=False`` gives Welch's test;
    "nonnormal": ``kruskal.test(x ~ g)`` (equivalent to Mann-Whitney without continuity
    correction); "auto" (compareGroups ``method=NA``): normal when ``shapiro.test`` of the
    pooled values gives p > alpha, non-normal when it does not or cannot be computed
    (fewer than 3 or more than 5000 values, all identical). Missing values are dropped.
    """
    x0 = np.asarray(a, dtype=float)
    x1 = np.asarray(b, dtype=float)
    x0, x1 = x0[np.isfinite(x0)], x1[np.isfinite(x1)]
    if x0.size < 1 or x1.size < 1:
        return TestResult(float("nan"), "not testable (an empty group)")
    pooled = np.concatenate([x0, x1])
    if method == "auto":
        if pooled.size < 3 or pooled.size > 5000 or np.ptp(pooled) == 0:
            method = "nonnormal"
        else:
            method = "normal" if sps.shapiro(pooled).pvalue > alpha else "nonnormal"
    if method == "normal":
        if x0.size < 2 or x1.size < 2 or (np.ptp(x0) == 0 and np.ptp(x1) == 0):
            return TestResult(float("nan"), "t-test")
        res = sps.ttest_ind(x0, x1, equal_var=bool(var_equal))
        return TestResult(float(res.pvalue), "t-test" if var_equal else "Welch t-test")
    if method == "nonnormal":
        if np.ptp(pooled) == 0:
            return TestResult(float("nan"), "Kruskal-Wallis test")
        res = sps.kruskal(x0, x1)
        return TestResult(float(res.pvalue), "Kruskal-Wallis test")
    raise DlrcError(f"compare_continuous: method {method!r} is not auto, normal or nonnormal")
