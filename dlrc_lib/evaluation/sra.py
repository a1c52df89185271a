"""Standardised radiological assessment (SRA) of the pelvic nodes, and Table 5.

The paper compares its model with the rule radiologists apply to the largest pelvic lymph
node on CE-T1WI: a patient is called node-positive (LNM) when

1. the short-axis diameter (LNSD) is at least 10 mm, or
2. the node shows central necrosis, or
3. the short axis is at least 8 mm and the node is round (short/long axis ratio > 0.8).

This module applies that rule (:func:`sra_predict`), tabulates SRA and DLRC per cohort and
in the LNSD < 10 mm / >= 10 mm subgroups (:func:`diagnostic_table`, :func:`format_table5`),
produces the values keyed as in ``published_values.yaml`` (:func:`table5_rows`,
:func:`table2_sra_rows`), and tests DLRC against SRA with McNemar's test on the paired
calls (:func:`mcnemar_test`, :func:`mcnemar_table`).
"""
from __future__ import annotations

from typing import Iterable, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps

from dlrc_lib import stats
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.study import keys as K
from dlrc_lib.study.schema import COHORT_LABELS, COHORTS

#: Measures of Tables 2 and 5 and the counts behind each ratio: (numerator, denominator).
MEASURES = {
    "acc": (("TP", "TN"), ("TP", "FN", "TN", "FP")),
    "sen": (("TP",), ("TP", "FN")),
    "spe": (("TN",), ("TN", "FP")),
    "ppv": (("TP",), ("TP", "FP")),
    "npv": (("TN",), ("TN", "FN")),
}
_EPS_DIGITS = 9  # measurements are compared after rounding away float noise (8.8/11 vs 0.8)


def _require(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DlrcError(f"{what}: missing column(s) {', '.join(missing)}")


def _check_finite(df: pd.DataFrame, column: str, what: str) -> np.ndarray:
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        ids = ", ".join(str(i) for i in df.index[bad][:5])
        more = f" (and {bad.sum() - 5} more)" if bad.sum() > 5 else ""
        raise DlrcError(f"{what}, column {column}: missing or non-numeric value for patient(s) {ids}{more}")
    return values


def sra_predict(study_df: pd.DataFrame, sra_params) -> pd.Series:
    """SRA call (1 = LNM) per patient from ``lnsd_mm``, ``lnld_mm`` and ``node_necrosis``.

    ``sra_params`` is a :class:`dlrc_lib.core.config.SraParams` (thresholds ``short_axis_mm``,
    ``borderline_mm`` and ``ratio``). A node is round when short/long > ``ratio`` (strictly);
    the diameters are compared after rounding to 9 decimals so that, e.g., 8.8/11.0 counts
    as exactly 0.8. A long axis shorter than the short axis, negative diameters or a
    necrosis flag other than 0/1 are refused with the patient named.
    """
    what = "SRA input"
    _require(study_df, ("lnsd_mm", "lnld_mm", "node_necrosis"), what)
    sd = _check_finite(study_df, "lnsd_mm", what)
    ld = _check_finite(study_df, "lnld_mm", what)
    nec = _check_finite(study_df, "node_necrosis", what)
    problems = []
    for name, bad in (
        ("lnsd_mm: negative diameter", sd < 0),
        ("lnld_mm: long axis shorter than the short axis (lnsd_mm)", np.round(ld - sd, _EPS_DIGITS) < 0),
        ("node_necrosis: not 0/1", ~np.isin(nec, (0.0, 1.0))),
    ):
        if bad.any():
            problems.append(f"{name} for patient(s) " + ", ".join(str(i) for i in study_df.index[bad][:5]))
    if problems:
        raise DlrcError(f"{what}: " + "; ".join(problems))
    sd_r = np.round(sd, _EPS_DIGITS)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ld > 0, np.round(sd / np.where(ld > 0, ld, 1.0), _EPS_DIGITS), 0.0)
    positive = (
        (sd_r >= sra_params.short_axis_mm)
        | (nec == 1)
        | ((sd_r >= sra_params.borderline_mm) & (ratio > sra_params.ratio))
    )
    return pd.Series(positive.astype(int), index=study_df.index, name="SRA")


def add_calls(predictions: pd.DataFrame, sra_params, dlrc_cutoff: float, *,
              prob_column: str = "prob_dlrc") -> pd.DataFrame:
    """``predictions`` plus 0/1 columns ``SRA`` (:func:`sra_predict`) and ``DLRC``
    (``prob_column >= dlrc_cutoff``, the training Youden threshold)."""
    _require(predictions, [prob_column], "predictions")
    prob = _check_finite(predictions, prob_column, "predictions")
    return predictions.assign(SRA=sra_predict(predictions, sra_params),
                              DLRC=(prob >= float(dlrc_cutoff)).astype(int))


# --------------------------------------------------------------------- metrics from counts
def metrics_row(m) -> dict[str, float | int]:
    """Counts, percentages and Wilson 95 % limits (percent) of a
    :class:`dlrc_lib.stats.ClassificationMetrics`; an empty denominator (0/0) gives NaN."""
    row: dict[str, float | int] = {"TP": m.tp, "FN": m.fn, "TN": m.tn, "FP": m.fp}
    for key in MEASURES:
        row[key] = 100.0 * getattr(m, key).estimate
    for key in MEASURES:
        pr = getattr(m, key)
        row[f"{key}_lower"], row[f"{key}_upper"] = 100.0 * pr.lower, 100.0 * pr.upper
    return row


def diagnostic_table(df: pd.DataFrame, calls: dict[str, str], *, subgroup_mm: float | None = None,
                     outcome: str = "lnm", cohort: str = "cohort") -> pd.DataFrame:
    """Counts and percentages of binary calls per cohort (and LNSD subgroup).

    ``calls`` maps a model label (e.g. ``"DLRC"``, ``"SRA"``) to a 0/1 column of ``df``.
    Without ``subgroup_mm`` one block per cohort (subgroup ``"all"``, Table 2's rows); with
    it, patients are split by ``lnsd_mm`` below / at least ``subgroup_mm`` (Table 5), the
    subgroups named ``lnsd_below_<g>mm`` and ``lnsd_<g>mm_or_more`` as in the YAML.
    Returns a long frame: subgroup, cohort, model, n, TP, FN, TN, FP, acc, sen, spe, ppv,
    npv (percent) and their Wilson 95 % limits ``<measure>_lower`` / ``_upper``
    (:func:`dlrc_lib.stats.classification_metrics`).
    """
    _require(df, [outcome, cohort, *calls.values()], "diagnostic table")
    groups: list[tuple[str, pd.Series]] = []
    if subgroup_mm is None:
        groups.append(("all", pd.Series(True, index=df.index)))
    else:
        _require(df, ["lnsd_mm"], "diagnostic table")
        sd = np.round(_check_finite(df, "lnsd_mm", "diagnostic table"), _EPS_DIGITS)
        below, above = K.subgroups(subgroup_mm)
        groups.append((below, pd.Series(sd < subgroup_mm, index=df.index)))
        groups.append((above, pd.Series(sd >= subgroup_mm, index=df.index)))
    unknown = sorted(set(df[cohort]) - set(COHORTS))
    if unknown:
        raise DlrcError(f"diagnostic table, column {cohort}: unknown cohort(s) {unknown}")
    rows = []
    for sub, mask in groups:
        for coh in COHORTS:
            part = df[mask & (df[cohort] == coh)]
            if part.empty and coh not in set(df[cohort]):
                continue
            for label, col in calls.items():
                m = stats.classification_metrics(part[outcome].to_numpy(), part[col].to_numpy())
                rows.append({"subgroup": sub, "cohort": coh, "model": label, "n": len(part), **metrics_row(m)})
    return pd.DataFrame(rows)


def sra_vs_model_table(model_calls: pd.DataFrame, sra_calls: pd.DataFrame, model: str = "DLRC") -> pd.DataFrame:
    """Table 2's SRA rows beside a model's, per cohort (:func:`diagnostic_table`).

    The model's row covers the patients it scored (``model_calls[model]``), SRA's every patient
    of ``sra_calls`` (column ``SRA``): SRA needs no image features, so a patient whose extraction
    failed still has an SRA call. Rows: per cohort (paper order), the model then SRA.
    """
    out = pd.concat([diagnostic_table(model_calls, {model: model}), diagnostic_table(sra_calls, {"SRA": "SRA"})],
                    ignore_index=True)
    order = out["cohort"].map({c: i for i, c in enumerate(COHORTS)}) * 2 + (out["model"] == "SRA")
    return out.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)


# ------------------------------------------------------------------------- formatting
def format_percent(value: float | None, denominator: int) -> str:
    """``77.4%`` with one decimal; a ratio with an empty denominator is printed ``0/0`` as
    in the paper (``NA`` for any other missing value)."""
    if denominator == 0:
        return "0/0"
    if value is None or not np.isfinite(value):
        return "NA"
    return f"{value:.1f}%"


def _subgroup_label(sub: str) -> str:
    if sub == "all":
        return "All"
    if sub.startswith("lnsd_below_"):
        return "LNSD < " + sub[len("lnsd_below_"):].replace("mm", " mm")
    return "LNSD \u2265 " + sub[len("lnsd_"):].replace("mm_or_more", " mm")


def format_table5(long: pd.DataFrame) -> pd.DataFrame:
    """Table 5 as printed: Subcohort, Cohort, Model/SRA, ACC ... NPV as ``"77.4%"``/``"0/0"``,
    rows in the paper's order (subgroup, then cohort, then model)."""
    order = long.assign(
        _s=pd.Categorical(long["subgroup"], categories=list(dict.fromkeys(long["subgroup"]))),
        _c=pd.Categorical(long["cohort"], categories=list(COHORTS)),
        _m=pd.Categorical(long["model"], categories=list(dict.fromkeys(long["model"]))),
    ).sort_values(["_s", "_c", "_m"], kind="stable")
    rows = []
    for _, r in order.iterrows():
        row = {"Subcohort": _subgroup_label(r["subgroup"]), "Cohort": COHORT_LABELS[r["cohort"]],
               "Model/SRA": r["model"]}
        for key, (_, den) in MEASURES.items():
            row[key.upper()] = format_percent(r[key], int(sum(r[k] for k in den)))
        rows.append(row)
    return pd.DataFrame(rows)


def _pct(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 1)


def table5_rows(long: pd.DataFrame) -> list[K.Row]:
    """Table 5's reproduced values, ``table5.<subgroup>.<cohort>.<model>.<measure>``: percent;
    0/0 -> ``None`` (YAML null)."""
    return [K.row("table5", _pct(r[m]), subgroup=r["subgroup"], cohort=r["cohort"], model=r["model"], metric=m)
            for _, r in long[long["subgroup"] != "all"].iterrows() for m in MEASURES]


def table2_sra_rows(long: pd.DataFrame, model: str = "SRA") -> list[K.Row]:
    """Table 2's SRA values, ``table2.<cohort>.SRA.<measure>``: percent, from the ``all`` rows."""
    sel = long[(long["subgroup"] == "all") & (long["model"] == model)]
    return [K.row("table2", _pct(r[m]), cohort=r["cohort"], model=model, metric=m)
            for _, r in sel.iterrows() for m in MEASURES]


# --------------------------------------------------------------------------- McNemar
class McNemarResult(NamedTuple):
    b: int  # first rule right, second wrong
    c: int  # first rule wrong, second right
    statistic: float  # chi-square (method "chisq") or b (method "exact")
    pvalue: float
    method: str


def mcnemar_test(first_correct, second_correct, *, method: str = "auto",
                 exact_below: int = 25) -> McNemarResult:
    """McNemar's test on paired binary outcomes (e.g. correct calls of two rules).

    ``method="exact"``: the exact conditional binomial test on the discordant pairs,
    p = ``binom.test(b, b + c, 0.5)$p.value`` in R (the value ``exact2x2::mcnemar.exact``
    returns). ``method="chisq"``: R ``mcnemar.test(x, correct=TRUE)``,
    (|b - c| - 1)^2 / (b + c) on 1 df. ``"auto"`` uses the exact test when b + c <
    ``exact_below``. No discordant pair: p is undefined (NaN, method "no discordant pairs").
    """
    f = np.asarray(first_correct, dtype=bool)
    s = np.asarray(second_correct, dtype=bool)
    if f.shape != s.shape:
        raise DlrcError(f"McNemar test: paired inputs differ in length ({f.size} vs {s.size})")
    b = int((f & ~s).sum())
    c = int((~f & s).sum())
    n = b + c
    if method not in ("auto", "exact", "chisq"):
        raise DlrcError(f"McNemar test: unknown method {method!r} (auto, exact, chisq)")
    if n == 0:
        return McNemarResult(b, c, float("nan"), float("nan"), "no discordant pairs")
    if method == "exact" or (method == "auto" and n < exact_below):
        # symmetric null (p = 1/2): R's two-sided binom.test equals twice the smaller tail
        p = min(1.0, 2.0 * float(sps.binom.cdf(min(b, c), n, 0.5)))
        return McNemarResult(b, c, float(b), p, "exact binomial")
    stat = (abs(b - c) - 1.0) ** 2 / n
    return McNemarResult(b, c, stat, float(sps.chi2.sf(stat, 1)), "chi-square, continuity corrected")


def mcnemar_table(df: pd.DataFrame, first: str, second: str, *, labels: tuple[str, str] = ("DLRC", "SRA"),
                  method: str = "auto", exact_below: int = 25, outcome: str = "lnm",
                  cohort: str = "cohort") -> pd.DataFrame:
    """Sensitivity (on LNM-positive patients) and specificity (on LNM-negative patients) of
    two binary calls compared per cohort by :func:`mcnemar_test`."""
    _require(df, [outcome, cohort, first, second], "McNemar table")
    rows = []
    for coh in [c for c in COHORTS if c in set(df[cohort])]:
        part = df[df[cohort] == coh]
        for measure, truth in (("sensitivity", 1), ("specificity", 0)):
            sub = part[part[outcome] == truth]
            a_ok = sub[first].to_numpy() == truth
            b_ok = sub[second].to_numpy() == truth
            res = mcnemar_test(a_ok, b_ok, method=method, exact_below=exact_below)
            n = len(sub)
            rows.append({
                "cohort": coh, "measure": measure, "n": n,
                labels[0]: 100.0 * a_ok.mean() if n else float("nan"),
                labels[1]: 100.0 * b_ok.mean() if n else float("nan"),
                f"{labels[0]} only correct": res.b, f"{labels[1]} only correct": res.c,
                "statistic": res.statistic, "p": res.pvalue, "p_text": _p_text(res.pvalue),
                "method": res.method,
            })
    return pd.DataFrame(rows)


def _p_text(p: float) -> str:
    """p as the paper prints it (3 decimals or "<0.001"); empty when undefined."""
    return "" if not np.isfinite(p) else str(stats.format_p(p))
