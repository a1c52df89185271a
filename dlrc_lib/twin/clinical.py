"""The clinical table of the synthetic twin: patients whose Table 1 matches the paper.

The paper publishes, for every cohort (training, internal, external) and LNM class, the
count of each categorical level (parity, menopause, family history, FIGO stage, c_LNM,
histology) and the median [Q1; Q3] of age and age at menopause. :func:`solve_clinical`
builds one row per patient so that every such count is reproduced exactly (at ``scale=1``)
and the quantiles within a year. Within a cohort x LNM cell each categorical column is an
independent random permutation of its published levels; age and age at menopause are
drawn by stratified sampling from a piecewise-linear quantile function through the
published quartiles; the oldest women (with noise) are the postmenopausal ones, and the
age at menopause is paired with age by rank so that it never exceeds it.

At ``scale < 1`` every published count is scaled by the largest-remainder method, so the
proportions survive and the totals add up; each cohort keeps at least two patients of each
class.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from dlrc_lib.study.schema import COHORTS

# Parity counts drawn for each Table 1 parity level (the table only gives the level).
_PARITY_VALUES = {"0": (0,), "1-2": (1, 2), "3-4": (3, 4), ">=5": (5, 6, 7)}
_PARITY_WEIGHTS = {"0": (1.0,), "1-2": (0.45, 0.55), "3-4": (0.7, 0.3), ">=5": (0.6, 0.3, 0.1)}


def apportion(total: int, weights: Sequence[float]) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder).

    Ties in the remainders go to the earlier entry, so the result is deterministic.
    """
    w = np.asarray(weights, dtype=float)
    if total <= 0 or w.sum() <= 0:
        return np.zeros(len(w), dtype=int)
    exact = w / w.sum() * total
    base = np.floor(exact + 1e-9).astype(int)
    rest = int(total - base.sum())
    if rest > 0:
        order = sorted(range(len(w)), key=lambda i: (-(exact[i] - base[i]), i))
        for i in order[:rest]:
            base[i] += 1
    return base


def cell_sizes(published: Mapping, scale: float, min_per_class: int = 2) -> dict[tuple[str, int], int]:
    """Patients per (cohort, lnm) cell: the published counts times ``scale``."""
    out = {}
    for cohort in COHORTS:
        neg, pos = published["table1"]["n"][cohort]
        for lnm, n in ((0, neg), (1, pos)):
            n_cell = int(n) if scale >= 1 else max(min_per_class, int(np.floor(n * scale + 0.5)))
            out[(cohort, lnm)] = n_cell
    return out


def _quantile_sampler(q1: float, med: float, q3: float, lo: float, hi: float):
    """Piecewise-linear quantile function through (0, lo), (.25, q1), (.5, med), (.75, q3), (1, hi)."""
    lo = min(lo, q1 - 0.5)
    hi = max(hi, q3 + 0.5)
    knots_p = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    knots_v = np.array([lo, q1, med, q3, hi])
    return lambda u: np.interp(u, knots_p, knots_v)


def _stratified_uniform(n: int, rng: np.random.Generator) -> np.ndarray:
    """n uniforms, one in each of n equal strata, in random order (quantiles land on target)."""
    u = (np.arange(n) + rng.uniform(0.2, 0.8, n)) / n
    return rng.permutation(u)


def _levels_column(levels: Mapping[str, Mapping[str, Sequence[int]]], cohort: str, lnm: int,
                   n_cell: int, rng: np.random.Generator) -> np.ndarray:
    names = list(levels)
    counts = np.array([levels[k][cohort][lnm] for k in names], dtype=float)
    k = apportion(n_cell, counts) if counts.sum() != n_cell else counts.astype(int)
    values = np.repeat(np.array(names, dtype=object), k)
    return rng.permutation(values)


def _ages(spec: Sequence[float], n: int, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    med, q1, q3 = spec
    qf = _quantile_sampler(q1, med, q3, max(lo, q1 - 2.2 * (med - q1) - 1), min(hi, q3 + 2.2 * (q3 - med) + 1))
    return np.round(qf(_stratified_uniform(n, rng)))


def _menopause_ages(spec: Sequence[float], n: int, rng: np.random.Generator) -> np.ndarray:
    med, q1, q3 = spec
    qf = _quantile_sampler(q1, med, q3, max(40.0, q1 - 6), min(58.0, q3 + 5))
    return np.round(qf(_stratified_uniform(n, rng)))


def solve_clinical(published: Mapping, *, scale: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """One row per simulated patient reproducing Table 1 (see the module docstring).

    Columns: cohort, lnm, age, parity, menopause, age_at_menopause, family_history,
    figo_stage, histology, c_lnm (int 0/1; node measurements are added by
    :func:`dlrc_lib.twin.nodes.add_nodes`, which honours c_lnm). Rows are ordered by
    cohort then LNM class; ``patient_id`` and centres are assigned later.
    """
    t1 = published["table1"]
    cat = t1["categorical"]
    sizes = cell_sizes(published, scale)
    rng = np.random.default_rng([seed, 1])
    frames = []
    for cohort in COHORTS:
        for lnm in (0, 1):
            n = sizes[(cohort, lnm)]
            df = pd.DataFrame({"cohort": [cohort] * n, "lnm": np.full(n, lnm, dtype=int)})
            for col in ("parity", "menopause", "family_history", "figo_stage", "c_lnm", "histology"):
                df[col] = _levels_column(cat[col]["levels"], cohort, lnm, n, rng)
            # parity: a count inside its published level
            counts = []
            for lev in df["parity"]:
                vals, w = _PARITY_VALUES[lev], np.array(_PARITY_WEIGHTS[lev])
                counts.append(int(rng.choice(vals, p=w / w.sum())))
            df["parity"] = np.array(counts, dtype=int)
            df["c_lnm"] = (df["c_lnm"] == "Yes").astype(int)
            # age; the oldest (with noise) are postmenopausal
            key = "neg" if lnm == 0 else "pos"
            age = _ages(t1["age"][cohort][key], n, rng, lo=24.0, hi=80.0)
            n_post = int((df["menopause"] == "Yes").sum())
            order = np.argsort(age + rng.normal(0.0, 3.0, n), kind="stable")
            post_idx = order[n - n_post:] if n_post else np.array([], dtype=int)
            meno = np.array(["No"] * n, dtype=object)
            meno[post_idx] = "Yes"
            am = np.full(n, np.nan)
            if n_post:
                am_vals = np.sort(_menopause_ages(t1["age_at_menopause"][cohort][key], n_post, rng))
                # pair by rank of age (with noise), never above the patient's age
                ranked = post_idx[np.argsort(age[post_idx] + rng.normal(0.0, 2.0, n_post), kind="stable")]
                am[ranked] = am_vals
                over = am[post_idx] > age[post_idx]
                am[post_idx[over]] = age[post_idx[over]]
            df["age"] = age.astype(float)
            df["menopause"] = meno
            df["age_at_menopause"] = am
            frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    return out[["cohort", "lnm", "age", "parity", "menopause", "age_at_menopause",
                "family_history", "figo_stage", "histology", "c_lnm"]]
