"""From a feature matrix to a score: harmonise, select on the training cohort, score everyone.

:class:`FeatureScore` is the whole chain the paper used for the radiomics model and for
each deep-learning model, as a scikit-learn-style estimator: (optional ICC filter) -> ComBat
-> Mann–Whitney -> Spearman -> LASSO -> backward AIC -> logistic model, whose linear
predictor is the score (Rad_score, DL_score). :meth:`FeatureScore.fit` fits it on a study;
:meth:`FeatureScore.transform` scores new patients without refitting: their features are
harmonised with the stored ComBat estimates, standardised with the training means and SDs,
and combined with the stored coefficients. :meth:`FeatureScore.to_dict` gives what
``transform`` needs as a JSON-able dict (the model file keeps it), and
:meth:`FeatureScore.from_dict` reads it back.

Patients are never dropped silently: a patient without usable features (failed extraction)
gets no score, and the reason is listed in :attr:`FeatureScore.excluded_`.
"""
from __future__ import annotations

import copy
from typing import Any, Literal, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from dlrc_lib.core.config import HarmonisationParams, SelectionParams
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.memo import Memo, code_fingerprint, digest
from dlrc_lib.scores.combat import CombatEstimates, apply_combat, harmonise
from dlrc_lib.scores.selection import select_features, standardise
from dlrc_lib.study.manifest import by_patient

__all__ = ["FeatureScore", "EmptySelectionError", "score_frame", "selected_table", "STATE_VERSION",
           "SUPPORTED_STATE_VERSIONS"]

STATE_VERSION = 2  # 2: harmonisation.own_data, the estimates of batches harmonised from their own data
SUPPORTED_STATE_VERSIONS = (1, 2)  # 1: only the batches of the ComBat fit itself


class EmptySelectionError(DlrcError):
    """A selection step left no feature; ``.estimator`` (the :class:`FeatureScore`) holds the
    funnel and the explanation."""

    def __init__(self, message: str, estimator: "FeatureScore"):
        super().__init__(message)
        self.estimator = estimator


class FeatureScore:
    """Features -> score: ComBat, training-cohort selection and a logistic model.

    Parameters
    ----------
    harmonisation, selection : ``HarmonisationParams`` and ``SelectionParams``
        (:mod:`dlrc_lib.core.config`).
    seed : seeds the LASSO cross-validation folds.
    cache_dir : optional feature-store folder; :meth:`fit` is then cached under
        ``<cache_dir>/memo/feature_score``, keyed by the bytes of every input, the parameters,
        the seed and the code (:mod:`dlrc_lib.core.memo`), so a re-run on unchanged inputs loads it.
    memo : optional :class:`~dlrc_lib.core.memo.Memo` to use instead (its hit/miss counts are
        kept for provenance).

    Attributes after :meth:`fit` (what :meth:`transform` needs, also after :meth:`from_dict`)
    ----------------------------------------------------------------------------------------
    features_ : the selected features, in model order.
    mean_, sd_ : their training means and SDs (after ComBat), the standardisation.
    intercept_, coef_ : the logistic model on the standardised features (per training SD).
    estimates_ : the ComBat fit's :class:`~dlrc_lib.scores.combat.CombatEstimates` (None without ComBat).
    own_data_ : the batches harmonised towards the fit from their own data (``{"batches",
        "gamma_star", "delta_star", "batch_sizes"}``; None without ComBat).

    Attributes of the fit only
    --------------------------
    score_ : the linear predictor over ALL study patients (NaN for excluded ones).
    funnel_ : features left after each step (step, n_features, rule).
    selected_ : feature, coef, se, z, p, OR, OR_lower, OR_upper of the final model.
    harmonised_, raw_ : the features after and before ComBat (included patients x usable features).
    selection_ : the :class:`~dlrc_lib.scores.selection.SelectionResult` (``.lasso``, ``.coefficients``, ...).
    harmonisation_ : the :class:`~dlrc_lib.scores.combat.HarmonisationResult`.
    excluded_ : patient_id, cohort, reason of every patient without a score.
    notes_ : what the fit changed or left out, one sentence each.
    """

    def __init__(self, harmonisation: HarmonisationParams | Mapping, selection: SelectionParams | Mapping, *,
                 seed: int = 0, cache_dir: Optional[str] = None, memo: Optional[Memo] = None):
        self.harmonisation = harmonisation
        self.selection = selection
        self.seed = seed
        self.cache_dir = cache_dir
        self.memo = memo
        self._version = STATE_VERSION

    def __repr__(self) -> str:
        return f"FeatureScore(harmonisation={self.harmonisation!r}, selection={self.selection!r}, seed={self.seed!r})"

    # ------------------------------------------------------------------ fitting
    def fit(self, X: pd.DataFrame, study: pd.DataFrame, *, keep: Optional[Sequence[str]] = None,
            keep_label: str = "ICC filter", lost: Optional[pd.DataFrame] = None) -> "FeatureScore":
        """Harmonise, select on the training cohort and score every patient of ``study``.

        ``X``: patients x features (index patient_id), e.g. all radiomics features. ``study``:
        the study table (``dlrc_lib.study.manifest.load_study``): cohort, lnm, scanner, centre.
        ``keep``: optional feature subset to start from (e.g. the ICC-reproducible features),
        recorded as the funnel step ``keep_label`` after the input. ``lost``: optional table
        (patient_id, reason) of patients whose extraction failed, e.g. ``RadiomicsResult.lost``;
        their reasons are carried into :attr:`excluded_`.

        Raises :class:`EmptySelectionError` (a ``DlrcError``) with the explanation when a
        selection step leaves no feature; its ``.estimator`` still carries the funnel.
        """
        memo = self.memo if self.memo is not None else Memo(self.cache_dir, "feature_score")
        key = None
        code = code_fingerprint(_FIT_MODULES) if memo.root is not None else None
        if code is not None:
            st = by_patient(study)
            cols = [c for c in ("cohort", "lnm", self.harmonisation.batch) if c in st.columns]
            key = digest(X, st[cols], None if keep is None else [str(k) for k in keep],
                         self.harmonisation, self.selection, self.seed, keep_label, lost, code)

        # the cross-validated LASSO path, shared by fits that differ only in the lambda rule
        lasso_memo = Memo(memo.root.parent.parent, "lasso_cv", max_entries=128) if memo.root is not None else None

        def compute() -> dict[str, Any]:
            fitted, error = _fit_feature_score(X, study, keep=keep, harmonisation=self.harmonisation,
                                               selection=self.selection, seed=self.seed, keep_label=keep_label,
                                               lost=lost, lasso_memo=lasso_memo)
            return {"result": fitted, "error": error}

        out = memo.get_or_compute(key, compute)
        self.__dict__.update(out["result"])
        self._version = STATE_VERSION
        if out["error"] is not None:
            raise EmptySelectionError(out["error"], self)
        return self

    # ------------------------------------------------------------------ scoring
    def transform(self, X: pd.DataFrame, batches: pd.Series, *,
                  unseen: Literal["error", "estimate"] = "error") -> pd.Series:
        """The score (linear predictor) of new patients.

        ``X``: patients x features (at least the selected ones; all the harmonised features
        when a batch is new and ``unseen="estimate"``). ``batches``: each patient's scanner or
        centre (whichever the fit harmonised by). A scanner the fit harmonised (in the ComBat
        fit, or from its own data, e.g. a validation cohort's scanner in mode
        ``train_reference``) gets the stored estimates, so a patient is scored exactly as at
        fitting time. Scanners unknown to the fit are refused (``unseen="error"``) or
        harmonised towards the reference from the new patients' own data (``"estimate"``, at
        least 2 patients per new scanner).
        """
        self._check_fitted()
        feats = list(self.features_)
        if not feats:
            raise DlrcError("feature score has no selected feature")
        X = X.copy()
        X.index = X.index.astype(str)
        missing = [f for f in feats if f not in X.columns]
        if missing:
            raise DlrcError(f"feature score: selected feature(s) missing from the new data: {', '.join(missing)}")
        if self.estimates_ is not None:
            est = self.harmonised_batches()
            batches = pd.Series(batches).astype(str)
            batches.index = batches.index.astype(str)
            new = sorted(set(batches.reindex(X.index).dropna().unique()) - set(est.batches))
            if not new:
                est = _subset(est, feats)
            Xh = apply_combat(est, X, batches, unseen=unseen, label=_field(self.harmonisation, "batch") or "batch")
        else:
            Xh = X
        bad = ~np.isfinite(Xh[feats].to_numpy(dtype=float))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise DlrcError(f"feature score: patient {Xh.index[r]} has no value for {feats[c]}")
        Z = (Xh[feats].to_numpy(dtype=float) - self.mean_) / self.sd_
        lp = self.intercept_ + Z @ self.coef_
        return pd.Series(lp, index=Xh.index, name="score")

    def harmonised_batches(self) -> Optional[CombatEstimates]:
        """The ComBat estimates of every batch the fit harmonised: the ComBat fit's, plus those
        of the batches harmonised from their own data; None without ComBat."""
        self._check_fitted()
        if self.estimates_ is None:
            return None
        od = self.own_data_ or {}
        if not od.get("batches"):
            return self.estimates_
        return self.estimates_.with_batches(
            {str(b): (g, d) for b, g, d in zip(od["batches"], od["gamma_star"], od["delta_star"])},
            od.get("batch_sizes"))

    def standardised(self, cohort: Optional[str] = None, study: Optional[pd.DataFrame] = None) -> pd.DataFrame:
        """Selected features after harmonisation, standardised with the training scaling."""
        sel = self.selection_
        feats = list(sel.coef.index)
        Z = standardise(self.harmonised_, sel.mean[feats], sel.sd[feats])
        if cohort is not None and study is not None:
            coh = by_patient(study).loc[Z.index, "cohort"]
            Z = Z[coh.to_numpy() == cohort]
        return Z

    # ------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """What :meth:`transform` needs, JSON-able (the model file's score ``state``):
        ``version``, ``harmonisation`` (mode, batch, parametric, the ComBat ``estimates`` and
        the ``own_data`` batches), ``selection`` (the parameters and seed, for the record),
        ``features``, ``scaler`` (mean, sd) and ``model`` (intercept, coef)."""
        self._check_fitted()
        h = self.harmonisation
        harm = {"mode": _field(h, "mode"), "batch": _field(h, "batch"), "parametric": bool(_field(h, "parametric")),
                "estimates": self.estimates_.to_dict() if self.estimates_ is not None else None}
        if self._version >= 2:
            harm["own_data"] = copy.deepcopy(self.own_data_)
        return {
            "version": self._version,
            "harmonisation": harm,
            "selection": {**_dump(self.selection), "seed": int(self.seed)},
            "features": [str(f) for f in self.features_],
            "scaler": {"mean": self.mean_.tolist(), "sd": self.sd_.tolist()},
            "model": {"intercept": self.intercept_, "coef": self.coef_.tolist()},
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> "FeatureScore":
        """A fitted :class:`FeatureScore` from :meth:`to_dict`'s dict (state versions
        :data:`SUPPORTED_STATE_VERSIONS`); it can :meth:`transform`, not show the fit's tables."""
        version = state.get("version")
        if version not in SUPPORTED_STATE_VERSIONS:
            raise DlrcError(f"feature-score state version {version} is not supported "
                            f"(this dlrc reads version{'s' if len(SUPPORTED_STATE_VERSIONS) > 1 else ''} "
                            f"{', '.join(map(str, SUPPORTED_STATE_VERSIONS))})")
        hs = state["harmonisation"]
        sel = dict(state.get("selection") or {})
        seed = sel.pop("seed", 0)
        harmonisation = _params(HarmonisationParams, {k: hs[k] for k in ("mode", "batch", "parametric") if k in hs})
        est = cls(harmonisation, _params(SelectionParams, sel), seed=seed)
        est._version = int(version)
        est.features_ = [str(f) for f in state["features"]]
        est.mean_ = np.asarray(state["scaler"]["mean"], dtype=float)
        est.sd_ = np.asarray(state["scaler"]["sd"], dtype=float)
        intercept = state["model"]["intercept"]
        est.intercept_ = None if intercept is None else float(intercept)
        est.coef_ = np.asarray(state["model"]["coef"], dtype=float)
        est.estimates_ = CombatEstimates.from_dict(hs["estimates"]) if hs.get("estimates") is not None else None
        est.own_data_ = copy.deepcopy(hs.get("own_data"))
        return est

    def _check_fitted(self) -> None:
        if not hasattr(self, "features_"):
            raise DlrcError("FeatureScore is not fitted: call fit() or from_dict() first")


def _field(params: Any, name: str) -> Any:
    return params.get(name) if isinstance(params, Mapping) else getattr(params, name)


def _dump(params: Any) -> dict[str, Any]:
    return dict(params) if isinstance(params, Mapping) else params.model_dump(mode="json")


def _params(cls, record: Mapping[str, Any]):
    """The parameter section of a stored record, or the record itself when this version's
    schema no longer reads it (it then only travels back into :meth:`FeatureScore.to_dict`)."""
    try:
        return cls.model_validate(dict(record))
    except ValueError:
        return dict(record)


def _seq_of(name: str) -> str:
    return name.split("_", 1)[0] if "_" in name else ""


def _screen_patients(features: pd.DataFrame, study: pd.DataFrame,
                     lost: Optional[pd.DataFrame] = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Patients kept for scoring, and the excluded ones with a reason each."""
    rows = []
    why: dict[str, str] = {}
    if lost is not None and len(lost):
        why = dict(zip(lost["patient_id"].astype(str), lost["reason"].astype(str)))
    absent = [p for p in study.index if p not in features.index]
    for pid in absent:
        reason = f"no features: {why[pid]}" if pid in why else "no features (extraction failed or not run)"
        rows.append((pid, study.at[pid, "cohort"], reason))
    present = features.loc[features.index.intersection(study.index, sort=False)]
    present = present.loc[[p for p in study.index if p in present.index]]
    vals = present.to_numpy(dtype=float)
    bad = ~np.isfinite(vals)
    seqs = np.array([_seq_of(c) for c in present.columns])
    keep = []
    for i, pid in enumerate(present.index):
        if not bad[i].any():
            keep.append(pid)
            continue
        lost = [s for s in dict.fromkeys(seqs) if bad[i, seqs == s].all()]
        if lost or bad[i].mean() > 0.5:
            what = f"no {', '.join(lost)} features" if lost else f"{int(bad[i].sum())} of {bad.shape[1]} features missing"
            rows.append((pid, study.at[pid, "cohort"], what + " (extraction failed)"))
        else:
            keep.append(pid)
    excluded = pd.DataFrame(rows, columns=["patient_id", "cohort", "reason"])
    return present.loc[keep], excluded


_FIT_MODULES = ("dlrc_lib.scores.pipeline", "dlrc_lib.scores.selection", "dlrc_lib.scores.combat", "dlrc_lib.stats")


def _fit_feature_score(features: pd.DataFrame, study: pd.DataFrame, *, keep: Optional[Sequence[str]],
                       harmonisation, selection, seed: int, keep_label: str,
                       lost: Optional[pd.DataFrame],
                       lasso_memo: Optional[Memo] = None) -> tuple[dict[str, Any], Optional[str]]:
    """The fitted attributes of :class:`FeatureScore` (by name) and, when a selection step
    left no feature, the explanation (else None)."""
    study = by_patient(study)
    features = features.copy()
    features.index = features.index.astype(str)
    unknown = features.index.difference(study.index)
    notes: list[str] = []
    if len(unknown):
        notes.append(f"{len(unknown)} patient(s) with features are not in the study table and were "
                     f"ignored, e.g. {', '.join(map(str, unknown[:3]))}")
    funnel = [{"step": "Extracted", "n_features": features.shape[1], "rule": "all features"}]
    if keep is not None:
        keep = [str(k) for k in keep]
        missing = [k for k in keep if k not in features.columns]
        if missing:
            notes.append(f"{len(missing)} feature(s) of the {keep_label} set are not in the feature "
                         f"matrix, e.g. {', '.join(missing[:3])}")
        wanted = set(keep)
        kept = [c for c in features.columns if c in wanted]
        features = features[kept]
        funnel.append({"step": keep_label, "n_features": len(kept), "rule": "kept features"})
    data, excluded = _screen_patients(features, study, lost)
    # features missing for a remaining patient cannot be harmonised: drop them (counted)
    finite = np.isfinite(data.to_numpy(dtype=float)).all(axis=0)
    if not finite.all():
        notes.append(f"{int((~finite).sum())} feature(s) with missing values in some patients were not used")
    data = data.loc[:, finite]
    cohort = study.loc[data.index, "cohort"].astype(str)
    train = data.index[cohort.to_numpy() == "train"]
    if len(train) == 0:
        raise DlrcError("feature score: no training-cohort patient has usable features")
    # features constant in the training cohort carry nothing and break ComBat's pooled variance
    sd_train = data.loc[train].std(ddof=0)
    n_const = int((sd_train.to_numpy() == 0).sum())
    data = data.loc[:, sd_train.to_numpy() > 0]
    funnel.append({"step": "Usable (finite, non-constant)", "n_features": data.shape[1],
                   "rule": f"{int((~finite).sum())} with missing values, {n_const} constant in training"})
    h = harmonise(data, study, harmonisation)
    harm = h.features
    if h.unharmonised:
        col = harmonisation.batch
        b = study.loc[harm.index, col].astype(str)
        who = [f"{col} {u} ({', '.join(b.index[b == u])})" for u in h.unharmonised]
        notes.append("ComBat: single-patient batch(es) left unharmonised (harmonisation.small_batch: "
                     "skip): " + "; ".join(who))
    y = study.loc[train, "lnm"].astype(int)
    sel = select_features(harm.loc[train], y, selection, seed=seed, funnel_prefix=funnel,
                          record_usable=False, lasso_memo=lasso_memo)
    notes.extend(sel.notes)
    score = pd.Series(np.nan, index=study.index, name="score")
    if sel.ok:
        score.loc[harm.index] = sel.linear_predictor(harm).to_numpy()
        coefs = sel.coefficients[sel.coefficients["term"] != "(Intercept)"]
        selected = coefs.rename(columns={"term": "feature"}).reset_index(drop=True)
    else:
        selected = pd.DataFrame(columns=["feature", "coef", "se", "z", "p", "OR", "OR_lower", "OR_upper"])
    feats = list(sel.coef.index) if sel.ok else []
    fitted = {
        "features_": [str(f) for f in feats],
        "mean_": np.array([float(sel.mean[f]) for f in feats], dtype=float),
        "sd_": np.array([float(sel.sd[f]) for f in feats], dtype=float),
        "intercept_": float(sel.intercept) if sel.ok else None,
        "coef_": np.array([float(sel.coef[f]) for f in feats], dtype=float),
        "estimates_": h.estimates,
        # the batches outside the fit (e.g. validation-only scanners in mode train_reference),
        # harmonised towards it from their own data: their location/scale as applied
        "own_data_": _own_data_state(h),
        "score_": score, "funnel_": sel.funnel, "selected_": selected, "harmonised_": harm, "raw_": data,
        "selection_": sel, "harmonisation_": h, "excluded_": excluded, "notes_": notes,
    }
    return fitted, None if sel.ok else (sel.explanation or "selection left no feature")


def _own_data_state(h) -> Optional[dict[str, Any]]:
    """``{"batches", "gamma_star", "delta_star", "batch_sizes"}`` of the batches harmonised from
    their own data (rows in batch order, over the fit's features); None without ComBat."""
    if h.estimates is None:
        return None
    new = sorted(h.new_batches)
    sizes = h.applied.batch_sizes if h.applied is not None else {}
    return {
        "batches": [str(b) for b in new],
        "gamma_star": [np.asarray(h.new_batches[b][0], dtype=float).tolist() for b in new],
        "delta_star": [np.asarray(h.new_batches[b][1], dtype=float).tolist() for b in new],
        "batch_sizes": {str(b): int(sizes[b]) for b in new if b in sizes},
    }


def _subset(est: CombatEstimates, feats: list[str]) -> CombatEstimates:
    idx = [est.features.index(f) for f in feats]
    return CombatEstimates(
        features=feats, batches=est.batches, grand_mean=est.grand_mean[idx],
        var_pooled=est.var_pooled[idx], gamma_star=est.gamma_star[:, idx],
        delta_star=est.delta_star[:, idx], parametric=est.parametric,
        passthrough=[f for f in est.passthrough if f in feats], batch_sizes=est.batch_sizes,
        unharmonised=est.unharmonised, own_data=est.own_data,
    )


def score_frame(fitted: FeatureScore, study: pd.DataFrame, name: str = "Rad_score") -> pd.DataFrame:
    """The hand-over frame of a fitted score: index patient_id, columns cohort, lnm, ``name``
    (NaN for patients without features; :attr:`FeatureScore.excluded_` says why)."""
    st = by_patient(study)
    out = pd.DataFrame({"cohort": st["cohort"].astype(str), "lnm": st["lnm"].astype(int),
                        name: fitted.score_.reindex(st.index).astype(float)})
    out.index.name = "patient_id"
    return out


def selected_table(fitted: FeatureScore, digits: int = 3) -> pd.DataFrame:
    """The final model as the paper's Table S2: feature, coefficient (per training SD),
    OR with Wald 95 % CI, p; the intercept last. Sorted by |coefficient|."""
    c = fitted.selection_.coefficients.copy()
    inter = c[c["term"] == "(Intercept)"]
    feats = c[c["term"] != "(Intercept)"]
    feats = feats.reindex(feats["coef"].abs().sort_values(ascending=False, kind="mergesort").index)
    c = pd.concat([feats, inter])

    def p_text(p: float) -> str:
        return "<0.001" if p < 0.001 else f"{p:.{digits}f}"

    return pd.DataFrame({
        "Feature": c["term"].to_numpy(),
        "Coefficient": c["coef"].round(digits).to_numpy(),
        "SE": c["se"].round(digits).to_numpy(),
        "OR (95% CI)": [f"{_num(o, digits)} ({_num(lo, digits)}–{_num(hi, digits)})" if t != "(Intercept)" else ""
                        for t, o, lo, hi in zip(c["term"], c["OR"], c["OR_lower"], c["OR_upper"])],
        "p": [p_text(p) for p in c["p"]],
    })


def _num(v: float, digits: int) -> str:
    """Fixed decimals for ordinary values, 3 significant digits for extreme ones (separation)."""
    if not np.isfinite(v):
        return "inf" if v > 0 else "-inf" if v < 0 else "NA"
    if v != 0 and (abs(v) >= 1e4 or abs(v) < 10 ** -digits):
        return f"{v:.3g}"
    return f"{v:.{digits}f}"
