"""How much LNM and scanner signal a twin carries, measured with quick numpy features.

A check of the generator, not part of the paper's analysis: for each reader-1 mask it
computes a handful of first-order, texture and shape features (numpy only, fast), then

* the cross-validated AUC of a logistic model predicting LNM - on features standardised
  within each scanner (a crude stand-in for harmonisation) and on raw features;
* the cross-validated one-vs-rest AUC of a random forest predicting the
  centre (and the scanner) from the raw features: large when scanner effects are real.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from dlrc_lib.core.processes import worker_pool
from dlrc_lib.study.images import read_image, read_mask
from dlrc_lib.study.manifest import by_patient
from dlrc_lib.study.schema import SEQUENCES


def quick_features(image: np.ndarray, mask: np.ndarray, spacing: Iterable[float]) -> dict[str, float]:
    """First-order, texture and shape features of the voxels under ``mask`` (arrays z, y, x)."""
    m = mask.astype(bool)
    x = image[m].astype(float)
    sp = np.asarray(list(spacing), dtype=float)  # x, y, z
    mean, sd = x.mean(), x.std()
    z = (x - mean) / sd if sd > 0 else np.zeros_like(x)
    lo, hi = np.percentile(x, [1, 99])
    hist, _ = np.histogram(x, bins=32, range=(lo, hi if hi > lo else lo + 1))
    p = hist[hist > 0] / hist.sum()
    # texture: mean absolute difference of in-mask neighbours along x and y, and gradient
    img = image.astype(float)
    dx = np.abs(np.diff(img, axis=2))[m[:, :, 1:] & m[:, :, :-1]]
    dy = np.abs(np.diff(img, axis=1))[m[:, 1:, :] & m[:, :-1, :]]
    nd = np.concatenate([dx, dy])
    # shape: voxel faces on the boundary vs volume (surface-to-volume, sphericity-like)
    faces = 0.0
    pad = np.pad(m, 1)
    areas = (sp[0] * sp[1], sp[0] * sp[2], sp[1] * sp[2])  # z-faces, y-faces, x-faces
    for axis, area in zip(range(3), areas):
        faces += np.count_nonzero(np.diff(pad.astype(np.int8), axis=axis)) * area
    vol = m.sum() * float(np.prod(sp))
    return {
        "mean": mean, "sd": sd, "cov": sd / mean if mean else 0.0,
        "skewness": float((z ** 3).mean()), "kurtosis": float((z ** 4).mean()),
        "p10": float(np.percentile(x, 10)), "p90": float(np.percentile(x, 90)),
        "entropy": float(-(p * np.log2(p)).sum()),
        "neighbour_diff": float(nd.mean()) if nd.size else 0.0,
        "neighbour_diff_rel": float(nd.mean() / mean) if nd.size and mean else 0.0,
        "volume_ml": vol / 1000.0,
        "sphericity": float(np.pi ** (1 / 3) * (6 * vol) ** (2 / 3) / faces) if faces else 0.0,
    }


def _patient_features(row: dict) -> dict[str, float]:
    import SimpleITK as sitk

    out = {}
    for seq in SEQUENCES:
        img = read_image(row[f"image_{seq}"])
        msk = read_mask(row[f"mask_{seq}"], img)
        f = quick_features(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(msk), img.GetSpacing())
        out.update({f"{seq}_{k}": v for k, v in f.items()})
    return out


def study_features(study: pd.DataFrame, n_jobs: int = 1, progress: bool = True) -> pd.DataFrame:
    """Quick features of every patient's reader-1 masks (index patient_id)."""
    from tqdm.auto import tqdm

    rows = study.to_dict("records")
    if n_jobs == 1:
        feats = [_patient_features(r) for r in tqdm(rows, disable=not progress, desc="features")]
    else:
        with worker_pool(n_jobs) as ex:
            feats = list(tqdm(ex.map(_patient_features, rows, chunksize=8), total=len(rows),
                              disable=not progress, desc="features"))
    return pd.DataFrame(feats, index=study["patient_id"].to_numpy())


def within_batch_standardise(x: pd.DataFrame, batch: pd.Series) -> pd.DataFrame:
    """z-score each feature within each batch (location/scale removal, as ComBat without EB)."""
    g = x.groupby(batch.to_numpy())
    sd = g.transform("std").replace(0, 1).fillna(1)
    return (x - g.transform("mean")) / sd


def cv_auc_lnm(x: pd.DataFrame, y: np.ndarray, *, folds: int = 5, repeats: int = 5, seed: int = 0,
               C: float = 0.1) -> float:
    """Mean AUC of an L2 logistic model over repeated stratified k-fold CV."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    aucs = []
    for r in range(repeats):
        pred = np.zeros(len(y))
        for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed + r).split(x, y):
            model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
            model.fit(x.iloc[tr], y[tr])
            pred[te] = model.predict_proba(x.iloc[te])[:, 1]
        aucs.append(roc_auc_score(y, pred))
    return float(np.mean(aucs))


def cv_auc_batch(x: pd.DataFrame, batch: np.ndarray, *, folds: int = 5, seed: int = 0) -> float:
    """Macro one-vs-rest AUC of a random forest predicting the batch label (CV probabilities)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    labels, y = np.unique(batch, return_inverse=True)
    k = max(2, min(folds, int(np.bincount(y).min())))
    model = RandomForestClassifier(n_estimators=300, min_samples_leaf=2, random_state=seed, n_jobs=1)
    prob = cross_val_predict(model, x, y, cv=StratifiedKFold(k, shuffle=True, random_state=seed),
                             method="predict_proba")
    return float(roc_auc_score(y, prob, multi_class="ovr", average="macro"))


def signal_check(study: pd.DataFrame, features: pd.DataFrame | None = None, *, n_jobs: int = 1,
                 seed: int = 0, progress: bool = True) -> dict:
    """The LNM and centre/scanner AUCs described in the module docstring."""
    feats = features if features is not None else study_features(study, n_jobs, progress)
    st = by_patient(study).loc[feats.index.astype(str)]
    y = st["lnm"].to_numpy().astype(int)
    harm = within_batch_standardise(feats, st["scanner"])
    return {
        "n_patients": int(len(feats)),
        "n_features": int(feats.shape[1]),
        "lnm_auc_within_scanner_standardised": cv_auc_lnm(harm, y, seed=seed),
        "lnm_auc_raw": cv_auc_lnm(feats, y, seed=seed),
        "centre_auc_raw": cv_auc_batch(feats, st["centre"].to_numpy(), seed=seed),
        "scanner_auc_raw": cv_auc_batch(feats, st["scanner"].to_numpy(), seed=seed),
        "centre_auc_standardised": cv_auc_batch(harm, st["centre"].to_numpy(), seed=seed),
    }
