"""Discrimination and classification performance of one score per cohort (Tables 2 and 3).

For any model — a radiomics score, a deep-learning score, the DLRC probability — the paper
reports, in each cohort, the AUC with its DeLong 95 % CI and the accuracy, sensitivity,
specificity, PPV and NPV at one cut-off. The cut-off maximises the Youden index
(sensitivity + specificity − 1) **in the training cohort** and is then applied unchanged
to the validation cohorts, so validation numbers are honest out-of-sample estimates.

:func:`evaluate_score` computes those rows; :func:`performance_rows` turns them into the
reproduced values (:mod:`dlrc_lib.study.keys` rows) that ``Artifacts.reproduce`` records against
``published_values.yaml``. Both work with a score on any monotone scale (a linear
predictor or a probability): the AUC and the classification at a cut-off found on the
same scale do not change under a monotone transformation.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import numpy as np
import pandas as pd

from dlrc_lib import stats
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.study import keys as K
from dlrc_lib.study.manifest import by_patient
from dlrc_lib.study.schema import COHORT_LABELS, COHORTS

__all__ = ["evaluate_score", "metrics_at_cutoff", "performance_rows", "format_table"]

_METRICS = ("acc", "sen", "spe", "ppv", "npv")


def metrics_at_cutoff(y, positive) -> dict[str, Any]:
    """The classification at a cut-off, as every table of the package reports it.

    ``y``: true LNM (0/1); ``positive``: the calls (score >= cut-off). Returns ``tp, fp, tn,
    fn`` and, for ``acc, sen, spe, ppv, npv``, the percentage with its Wilson 95 % interval
    (``<k>``, ``<k>_lower``, ``<k>_upper``); a ratio with a zero denominator is NaN.
    """
    m = stats.classification_metrics(np.asarray(y, dtype=int), np.asarray(positive, dtype=int))
    out: dict[str, Any] = {k: int(getattr(m, k)) for k in ("tp", "fp", "tn", "fn")}
    for k in _METRICS:
        pr = getattr(m, k)
        if pr.undefined:
            out[k], out[f"{k}_lower"], out[f"{k}_upper"] = math.nan, math.nan, math.nan
        else:
            out[k], out[f"{k}_lower"], out[f"{k}_upper"] = 100.0 * pr.estimate, 100.0 * pr.lower, 100.0 * pr.upper
    return out


def evaluate_score(score: pd.Series, study: pd.DataFrame, cutoff_from: Union[str, float] = "train",
                   *, model: Optional[str] = None, cohorts: Sequence[str] = COHORTS) -> pd.DataFrame:
    """Per-cohort AUC (DeLong CI) and ACC/SEN/SPE/PPV/NPV at a fixed cut-off.

    Parameters
    ----------
    score : Series indexed by patient_id (a linear predictor or a probability; higher means
        more likely LNM(+)). Patients without a score (NaN) are left out and counted in
        ``n_missing``.
    study : the study table (``cohort``, ``lnm``; index or column ``patient_id``).
    cutoff_from : ``"train"`` (Youden-optimal cut-off found in the training cohort, the
        paper's rule) or a number (a cut-off on the score's scale, e.g. a stored one).
    model : optional model name put in a ``model`` column.

    Returns one row per cohort with: cohort, label, n, n_pos, n_missing, auc, auc_lower,
    auc_upper, cutoff, tp, fp, tn, fn, and acc/sen/spe/ppv/npv in percent each with
    ``_lower``/``_upper`` (Wilson 95 % CI). A ratio with a zero denominator is NaN.
    AUC/CI: R ``pROC::ci.auc(roc(y, score, direction="<"), method="delong")``; cut-off:
    ``pROC::coords(..., "best", best.method="youden")``, positive when ``score >= cutoff``.
    """
    study = by_patient(study)
    score = pd.Series(score).copy()
    score.index = score.index.astype(str)
    unknown = score.index.difference(study.index)
    if len(unknown):
        raise DlrcError(f"evaluate_score: patient(s) {', '.join(map(str, unknown[:5]))} are not in the study table")
    df = pd.DataFrame({"cohort": study["cohort"].astype(str), "lnm": study["lnm"],
                       "score": score.reindex(study.index)})
    if isinstance(cutoff_from, str):
        if cutoff_from != "train":
            raise DlrcError(f"evaluate_score: cutoff_from must be 'train' or a number, not {cutoff_from!r}")
        tr = df[(df["cohort"] == "train") & df["score"].notna()]
        if tr["lnm"].nunique() < 2:
            raise DlrcError("evaluate_score: the training cohort needs LNM(+) and LNM(-) patients with a "
                            "score to fix the Youden cut-off")
        cutoff = float(stats.youden_threshold(tr["lnm"].to_numpy(dtype=int), tr["score"].to_numpy(dtype=float)))
    else:
        cutoff = float(cutoff_from)
    rows = []
    for c in cohorts:
        sub = df[df["cohort"] == c]
        if sub.empty:
            continue
        ok = sub[sub["score"].notna()]
        y = ok["lnm"].to_numpy(dtype=int)
        s = ok["score"].to_numpy(dtype=float)
        row: dict[str, Any] = {"cohort": c, "label": COHORT_LABELS.get(c, c)}
        if model is not None:
            row["model"] = model
        row.update(n=len(ok), n_pos=int(y.sum()), n_missing=int(len(sub) - len(ok)))
        if 0 < y.sum() < len(y):
            a = stats.auc_ci(y, s)
            row.update(auc=float(a[0]), auc_lower=float(a[1]), auc_upper=float(a[2]))
        else:
            row.update(auc=math.nan, auc_lower=math.nan, auc_upper=math.nan)
        row["cutoff"] = cutoff
        row.update(metrics_at_cutoff(y, s >= cutoff))
        rows.append(row)
    return pd.DataFrame(rows)


def performance_rows(perf: pd.DataFrame, table: str = "table2", model: str = "radiomics") -> list[K.Row]:
    """The reproduced values of :func:`evaluate_score`'s rows: ``table2.<cohort>.<model>.auc``
    ``[auc, lo, hi]`` and ``.acc`` ... ``.npv`` in percent, for ``Artifacts.reproduce``."""
    out: list[K.Row] = []
    for _, r in perf.iterrows():
        out.append(K.row(table, [r["auc"], r["auc_lower"], r["auc_upper"]], cohort=r["cohort"], model=model,
                         metric="auc"))
        out += [K.row(table, r[k], cohort=r["cohort"], model=model, metric=k) for k in _METRICS]
    return out


def format_table(perf: pd.DataFrame, digits_auc: int = 3, digits_pct: int = 1, *, model_column: str = "Model",
                 auc_missing: str = "", dash: str = "–") -> pd.DataFrame:
    """The paper's layout of a performance table: Cohort, (Model,) AUC (95 % CI), ACC, SEN,
    SPE, PPV, NPV as text; the one formatter of Tables 2 and 3.

    ``perf``: rows with ``label`` (the cohort as printed), optionally ``model``, ``auc``,
    ``auc_lower``, ``auc_upper`` and the percentages ``acc`` ... ``npv`` (NaN when 0/0, printed
    ``0/0``); a row without an AUC (SRA) prints ``auc_missing``.
    """
    def pct(v: float) -> str:
        return "0/0" if pd.isna(v) else f"{v:.{digits_pct}f}%"

    rows = []
    for _, r in perf.iterrows():
        row = {"Cohort": r["label"]}
        if "model" in perf.columns:
            row[model_column] = r["model"]
        row["AUC (95% CI)"] = (
            auc_missing if pd.isna(r["auc"]) else
            f"{r['auc']:.{digits_auc}f} ({r['auc_lower']:.{digits_auc}f}{dash}{r['auc_upper']:.{digits_auc}f})"
        )
        for k in _METRICS:
            row[k.upper()] = pct(r[k])
        rows.append(row)
    return pd.DataFrame(rows)
