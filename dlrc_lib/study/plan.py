"""Does a run's parameter set suit the study? Checked before anything is computed.

:func:`plan_problems` looks at a manifest's patients (cohorts, outcomes, batches, the
re-segmented subset) with the parameters of the run that will analyse them, and reports
what that run cannot do as asked, each finding naming the parameter to change:

* the reproducibility (ICC) analysis without enough reader-2 / repeat masks: the run skips
  the ICC filter and keeps every feature (a warning: the run still finishes);
* a rule that needs an external validation cohort (``deep.best_model_rule:
  train_and_external_auc``) when the study has none (an error: the rule cannot be applied;
  not with ``deep.models: []``, where no deep model is chosen);
* a training cohort whose number of events makes the 1se LASSO likely to keep no feature
  (a warning naming ``selection.lasso_rule``).

Cohorts with a single outcome class and batches below ``study.min_batch_size`` are reported by
:func:`dlrc_lib.study.validate.validate_manifest` itself.
"""
from __future__ import annotations

import pandas as pd

from dlrc_lib.study.schema import path_columns

# Fewer LNM-positive (or -negative) training patients than this: the one-standard-error rule
# of a cross-validated LASSO usually keeps nothing (the CV deviance's standard error spans the
# null model). A rule of thumb, not a guarantee; the run degrades if it happens.
MIN_EVENTS_1SE = 25


def icc_patients(raw: pd.DataFrame, sequences) -> int:
    """Patients with a reader-2 and a repeat mask for every sequence."""
    cols = [f"{kind}{seq}" for seq in sequences for kind in ("mask_r2_", "mask_rep_")]
    if not all(c in raw.columns for c in cols):
        return 0
    given = raw[cols].apply(lambda s: s.notna() & (s.astype(str).str.strip() != ""))
    return int(given.all(axis=1).sum())


def plan_problems(raw: pd.DataFrame, cohorts: pd.Series, params) -> list[tuple[str, str, str]]:
    """``(severity, where, message)`` for each thing the run cannot do as its parameters ask.

    ``raw`` is the manifest, ``cohorts`` each patient's cohort (given or split as the run will).
    """
    out: list[tuple[str, str, str]] = []
    seqs = list(params.radiomics.sequences)
    n_icc = icc_patients(raw, seqs)
    need = params.icc.min_cases
    if n_icc < need:
        cols = ", ".join(path_columns("icc")[:2]) + ", ..."
        have = "no patient has" if n_icc == 0 else f"only {n_icc} patient(s) have"
        out.append(("warning", "icc",
                    f"{have} a reader-2 and a repeat mask for every sequence ({cols}); the ICC analysis needs "
                    f"icc.min_cases={need}: the run skips the reproducibility filter, keeps every feature and "
                    "reports the ICC as not testable here (add those mask columns for re-segmented patients to run it)"))
    counts = cohorts.value_counts()
    if (params.deep.models and params.deep.best_model_rule == "train_and_external_auc"
            and not counts.get("external", 0)):  # no rule to apply when deep learning is switched off
        out.append(("error", "deep.best_model_rule",
                    "train_and_external_auc needs an external validation cohort and the study has none: set "
                    "deep.best_model_rule: train_auc (or internal_auc) in the parameter file"))
    if "lnm" in raw.columns and params.selection.lasso_rule == "1se":
        y = pd.to_numeric(raw.loc[(cohorts == "train").to_numpy(), "lnm"], errors="coerce").dropna()
        events = int(min((y == 1).sum(), (y == 0).sum())) if len(y) else 0
        if 0 < events < MIN_EVENTS_1SE:
            out.append(("warning", "selection.lasso_rule",
                        f"the training cohort has {len(y)} patients, {events} in its smaller LNM class: with fewer "
                        f"than {MIN_EVENTS_1SE} the 1se LASSO often keeps no feature; set selection.lasso_rule: min "
                        "(if it keeps none, the run stops at that notebook and says which parameter to change)"))
    return out
