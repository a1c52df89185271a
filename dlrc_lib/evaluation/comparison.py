"""Tables 2 and 4: the radiomics, deep-learning and DLRC models compared.

:func:`performance_table` (Table 2) evaluates each model's probability (and the SRA rule's
calls) in every cohort at the training Youden cut-off, as the paper did: AUC with its DeLong
95 % CI and ACC/SEN/SPE/PPV/NPV; :func:`delong_table` (Table 4) tests the paired AUCs with
DeLong's test. Both return their table and the reproduced values as
:mod:`dlrc_lib.study.keys` rows.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from dlrc_lib import stats
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.evaluation.performance import format_table, metrics_at_cutoff
from dlrc_lib.study import keys as K
from dlrc_lib.study.schema import COHORT_LABELS, COHORTS, DLRC, PROB_COLUMNS, RADIOMICS, SRA


def format_p(p: float) -> float | str:
    """A p-value as the paper prints it: rounded to 3 decimals, or "<0.001"."""
    if p is None or not np.isfinite(p):
        return float("nan")
    return stats.format_p(float(p))


def model_roles(best_dl: str | None) -> list[tuple[str, str]]:
    """(name, role) of the compared models; no deep-learning model when ``best_dl`` is None."""
    return [(RADIOMICS, "radiomics")] + ([(best_dl, "dl")] if best_dl else []) + [(DLRC, "dlrc")]


def performance_table(predictions: pd.DataFrame, cutoffs: Mapping[str, float], best_dl: str | None,
                      sra: pd.Series | None = None,
                      study: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[K.Row]]:
    """Table 2: AUC (DeLong 95 % CI) and ACC/SEN/SPE/PPV/NPV at the training cut-off.

    Rows per cohort: radiomics, the best DL model (none when ``best_dl`` is None: deep learning
    switched off), DLRC and (when ``sra`` is given: a 0/1
    Series of the SRA rule's calls, index patient_id) SRA, which has no AUC. SRA needs no
    score, so with ``study`` (index patient_id; cohort, lnm) it is evaluated on every patient
    of the cohort, as in the paper, not only those with both scores. A patient is
    positive when its probability is >= the cut-off. Returns the table and the
    ``table2.<cohort>.<model>.<metric>`` rows for the reproduction page (AUC as
    [est, lo, hi], the rest in percent).
    """
    st = stats
    rows, rep = [], []
    for cohort in COHORTS:
        sub = predictions[predictions["cohort"] == cohort]
        if sub.empty:
            continue
        y = sub["lnm"].to_numpy(int)
        entries: list[tuple[str, np.ndarray | None, np.ndarray]] = []
        for name, role in model_roles(best_dl):
            prob = sub[PROB_COLUMNS[role]].to_numpy(float)
            entries.append((name, prob, prob >= cutoffs[role]))
        sra_y = y
        if sra is not None:
            ids = sub.index if study is None else study.index[study["cohort"] == cohort]
            calls = sra.reindex(ids)
            if calls.isna().any():
                raise DlrcError(f"SRA: no call for patient {calls.index[calls.isna()][0]}")
            if study is not None:
                sra_y = study.loc[ids, "lnm"].to_numpy(int)
            entries.append((SRA, None, calls.to_numpy(int).astype(bool)))
        for name, prob, called in entries:
            yy = sra_y if name == SRA else y
            row: dict[str, Any] = {"cohort": cohort, "model": name, "n": len(yy)}
            if prob is not None and len(np.unique(y)) == 2:
                auc = st.auc_ci(y, prob)
                est = [float(auc.auc), float(auc.lower), float(auc.upper)]
                row.update(auc=est[0], auc_lower=est[1], auc_upper=est[2])
                rep.append(K.row("table2", [round(v, 3) for v in est], cohort=cohort, model=name, metric="auc"))
            else:
                row.update(auc=np.nan, auc_lower=np.nan, auc_upper=np.nan)
            m = metrics_at_cutoff(yy, called)
            for k in ("tp", "fn", "tn", "fp"):
                row[k.upper()] = m[k]
            for k in ("acc", "sen", "spe", "ppv", "npv"):
                row[k.upper()] = m[k]
                rep.append(K.row("table2", None if not np.isfinite(m[k]) else round(m[k], 1),
                                 cohort=cohort, model=name, metric=k))
            rows.append(row)
    table = pd.DataFrame(rows)
    table["AUC (95% CI)"] = [
        "/" if not np.isfinite(r.auc) else f"{r.auc:.3f} ({r.auc_lower:.3f}-{r.auc_upper:.3f})"
        for r in table.itertuples()]
    return table, rep


def delong_table(predictions: pd.DataFrame, best_dl: str | None) -> tuple[pd.DataFrame, list[K.Row]]:
    """Table 4: paired DeLong p-values (R pROC ``roc.test(method = "delong", paired = TRUE)``).

    Pairs: DLRC vs radiomics, DLRC vs the best DL model, radiomics vs the best DL model (only
    the first when ``best_dl`` is None: deep learning switched off); one column per cohort.
    Returns the table (p-values as printed: 3 decimals or "<0.001") and
    ``table4.<pair>.<cohort>`` rows.
    """
    st = stats
    pairs = [(DLRC, RADIOMICS, "dlrc", "radiomics")]
    if best_dl:
        pairs += [(DLRC, best_dl, "dlrc", "dl"), (RADIOMICS, best_dl, "radiomics", "dl")]
    rows, rep = [], []
    for first, second, a, b in pairs:
        row: dict[str, Any] = {"comparison": f"{first} vs {second}"}
        for cohort in COHORTS:
            sub = predictions[predictions["cohort"] == cohort]
            if sub.empty:
                continue
            y = sub["lnm"].to_numpy(int)
            z, p, why = float("nan"), float("nan"), "one LNM class only"
            if len(np.unique(y)) == 2:
                res = st.delong_test(y, sub[PROB_COLUMNS[a]].to_numpy(float),
                                     sub[PROB_COLUMNS[b]].to_numpy(float))
                z, p = float(res.statistic), float(res.pvalue)
                why = res.undefined or ("" if np.isfinite(p) else "undefined")
            row[f"{cohort}_z"] = z
            row[f"{cohort}_p"] = p
            row[f"{cohort}_note"] = "" if np.isfinite(p) else why
            row[COHORT_LABELS[cohort]] = format_p(p)
            rep.append(K.row("table4", format_p(p), model=first, other=second, cohort=cohort))
        rows.append(row)
    return pd.DataFrame(rows), rep


def table2_caption(best_dl: str | None) -> str:
    """Table 2's caption: the models it holds (no deep-learning model when deep learning was switched off)."""
    if not best_dl:
        return "Table 2. Performance of SRA, radiomics and DLRC (deep learning switched off)"
    return "Table 2. Performance of SRA, radiomics, the best DL model and DLRC"


def table2_display(table: pd.DataFrame) -> pd.DataFrame:
    """Table 2 laid out as in the paper (percentages with one decimal; SRA has no AUC)."""
    perf = table.rename(columns={k: k.lower() for k in ("ACC", "SEN", "SPE", "PPV", "NPV")}).assign(
        label=table["cohort"].map(COHORT_LABELS),
        model=table["model"].map(lambda m: "Radiomics" if m == RADIOMICS else m))
    return format_table(perf, model_column="Model/SRA", auc_missing="/", dash="-")


def table4_display(table: pd.DataFrame) -> pd.DataFrame:
    cols = ["comparison"] + [COHORT_LABELS[c] for c in COHORTS if COHORT_LABELS[c] in table.columns]
    out = table[cols].copy()
    for c in cols[1:]:
        out[c] = out[c].map(lambda v: "< 0.001" if v == "<0.001" else
                            "undefined" if not np.isfinite(v) else f"{v:.3f}")
    return out.rename(columns={"comparison": "Model comparison"})
