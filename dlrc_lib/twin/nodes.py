"""Largest pelvic lymph node of each simulated patient: short axis, long axis, necrosis.

The paper's standardised radiological assessment (SRA) calls a patient node-positive when
the largest pelvic node's short axis (LNSD) is >= 10 mm, or the node shows central necrosis,
or LNSD >= 8 mm with a short/long axis ratio > 0.8. Tables 2 and 5 imply, per cohort and
per LNSD subgroup (< 10 mm, >= 10 mm), SRA's confusion counts [TP, FN, TN, FP]
(``implied_confusion.SRA`` in published_values.yaml). :func:`node_categories` turns these
into how many patients of each LNM class fall in each (c_LNM, SRA) cell, and
:func:`add_nodes` draws measurements that land every patient in its cell, so that
``c_lnm = lnsd_mm >= 10`` and the SRA rule reproduce the published counts exactly.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from dlrc_lib.study.schema import COHORTS
from dlrc_lib.twin.clinical import apportion


def sra_positive(lnsd_mm, lnld_mm, necrosis, *, short_axis_mm: float = 10.0,
                 borderline_mm: float = 8.0, ratio: float = 0.8) -> np.ndarray:
    """The SRA rule, vectorised: LNSD >= 10, or necrosis, or LNSD >= 8 with short/long > 0.8."""
    s = np.asarray(lnsd_mm, dtype=float)
    lg = np.asarray(lnld_mm, dtype=float)
    nec = np.asarray(necrosis, dtype=int) == 1
    return (s >= short_axis_mm) | nec | ((s >= borderline_mm) & (s / lg > ratio))


def node_categories(published: Mapping, cohort: str, lnm: int, n_cell: int) -> dict[tuple[int, int], int]:
    """Counts of (c_lnm, sra) among ``n_cell`` patients of one cohort x LNM cell."""
    conf = published["implied_confusion"]["SRA"][cohort]
    below, above = conf["lnsd_below_10mm"], conf["lnsd_10mm_or_more"]  # [TP, FN, TN, FP]
    if lnm == 1:
        cells = {(0, 1): below[0], (0, 0): below[1], (1, 1): above[0], (1, 0): above[1]}
    else:
        cells = {(0, 0): below[2], (0, 1): below[3], (1, 0): above[2], (1, 1): above[3]}
    keys = list(cells)
    counts = np.array([cells[k] for k in keys], dtype=float)
    k = counts.astype(int) if counts.sum() == n_cell else apportion(n_cell, counts)
    return dict(zip(keys, (int(v) for v in k)))


def _lnld_for_ratio(lnsd: float, lo: float, hi: float, rng: np.random.Generator,
                    above: bool | None, thr: float) -> float:
    """Long axis (0.1 mm) giving a short/long ratio in [lo, hi]; strictly on one side of thr."""
    r = rng.uniform(lo, hi)
    lnld = max(lnsd, np.round(lnsd / r, 1))
    if above is True:
        while lnsd / lnld <= thr:
            lnld = np.round(lnld - 0.1, 1)
    elif above is False:
        while lnsd / lnld > thr:
            lnld = np.round(lnld + 0.1, 1)
    return float(lnld)


def add_nodes(df: pd.DataFrame, published: Mapping, *, seed: int = 0, short_axis_mm: float = 10.0,
              borderline_mm: float = 8.0, ratio: float = 0.8) -> pd.DataFrame:
    """Add ``lnsd_mm``, ``lnld_mm`` (0.1 mm) and ``node_necrosis`` to a clinical table.

    Each cohort x LNM cell is split into (c_LNM, SRA) cells per :func:`node_categories`;
    the c_LNM assignment already in ``df`` (Table 1) is kept and the SRA status drawn within
    it. Node-positive patients get larger nodes than node-negative ones in the same cell.
    """
    rng = np.random.default_rng([seed, 2])
    out = df.copy()
    lnsd = np.zeros(len(df))
    lnld = np.zeros(len(df))
    nec = np.zeros(len(df), dtype=int)
    sra_target = np.zeros(len(df), dtype=int)
    for cohort in COHORTS:
        for lnm in (0, 1):
            idx = np.flatnonzero(((df["cohort"] == cohort) & (df["lnm"] == lnm)).to_numpy())
            if len(idx) == 0:
                continue
            cats = node_categories(published, cohort, lnm, len(idx))
            for c in (0, 1):
                members = idx[df["c_lnm"].to_numpy()[idx] == c]
                n_pos_sra = cats[(c, 1)]
                n_tot = cats[(c, 0)] + cats[(c, 1)]
                if n_tot != len(members):  # scaled studies: keep the Table 1 c_LNM, rescale SRA
                    n_pos_sra = int(apportion(len(members), [cats[(c, 0)], cats[(c, 1)]])[1]) if n_tot else 0
                if c == 1:
                    n_pos_sra = len(members)  # LNSD >= 10 mm is SRA-positive by definition
                flags = np.zeros(len(members), dtype=int)
                flags[:n_pos_sra] = 1
                sra_target[members] = rng.permutation(flags)
            for i in idx:
                c, s = int(df["c_lnm"].iat[i]), int(sra_target[i])
                if c == 1:
                    short = np.round(short_axis_mm + rng.gamma(2.0, 3.0 if lnm else 1.5), 1)
                    short = float(min(short, 35.0))
                    long_ = _lnld_for_ratio(short, 0.55, 0.95, rng, None, ratio)
                    necrosis = int(rng.uniform() < (0.35 if lnm else 0.05))
                elif s == 1 and rng.uniform() < 0.5:  # SRA-positive through necrosis
                    short = float(np.round(rng.uniform(5.0, short_axis_mm - 0.1), 1))
                    long_ = _lnld_for_ratio(short, 0.5, 0.9, rng, None, ratio)
                    necrosis = 1
                elif s == 1:  # SRA-positive through a round borderline node
                    short = float(np.round(rng.uniform(borderline_mm, short_axis_mm - 0.1), 1))
                    long_ = _lnld_for_ratio(short, ratio + 0.02, 0.97, rng, True, ratio)
                    necrosis = 0
                else:  # SRA-negative, LNSD < 10 mm
                    mean = 6.0 if lnm else 4.8
                    short = float(np.clip(np.round(rng.gamma(6.0, mean / 6.0), 1), 2.0, short_axis_mm - 0.1))
                    if short >= borderline_mm:
                        long_ = _lnld_for_ratio(short, 0.5, ratio - 0.02, rng, False, ratio)
                    else:
                        long_ = _lnld_for_ratio(short, 0.5, 0.95, rng, None, ratio)
                    necrosis = 0
                lnsd[i], lnld[i], nec[i] = short, long_, necrosis
    out["lnsd_mm"] = lnsd
    out["lnld_mm"] = lnld
    out["node_necrosis"] = nec
    got_c = (lnsd >= short_axis_mm).astype(int)
    got_s = sra_positive(lnsd, lnld, nec, short_axis_mm=short_axis_mm, borderline_mm=borderline_mm, ratio=ratio)
    if not (np.array_equal(got_c, df["c_lnm"].to_numpy()) and np.array_equal(got_s.astype(int), sra_target)):
        raise AssertionError("node measurements do not reproduce their c_LNM/SRA cells")
    return out
