"""The fitted DLRC pipeline as one JSON document (``reports/<run>/model/dlrc_model.json``).

Everything needed to score a new patient from images and clinical values, and nothing
executable (no pickle): the radiomics extraction settings (the PyRadiomics parameter file's
text), the deep-learning model's name, preprocessing and weights identity, and for both
feature sets the fitted score pipeline state (selected features, ComBat estimates of every
scanner the run harmonised -- those of the ComBat fit and those harmonised towards it from their
own images, e.g. the external cohort's in mode ``train_reference`` --, standardisation, score
coefficients) as :meth:`dlrc_lib.scores.pipeline.FeatureScore.to_dict` gives it; then the DLRC logistic model,
the training Youden cut-off and the nomogram scale.
``dlrc predict`` (:mod:`dlrc_lib.model.predict`) reads it back with :func:`load_model`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from dlrc_lib import __version__
from dlrc_lib.core.config import Params
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.io import atomic_write_text, dumps
from dlrc_lib.scores.pipeline import STATE_VERSION

if TYPE_CHECKING:
    from dlrc_lib.model.dlrc import DlrcFit
    from dlrc_lib.model.nomogram import Nomogram
    from dlrc_lib.scores.deep_models import BestDeepModel
    from dlrc_lib.scores.pipeline import FeatureScore

FORMAT = "dlrc-model"
FORMAT_VERSION = 3
# 2: the document carries the SHA-256 of its content ("integrity")
# 3: the score states carry the ComBat estimates of every batch the run harmonised (state
#    version 2: harmonisation.own_data), and harmonisation.known_batches lists exactly those
#    (a batch both states hold estimates for), own_data_batches the ones outside the ComBat fit
MODEL_FILE = "dlrc_model.json"

# The clinical inputs the exported model can derive from a manifest row.
CLINICAL_RULES = {"c_lnm": "lnsd_mm >= 10 (largest pelvic node short axis on CE-T1WI, mm)"}


def known_batches(state: Any) -> list[str]:
    """Batch labels (scanners or centres) with ComBat estimates in a score state: every
    ``batches`` list found in it (the fit's estimates and the own-data ones)."""
    found: set[str] = set()

    def walk(obj: Any, key: str = "") -> None:
        if isinstance(obj, Mapping):
            for k, v in obj.items():
                walk(v, str(k))
        elif isinstance(obj, list):
            if key == "batches":
                found.update(str(b) for b in obj if not isinstance(b, (list, dict)))
            for v in obj:
                if isinstance(v, (dict, list)):
                    walk(v, key)

    walk(state)
    return sorted(found)


def build_model_document(
    *,
    run_name: str,
    seed: int,
    sequences: Iterable[str],
    radiomics_settings_file: str,
    radiomics_settings_text: str,
    radiomics_state: Mapping,
    deep_model: str | None,
    deep_preprocessing: Mapping,
    deep_weights: Any,
    deep_state: Mapping | None,
    best_model_rule: str | None,
    harmonisation: Mapping,
    dlrc: Mapping,
    clinical: Iterable[str],
    cutoffs: Mapping[str, float],
    nomogram: Mapping,
    extra: Mapping | None = None,
) -> dict:
    """Assemble the model document (a JSON-able dict) from its parts' JSON-able forms
    (``radiomics_state``, ``deep_state``: :meth:`FeatureScore.to_dict`; ``dlrc``:
    :meth:`DlrcModel.to_dict`; ``nomogram``: :meth:`Nomogram.to_dict`); see the module docstring.
    ``deep_model`` None: deep learning was switched off (``deep.models: []``); the document's
    ``deep`` section then names no model and holds no state, and the DLRC model has no DL_score."""
    clinical = list(clinical)
    unknown = [c for c in clinical if c not in CLINICAL_RULES]
    if unknown:
        raise DlrcError(f"model export: no rule to derive clinical input(s) {', '.join(unknown)} "
                        f"for new patients (known: {', '.join(CLINICAL_RULES)})")
    # a new patient's batch is known when BOTH scores hold its estimates
    held = [set(known_batches(s)) for s in (radiomics_state, deep_state)]
    held = [h for h in held if h]
    batches = sorted(set.intersection(*held)) if held else []
    own = set()
    for s in (radiomics_state, deep_state):
        od = (s.get("harmonisation") or {}).get("own_data") if isinstance(s, Mapping) else None
        own |= {str(b) for b in (od or {}).get("batches", [])}
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dlrc_version": __version__,
        "run": {"run_name": run_name, "seed": int(seed)},
        "sequences": list(sequences),
        "radiomics": {
            "settings_file": str(radiomics_settings_file),
            "settings_text": radiomics_settings_text,
            "score": "Rad_score",
            "state": dict(radiomics_state),
        },
        "deep": _deep_section(deep_model, best_model_rule, deep_preprocessing, deep_weights, deep_state),
        "harmonisation": {**dict(harmonisation), "known_batches": batches,
                          "own_data_batches": sorted(own & set(batches))},
        "clinical": {c: CLINICAL_RULES[c] for c in clinical},
        "dlrc": dict(dlrc),
        "probability": {"radiomics": "1 / (1 + exp(-Rad_score))",
                        **({"dl": "1 / (1 + exp(-DL_score))"} if deep_model else {}),
                        "dlrc": "1 / (1 + exp(-(intercept + sum(coef * term))))"},
        "cutoffs": {k: float(v) for k, v in cutoffs.items()},
        "decision": "LNM predicted when prob_dlrc >= cutoffs.dlrc (training Youden cut-off)",
        "nomogram": dict(nomogram),
    }
    if extra:
        doc["extra"] = dict(extra)
    return doc


def _deep_section(model: str | None, rule: str | None, preprocessing: Mapping, weights: Any,
                  state: Mapping | None) -> dict:
    """The document's ``deep`` section; without a model (deep learning switched off) it says so."""
    if not model:
        return {"model": None, "switched_off": "deep.models: []", "best_model_rule": None,
                "preprocessing": {}, "weights": None, "score": None, "state": None}
    return {"model": model, "best_model_rule": rule, "preprocessing": dict(preprocessing),
            "weights": weights, "score": "DL_score", "state": dict(state or {})}


INTEGRITY_KEY = "integrity"


def document_digest(doc: Mapping) -> str:
    """SHA-256 of the document's canonical JSON (:func:`dlrc_lib.core.io.dumps`), without
    its own ``integrity`` entry."""
    import hashlib

    body = {k: v for k, v in doc.items() if k != INTEGRITY_KEY}
    return hashlib.sha256(dumps(body).encode("utf-8")).hexdigest()


def write_model(doc: Mapping, path: str | Path) -> Path:
    """Write the document atomically to ``path`` (a run's ``model/dlrc_model.json``), with the
    SHA-256 of its content under ``integrity``; return the path."""
    path = Path(path)
    body = {k: v for k, v in doc.items() if k != INTEGRITY_KEY}
    sealed = {**body, INTEGRITY_KEY: {"sha256": document_digest(body),
                                      "covers": "this document without its 'integrity' entry, as canonical JSON "
                                                "(sorted keys, indent 2)"}}
    atomic_write_text(path, dumps(sealed))
    return path


def _number(value: Any) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


REQUIRED = ("format", "format_version", "sequences", "radiomics", "deep", "harmonisation",
            "dlrc", "cutoffs", "nomogram")


def load_model(path: str | Path) -> dict:
    """Read and check a model document; :class:`DlrcError` naming the file and problem."""
    path = Path(path)
    if not path.is_file():
        raise DlrcError(f"{path}: model file not found")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DlrcError(f"{path}: not a JSON model file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DlrcError(f"{path}: not a DLRC model file (format is not '{FORMAT}')")
    version = doc.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version < FORMAT_VERSION:
        raise DlrcError(f"{path}: model format version {version} is not supported (this dlrc reads version "
                        f"{FORMAT_VERSION}, whose model carries the ComBat estimates of every scanner the run "
                        f"harmonised); re-run the run's notebooks 03-05 to export it again: dlrc run --params "
                        f"<the run's parameter file> --only 03 04 05")
    if version != FORMAT_VERSION:
        raise DlrcError(f"{path}: model format version {version} is not supported "
                        f"(this dlrc reads version {FORMAT_VERSION})")
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise DlrcError(f"{path}: model file lacks {', '.join(missing)}")
    seal = doc.get(INTEGRITY_KEY)
    if not isinstance(seal, dict) or not isinstance(seal.get("sha256"), str):
        raise DlrcError(f"{path}: model file lacks its integrity digest ({INTEGRITY_KEY}.sha256); export it again")
    if document_digest(doc) != seal["sha256"]:
        raise DlrcError(f"{path}: model file was changed after export (its content no longer matches the SHA-256 "
                        f"recorded in {INTEGRITY_KEY}.sha256); restore the exported file or export the model again")
    for section in ("radiomics", "deep", "harmonisation", "dlrc", "cutoffs", "nomogram"):
        if not isinstance(doc[section], dict):
            raise DlrcError(f"{path}: model file's {section} is not a JSON object")
    for key in ("state", "settings_text"):
        if key not in doc["radiomics"]:
            raise DlrcError(f"{path}: model file lacks radiomics.{key}")
    for key in ("model", "state", "preprocessing"):
        if key not in doc["deep"] or (key != "model" and doc["deep"]["model"] and doc["deep"][key] is None):
            raise DlrcError(f"{path}: model file lacks deep.{key}")
    if not isinstance(doc["sequences"], list) or not all(isinstance(q, str) for q in doc["sequences"]):
        raise DlrcError(f"{path}: model file's sequences must be a list of names")
    terms, coef = doc["dlrc"].get("terms"), doc["dlrc"].get("coef")
    if not isinstance(terms, list) or not isinstance(coef, dict):
        raise DlrcError(f"{path}: model file lacks dlrc.terms or dlrc.coef")
    bad = [t for t in ["(Intercept)"] + [str(t) for t in terms] if not _number(coef.get(t))]
    if bad:
        raise DlrcError(f"{path}: model file's dlrc.coef has no finite number for {', '.join(bad)}")
    if not _number(doc["cutoffs"].get("dlrc")):
        raise DlrcError(f"{path}: model file's cutoffs.dlrc is not a finite number")
    return doc


def document_from_fits(radiomics: "FeatureScore", deep: "BestDeepModel | None", *, fit: "DlrcFit",
                       nomogram: "Nomogram",
                       cutoffs: Mapping[str, float], study: Any, params: Params) -> dict:
    """The model document of a run: the fitted radiomics score pipeline, the chosen deep model
    (its fitted score pipeline and weights record), the radiomics settings file's text, and
    the DLRC fit with its nomogram and cut-offs. ``deep`` None: deep learning was switched off.

    ``params``: the run's parameters (:func:`dlrc_lib.core.config.params_from_flat` of the
    notebook's parameters). ``study``: the run's study table; its batches for which the score
    pipelines hold no estimates (every patient of the batch excluded from a score) are listed
    under ``harmonisation.batches_without_estimates``.
    """
    if deep is not None and deep.estimator is None:
        raise DlrcError(f"model export: no fitted score pipeline for the best deep model {deep.name}")
    rad_state = radiomics.to_dict()
    deep_state = deep.estimator.to_dict() if deep is not None else None
    states = [("radiomics", rad_state)] + ([(f"deep ({deep.name})", deep_state)] if deep is not None else [])
    for what, state in states:
        if state["version"] != STATE_VERSION:
            raise DlrcError(f"model export: the {what} score pipeline has state version {state['version']}, "
                            f"not {STATE_VERSION} (it lacks the ComBat estimates of the scanners harmonised from "
                            "their own images); refit it (rerun notebooks 03-05)")
    settings = Path(params.radiomics.settings)
    if not settings.is_file():
        raise DlrcError(f"{settings}: radiomics settings file not found")
    harm = params.harmonisation
    deep_params = params.deep.model_dump(mode="json")
    doc = build_model_document(
        run_name=params.run_name, seed=params.seed,
        sequences=list(params.radiomics.sequences),
        radiomics_settings_file=settings.name, radiomics_settings_text=settings.read_text(encoding="utf-8"),
        radiomics_state=rad_state,
        deep_model=deep.name if deep is not None else None,
        deep_preprocessing={k: v for k, v in deep_params.items() if k != "models"},
        deep_weights=deep.weights if deep is not None else None,
        deep_state=deep_state,
        best_model_rule=params.deep.best_model_rule,
        harmonisation={"mode": harm.mode, "batch": harm.batch, "parametric": harm.parametric,
                       "small_batch": harm.small_batch, "scanner_policy": params.dlrc.scanner_policy},
        dlrc=fit.model.to_dict(), clinical=fit.clinical, cutoffs=cutoffs,
        nomogram=nomogram.to_dict(),
    )
    doc["run"]["cache_dir"] = params.cache_dir
    run_batches = set(study[harm.batch].astype(str)) if harm.mode != "none" and harm.batch in study else set()
    doc["harmonisation"]["batches_without_estimates"] = sorted(run_batches - set(doc["harmonisation"]["known_batches"]))
    return doc
