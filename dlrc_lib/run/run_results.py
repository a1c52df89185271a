"""The run folder's results as the library's objects.

The notebooks hand their results on through the run folder (``reports/<run>/``): frames in
``data/``, machine-readable results in ``results/<notebook>.json`` (each notebook's record,
:mod:`dlrc_lib.record`). This module is the one place that knows which notebook hands what on: it
reads them and builds the typed objects the
lower layers take (a fitted :class:`~dlrc_lib.scores.pipeline.FeatureScore`, the chosen deep
model as :class:`~dlrc_lib.scores.deep_models.BestDeepModel`, :class:`DlrcResults`), so that
``model/``, ``scores/`` and ``evaluation/`` never see a run folder or a notebook's name.

``art`` is the notebook's :class:`~dlrc_lib.run.artifacts.Artifacts` (``open_run``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import pandas as pd

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.evaluation.calibration import model_columns
from dlrc_lib.model.dlrc import ScoreInputs, score_inputs
from dlrc_lib.model.export import document_from_fits
from dlrc_lib.record import DeepRecord, DlrcRecord, RadiomicsRecord
from dlrc_lib.scores.deep_models import BestDeepModel
from dlrc_lib.scores.pipeline import STATE_VERSION, FeatureScore

if TYPE_CHECKING:
    from dlrc_lib.core.config import Params
    from dlrc_lib.model.dlrc import DlrcFit
    from dlrc_lib.model.nomogram import Nomogram
    from dlrc_lib.run.artifacts import Artifacts

__all__ = ["DlrcResults", "radiomics_scores", "radiomics_score", "deep_learning_off",
           "best_deep_model", "load_score_inputs", "model_document", "dlrc_results"]

# the notebooks whose results later steps read
NB_RADIOMICS, NB_DEEP, NB_DLRC = "03_radiomics", "04_deep_learning", "05_dlrc"


def _fitted_score(state: Any, where: str) -> FeatureScore:
    """A stored score pipeline of this dlrc's state version as a fitted :class:`FeatureScore`."""
    if not isinstance(state, Mapping):
        raise DlrcError(f"{where}: no fitted score pipeline")
    if state.get("version") != STATE_VERSION:
        raise DlrcError(f"{where}: score state version {state.get('version')}, not {STATE_VERSION} (it lacks "
                        "the ComBat estimates of the scanners harmonised from their own images); rerun "
                        "notebooks 03-05")
    return FeatureScore.from_dict(state)


# ------------------------------------------------------------------ 03 and 04
def radiomics_scores(art: "Artifacts") -> pd.DataFrame:
    """Every patient's Rad_score (index patient_id: cohort, lnm, Rad_score), ``data/rad_score``."""
    return art.load_frame("rad_score")


def radiomics_score(art: "Artifacts") -> FeatureScore:
    """The fitted radiomics score pipeline (:class:`~dlrc_lib.record.RadiomicsRecord` ``state``)."""
    rec: RadiomicsRecord = art.load_record(NB_RADIOMICS)
    if rec.state is None:
        raise DlrcError(f"results/{NB_RADIOMICS}.json: no 'state' (the fitted radiomics score "
                        "pipeline); rerun notebook 03")
    return _fitted_score(rec.state, f"results/{NB_RADIOMICS}.json")


def deep_learning_off(art: "Artifacts") -> bool:
    """Whether notebook 04 ran with deep learning switched off (``deep.models: []``; its results
    say ``deep_learning: off``)."""
    return art.load_record(NB_DEEP).off


def best_deep_model(art: "Artifacts", with_estimator: bool = False) -> BestDeepModel | None:
    """Every DL model's scores (``data/dl_scores``) and the model notebook 04 chose
    (``results/04_deep_learning.json``: ``best_model``, ``best_model_rule``, ``weights``; with
    ``with_estimator``, its fitted score pipeline from ``states``); None when deep learning was
    switched off (``deep_learning: off``)."""
    rec: DeepRecord = art.load_record(NB_DEEP)
    if rec.off:
        return None
    best = rec.best_model
    if not best:
        raise DlrcError(f"results/{NB_DEEP}.json: no 'best_model'; run notebook 04 first")
    scores = art.load_frame("dl_scores")
    if best not in scores.columns:
        raise DlrcError(f"data/dl_scores.parquet: no column for the best model '{best}'")
    estimator = None
    if with_estimator:
        states = rec.states or {}
        if best not in states:
            raise DlrcError(f"results/{NB_DEEP}.json: no 'states' entry for {best}; rerun notebook 04")
        estimator = _fitted_score(states[best], f"results/{NB_DEEP}.json ({best})")
    return BestDeepModel(name=str(best), scores=scores, estimator=estimator,
                         weights=(rec.weights or {}).get(best), rule=rec.best_model_rule)


def load_score_inputs(art: "Artifacts", study: pd.DataFrame) -> ScoreInputs:
    """Rad_score (notebook 03) and the chosen DL_score (notebook 04; none when deep learning was
    switched off) of every patient of ``study`` (:func:`dlrc_lib.model.dlrc.score_inputs`)."""
    return score_inputs(radiomics_scores(art), best_deep_model(art), study)


def model_document(art: "Artifacts", *, fit: "DlrcFit", nomogram: "Nomogram", cutoffs: Mapping[str, float],
                   study: pd.DataFrame, params: "Params") -> dict:
    """The run's model document (:func:`dlrc_lib.model.export.document_from_fits`) from the
    score pipelines notebooks 03 and 04 saved and notebook 05's DLRC fit."""
    return document_from_fits(radiomics_score(art), best_deep_model(art, with_estimator=True), fit=fit,
                              nomogram=nomogram, cutoffs=cutoffs, study=study, params=params)


# ------------------------------------------------------------------------ 05
@dataclass
class DlrcResults:
    """What notebook 05 hands on to the evaluation notebooks (06-08)."""

    predictions: pd.DataFrame  # index patient_id: cohort, lnm, the terms, prob_radiomics/_dl/_dlrc
    best_model: str | None  # the deep-learning model in the DLRC model
    terms: list[str] | None  # the DLRC model's terms (None: not recorded)
    cutoffs: dict[str, float]  # training Youden cut-off per model (radiomics, dl, dlrc)

    @property
    def models(self) -> dict[str, str]:
        """Display label -> probability column of the models in ``predictions`` (no deep-learning
        model when deep learning was switched off)."""
        return model_columns(self.best_model, available=self.predictions.columns)


def dlrc_results(art: "Artifacts") -> DlrcResults:
    """``data/predictions`` and ``results/05_dlrc.json`` (``best_model``, ``dlrc_terms``,
    ``cutoffs``)."""
    rec: DlrcRecord = art.load_record(NB_DLRC)
    terms = rec.dlrc_terms
    return DlrcResults(predictions=art.load_frame("predictions"), best_model=rec.best_model,
                       terms=list(terms) if terms else None, cutoffs=dict(rec.cutoffs or {}))
