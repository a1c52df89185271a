"""``dlrc predict``: score new patients with an exported DLRC model.

``dlrc predict --model reports/<run>/model/dlrc_model.json --manifest NEW.csv
[--scanner-policy refuse|harmonise] [--out predictions.csv] [--cache-dir DIR]``

For each patient of the manifest (``patient_id``, the harmonisation batch column -- ``scanner``
or ``centre``, per the model --, ``lnsd_mm`` and the image and mask of every sequence; paths
relative to the manifest; docs/predict.md) it extracts the radiomics features
with the stored PyRadiomics settings and the deep features of the stored network and
preprocessing (both cached in the feature store), applies the stored ComBat estimates,
standardisation and coefficients (:meth:`dlrc_lib.scores.pipeline.FeatureScore.transform`) to get
Rad_score and DL_score, then the DLRC risk, the nomogram points and the decision at the
training Youden cut-off, and writes one CSV row per patient.

The model knows every scanner its run harmonised: those of the ComBat fit and those the run
harmonised towards it from their own images (in mode ``train_reference`` the validation
cohorts' scanners that had no training patient). A patient of any of them, even alone, gets
exactly the ComBat location/scale the run applied to that scanner's patients. A scanner the
run never saw is never handled silently: ``refuse`` (the default unless the model says
otherwise) stops with one line naming the scanners, the patients and the known scanners;
``harmonise`` estimates that scanner's ComBat location/scale from the new patients' own
(unlabelled) features, towards the run's reference, which needs at least ``MIN_NEW_BATCH``
patients per new scanner, and marks those rows in the output.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from dlrc_lib.core.config import DeepParams
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.io import atomic_write_text
from dlrc_lib.features.radiomics import extract_radiomics
from dlrc_lib.model.dlrc import DlrcModel, design_matrix, expit
from dlrc_lib.model.export import load_model
from dlrc_lib.model.nomogram import Nomogram
from dlrc_lib.scores.pipeline import FeatureScore
from dlrc_lib.study.manifest import c_lnm_calls, read_manifest_csv

MIN_NEW_BATCH = 2  # patients needed to estimate an unseen scanner's ComBat parameters
POLICIES = ("refuse", "harmonise")


# ------------------------------------------------------------------ manifest
def read_new_patients(manifest: str | Path, doc: Mapping) -> pd.DataFrame:
    """The new patients of a manifest (index patient_id), paths made absolute; every
    problem (missing column, empty value, missing file, duplicate id) listed in one
    :class:`DlrcError`."""
    path = Path(manifest)
    if not path.is_file():
        raise DlrcError(f"{path}: manifest not found")
    try:
        notes: list = []
        df = read_manifest_csv(path, notes=notes)
        for where, message in notes:  # what the reader normalised, one line each
            print(f"dlrc predict: note: {where}: {message}", file=sys.stderr)
    except DlrcError:
        raise  # the reader's own one-line refusal
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
        raise DlrcError(f"{path}: not a readable CSV manifest ({exc.__class__.__name__}: {exc})") from None
    batch_col = doc["harmonisation"].get("batch", "scanner")
    needed = ["patient_id", batch_col]
    if "c_lnm" in doc.get("clinical", {}):
        needed.append("lnsd_mm")
    for seq in doc["sequences"]:
        needed += [f"image_{seq}", f"mask_{seq}"]
    problems = [f"column '{c}' missing" for c in needed if c not in df.columns]
    if problems:
        raise DlrcError(f"{path}: " + "; ".join(problems))
    df["patient_id"] = df["patient_id"].astype(str).str.strip()
    dup = df["patient_id"][df["patient_id"].duplicated()].unique()
    problems += [f"patient {p}: listed more than once" for p in dup]
    base = path.resolve().parent
    for col in needed[1:]:
        for pid, v in zip(df["patient_id"], df[col]):
            if pd.isna(v) or str(v).strip() == "":
                problems.append(f"patient {pid}, column {col}: empty")
    for col in [c for c in needed if c.startswith(("image_", "mask_"))]:
        resolved = []
        for pid, v in zip(df["patient_id"], df[col]):
            if pd.isna(v) or str(v).strip() == "":
                resolved.append(np.nan)
                continue
            p = Path(str(v).strip())
            p = p if p.is_absolute() else (base / p).resolve()
            if not p.exists():
                problems.append(f"patient {pid}, file {v}: not found ({col})")
            resolved.append(str(p))
        df[col] = resolved
    if "lnsd_mm" in df.columns:
        df["lnsd_mm"] = pd.to_numeric(df["lnsd_mm"], errors="coerce")
    if "c_lnm" in df.columns or "lnsd_mm" in df.columns:
        # the radiologist's MRI node call where the manifest brings it, else lnsd_mm >= 10
        calls, bad = c_lnm_calls(df, path)
        df["c_lnm"] = calls.astype(int) if not calls.isna().any() else calls
        problems += [f"patient {p}, column c_lnm: {msg}" for p, msg in bad]
    if problems:
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        raise DlrcError(f"{path}: " + "; ".join(problems[:20]) + more)
    return df.set_index("patient_id", drop=False).rename_axis("patient_id")


# ------------------------------------------------------------------ scanners
def scanner_status(doc: Mapping, study: pd.DataFrame, policy: str) -> pd.Series:
    """Per patient "seen" (a scanner the run harmonised: the model holds its estimates) or
    "harmonised from own data"; raises under ``refuse`` (or when a new scanner has too few
    patients to harmonise) with one line naming scanners, patients, the known scanners and
    what to do."""
    if policy not in POLICIES:
        raise DlrcError(f"--scanner-policy: '{policy}' is not one of {', '.join(POLICIES)}")
    batch_col = doc["harmonisation"].get("batch", "scanner")
    known = set(doc["harmonisation"].get("known_batches", []))
    batches = study[batch_col].astype(str)
    if doc["harmonisation"].get("mode") == "none":
        return pd.Series("not harmonised (model without ComBat)", index=study.index)
    new = sorted(set(batches) - known)
    status = pd.Series("seen", index=study.index)
    if not new:
        return status

    def who(b: str) -> str:
        ids = list(batches.index[batches == b])
        return f"{batch_col} '{b}' (patient{'s' if len(ids) > 1 else ''} {', '.join(ids[:5])}" + \
            (f" and {len(ids) - 5} more" if len(ids) > 5 else "") + ")"

    knows = f"the model knows {batch_col}s {', '.join(sorted(known)) or '(none)'}"
    if policy == "refuse":
        raise DlrcError(
            "; ".join(who(b) for b in new) + f": not seen when the model was fitted ({knows}); "
            f"rerun with --scanner-policy harmonise to estimate its harmonisation from these patients' own "
            f"images (at least {MIN_NEW_BATCH} per {batch_col} in one manifest)")
    small = [b for b in new if (batches == b).sum() < MIN_NEW_BATCH]
    if small:
        raise DlrcError("; ".join(who(b) for b in small) + f": an unseen {batch_col} needs at least "
                        f"{MIN_NEW_BATCH} patients to be harmonised from its own data ({knows}); list at least "
                        f"{MIN_NEW_BATCH} patients of that {batch_col} in one manifest")
    status[batches.isin(new)] = "harmonised from own data"
    return status


# ------------------------------------------------------------------- scoring
def _apply_score(state: Mapping, features: pd.DataFrame, batches: pd.Series, harmonise_new: bool) -> pd.Series:
    """A stored score pipeline (:meth:`FeatureScore.to_dict`'s dict) applied to new patients."""
    score = FeatureScore.from_dict(state).transform(features, batches,
                                                    unseen="estimate" if harmonise_new else "error")
    return pd.Series(np.asarray(score, float).ravel(), index=features.index)


def has_deep(doc: Mapping) -> bool:
    """Whether the model has a deep-learning score (not when deep learning was switched off)."""
    return bool(doc["deep"].get("model"))


def score_patients(doc: Mapping, study: pd.DataFrame, rad_features: pd.DataFrame,
                   dl_features: pd.DataFrame | None, policy: str = "refuse") -> pd.DataFrame:
    """Scores, risk, nomogram points and decision for patients whose features are given.

    ``study`` (index patient_id) holds the batch column and the clinical inputs;
    the feature frames are indexed by patient_id and named as at fitting time (``dl_features``
    None for a model without deep learning).
    """
    status = scanner_status(doc, study, policy)
    batch_col = doc["harmonisation"].get("batch", "scanner")
    batches = study[batch_col].astype(str)
    frames = [("radiomics", rad_features)] + ([("deep", dl_features)] if has_deep(doc) else [])
    for name, feats in frames:
        missing = study.index.difference(feats.index)
        if len(missing):
            raise DlrcError(f"{name} features: none for patient(s) {', '.join(map(str, missing[:10]))}")
    harmonise_new = bool((status == "harmonised from own data").any())
    rad = _apply_score(doc["radiomics"]["state"], rad_features.loc[study.index], batches, harmonise_new)
    dl = (_apply_score(doc["deep"]["state"], dl_features.loc[study.index], batches, harmonise_new)
          if has_deep(doc) else None)
    return score_from_scores(doc, study, rad, dl, status)


def score_from_scores(doc: Mapping, study: pd.DataFrame, rad_score: pd.Series, dl_score: pd.Series | None,
                      status: pd.Series | None = None) -> pd.DataFrame:
    """The output rows from Rad_score / DL_score (None: a model without deep learning) and the
    clinical inputs."""
    frame = study.copy()
    frame["Rad_score"] = rad_score.loc[study.index].astype(float)
    scores = ["Rad_score"]
    if dl_score is not None:
        frame["DL_score"] = dl_score.loc[study.index].astype(float)
        scores.append("DL_score")
    clinical = list(doc.get("clinical", {}))
    X = design_matrix(frame, clinical, scores=scores)
    model = DlrcModel.from_dict(doc["dlrc"])
    prob = model.predict_proba(X)
    nom = Nomogram.from_dict(doc["nomogram"])
    out = pd.DataFrame(index=study.index)
    batch_col = doc["harmonisation"].get("batch", "scanner")
    out[batch_col] = study[batch_col].astype(str)  # the batch column: scanner (or centre)
    out["scanner_status"] = status if status is not None else "seen"
    for score in scores:
        out[score] = frame[score]
    for term in model.terms_:
        if term not in ("Rad_score", "DL_score"):
            out[term] = X[term]
    out["prob_radiomics"] = expit(out["Rad_score"])
    if "DL_score" in scores:
        out["prob_dl"] = expit(out["DL_score"])
    out["prob_dlrc"] = prob
    outside = []
    for pid in X.index:
        pts = nom.points_for(X.loc[pid].to_dict())
        for t in nom.terms:
            out.loc[pid, f"points_{t}"] = pts[t]
        out.loc[pid, "total_points"] = pts["total"]
        off = [t for t in nom.terms if t in nom.ranges and not
               (nom.ranges[t][0] <= X.loc[pid, t] <= nom.ranges[t][1])]
        outside.append(", ".join(off))
    out["outside_nomogram_range"] = outside
    cut = float(doc["cutoffs"]["dlrc"])
    out["cutoff"] = cut
    out["lnm_predicted"] = (out["prob_dlrc"] >= cut).astype(int)
    out.index.name = "patient_id"
    return out


# ---------------------------------------------------------------- extraction
def _settings_file(doc: Mapping, cache_dir: Path) -> Path:
    """The stored PyRadiomics settings written to a file named by its content."""
    text = doc["radiomics"]["settings_text"]
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    name = Path(doc["radiomics"].get("settings_file", "radiomics.yaml")).name
    path = cache_dir / "model_settings" / digest / name
    if not path.exists():
        atomic_write_text(path, text)
    return path


def extract_features(doc: Mapping, study: pd.DataFrame, cache_dir: str | Path,
                     n_jobs: int = 0) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Radiomics and deep features of the new patients (cached; no deep features for a model
    without deep learning); a patient whose features cannot be extracted stops the prediction
    with the reason."""
    cache_dir = Path(cache_dir)
    table = study.reset_index(drop=True)
    rad = extract_radiomics(table, _settings_file(doc, cache_dir), cache_dir,
                            sequences=doc["sequences"], n_jobs=n_jobs)
    if len(rad.lost):
        raise DlrcError("radiomics extraction failed: " + "; ".join(
            f"patient {r.patient_id}: {r.reason}" for r in rad.lost.itertuples()))
    dl = _extract_deep(doc, table, cache_dir) if has_deep(doc) else None
    return rad.features, dl


def deep_params_of(doc: Mapping):
    """The :class:`~dlrc_lib.core.config.DeepParams` the model's DL features were extracted with."""
    prep = {k: v for k, v in dict(doc["deep"]["preprocessing"]).items() if k in DeepParams.model_fields}
    # the weights the model was fitted with, not the setting that led to them ("auto" may
    # have fallen back to random weights, or may find ImageNet weights here that it did not there)
    rec = doc["deep"].get("weights")
    if isinstance(rec, Mapping):
        source = rec.get("source")
        if source in ("random", "imagenet"):
            prep["weights"] = source
        elif source == "file" and rec.get("path"):
            prep["weights"] = rec["path"]
    return DeepParams.model_validate({**prep, "models": [doc["deep"]["model"]]})


def _deep_seed(doc: Mapping) -> int:
    rec = doc["deep"].get("weights")
    if isinstance(rec, Mapping) and rec.get("seed") is not None:
        return int(rec["seed"])
    return int(doc.get("run", {}).get("seed", 0))


def _weights_identity(info: Any) -> str | None:
    if info is None:
        return None
    if isinstance(info, Mapping):
        return info.get("identity")
    return getattr(info, "identity", str(info))


def _extract_deep(doc: Mapping, table: pd.DataFrame, cache_dir: Path) -> pd.DataFrame:
    """The stored network's features; refuses when the weights found here are not the
    ones the model was fitted with (a different checkpoint gives different features)."""
    from dlrc_lib.features.deep import ExtractionLog, extract_study, parse_model_name  # deferred: imports torch

    name = doc["deep"]["model"]
    log = ExtractionLog()
    feats = extract_study(table, deep_params_of(doc), cache_dir, _deep_seed(doc),
                          models=[name], sequences=doc["sequences"], log=log)[name]
    stored = _weights_identity(doc["deep"].get("weights"))
    found = _weights_identity(log.weights.get(parse_model_name(name)[0]))
    if stored and found and stored != found:
        raise DlrcError(f"{name}: the network weights available here ({found}) are not those the model "
                        f"was fitted with ({stored}); set the same weights (deep.weights / TORCH_HOME)")
    return feats


# ---------------------------------------------------------------------- CLI
def predict_manifest(model_path: str | Path, manifest: str | Path, policy: str | None = None,
                     cache_dir: str | Path | None = None) -> pd.DataFrame:
    doc = load_model(model_path)
    policy = policy or doc["harmonisation"].get("scanner_policy", "refuse")
    study = read_new_patients(manifest, doc)
    scanner_status(doc, study, policy)  # refuse before any extraction
    cache = Path(cache_dir or doc.get("run", {}).get("cache_dir", ".dlrc_cache"))
    rad, dl = extract_features(doc, study, cache)
    return score_patients(doc, study, rad, dl, policy)
