"""ComBat harmonisation of feature matrices across scanners (or centres).

Images from different scanners differ systematically in intensity and texture, so the same
tumour gives different radiomics (and deep) features on two machines. ComBat (Johnson et
al., 2007; Fortin et al., 2018) models each feature as

    x_ij = alpha + gamma_i + delta_i * eps_ij          (batch i, patient j)

i.e. a per-batch additive shift ``gamma_i`` and multiplicative scale ``delta_i`` around a
common mean ``alpha`` and pooled variance, and shrinks the per-batch estimates towards
their across-feature average by empirical Bayes, which keeps small batches stable. The
harmonised value removes the batch's shift and scale.

This module fits ComBat with ``neuroCombat`` (the Python port of R ``sva::ComBat`` /
``neuroCombat``) and stores the fitted estimates. The apply step lives here because
``neuroCombatFromTraining`` fails under NumPy 2 and cannot handle batches it has not seen:

* :func:`fit_combat` -> :class:`CombatEstimates` (neuroCombat ``estimates``: grand mean,
  pooled variance, and the empirical-Bayes ``gamma.star`` / ``delta.star`` per batch);
* :func:`apply_combat` applies stored estimates to any data; on the data the estimates were
  fitted on it reproduces neuroCombat's own output (to floating-point rounding);
* a batch the fit never saw can be harmonised towards the fitted reference from its own
  unlabelled data (:func:`estimate_batch`): it is standardised with the reference's grand
  mean and pooled variance and gets its own empirical-Bayes location/scale, exactly the
  computation ComBat does for each batch of a joint fit; those estimates are kept beside the
  fit's (:meth:`CombatEstimates.with_batches`, :attr:`HarmonisationResult.applied`), so a later
  patient of such a batch is given exactly the transformation its batch was given;
* :func:`harmonise` implements the three modes of ``HarmonisationParams``: ``all`` (every
  cohort fitted together, label-free), ``train_reference`` (fitted on the training cohort,
  other scanners harmonised towards it; the default, as the paper does not say what ComBat was
  fitted on) and ``none``.

The outcome is never a ComBat covariate: the design holds only the batch, so harmonisation
cannot leak the label into the features.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import numpy as np
import pandas as pd

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.study.manifest import by_patient

__all__ = [
    "CombatEstimates",
    "fit_combat",
    "apply_combat",
    "estimate_batch",
    "harmonise",
    "HarmonisationResult",
]


@dataclass
class CombatEstimates:
    """Fitted ComBat estimates (one row of ``gamma_star``/``delta_star`` per batch).

    ``features`` are the columns ComBat saw, ``batches`` the batch labels in row order of
    ``gamma_star``/``delta_star``. ``passthrough`` lists features left unchanged (constant in
    the fit data, so they carry no batch effect that could be estimated).
    """

    features: list[str]
    batches: list[str]
    grand_mean: np.ndarray  # (n_features,) neuroCombat stand.mean[:, 0]
    var_pooled: np.ndarray  # (n_features,) neuroCombat var.pooled
    gamma_star: np.ndarray  # (n_batches, n_features) empirical-Bayes additive effects
    delta_star: np.ndarray  # (n_batches, n_features) empirical-Bayes multiplicative effects
    parametric: bool = True
    passthrough: list[str] = field(default_factory=list)
    batch_sizes: dict[str, int] = field(default_factory=dict)
    unharmonised: list[str] = field(default_factory=list)  # single-patient batches left as they are
    # batches not in the fit whose location/scale were estimated from their own data towards
    # the fitted reference (:meth:`with_batches`); their rows follow the same formula
    own_data: list[str] = field(default_factory=list)

    def with_batches(self, extra: dict[str, tuple[np.ndarray, np.ndarray]],
                     sizes: Optional[dict[str, int]] = None) -> "CombatEstimates":
        """A copy holding also the rows of batches harmonised from their own data
        (``extra``: ``{batch: (gamma, delta)}`` over ``features``, as :func:`apply_combat`
        returns them), so that a later patient of such a batch gets exactly the transformation
        its batch got; rows sorted by batch, the new ones listed in ``own_data`` (and in
        ``unharmonised`` when their entry is the identity: a single patient left as it was)."""
        clash = sorted(set(extra) & set(self.batches))
        if clash:
            raise DlrcError(f"ComBat: batch(es) {', '.join(clash)} already have fitted estimates")
        nf = len(self.features)
        rows = {b: (self.gamma_star[i], self.delta_star[i]) for i, b in enumerate(self.batches)}
        for b, (g, d) in extra.items():
            g, d = np.asarray(g, dtype=float).reshape(nf), np.asarray(d, dtype=float).reshape(nf)
            rows[str(b)] = (g, d)
        levels = sorted(rows)
        identity = [str(b) for b, (g, d) in extra.items() if not np.asarray(g).any() and (np.asarray(d) == 1).all()]
        sizes = {str(k): int(v) for k, v in (sizes or {}).items()}
        return CombatEstimates(
            features=list(self.features), batches=levels,
            grand_mean=self.grand_mean.copy(), var_pooled=self.var_pooled.copy(),
            gamma_star=np.array([rows[b][0] for b in levels]).reshape(len(levels), nf),
            delta_star=np.array([rows[b][1] for b in levels]).reshape(len(levels), nf),
            parametric=self.parametric, passthrough=list(self.passthrough),
            batch_sizes={**self.batch_sizes, **{b: sizes[b] for b in map(str, extra) if b in sizes}},
            unharmonised=sorted(set(self.unharmonised) | set(identity)),
            own_data=sorted(set(self.own_data) | {str(b) for b in extra}),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists of floats); inverse of :meth:`from_dict`."""
        return {
            "features": [str(v) for v in self.features],
            "batches": [str(v) for v in self.batches],
            "grand_mean": self.grand_mean.tolist(),
            "var_pooled": self.var_pooled.tolist(),
            "gamma_star": self.gamma_star.tolist(),
            "delta_star": self.delta_star.tolist(),
            "parametric": bool(self.parametric),
            "passthrough": [str(v) for v in self.passthrough],
            "batch_sizes": {str(k): int(v) for k, v in self.batch_sizes.items()},
            "unharmonised": [str(v) for v in self.unharmonised],
            "own_data": [str(v) for v in self.own_data],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CombatEstimates":
        nb, nf = len(d["batches"]), len(d["features"])
        return cls(
            features=list(d["features"]),
            batches=[str(b) for b in d["batches"]],
            grand_mean=np.asarray(d["grand_mean"], dtype=float).reshape(nf),
            var_pooled=np.asarray(d["var_pooled"], dtype=float).reshape(nf),
            gamma_star=np.asarray(d["gamma_star"], dtype=float).reshape(nb, nf),
            delta_star=np.asarray(d["delta_star"], dtype=float).reshape(nb, nf),
            parametric=bool(d.get("parametric", True)),
            passthrough=list(d.get("passthrough", [])),
            batch_sizes={str(k): int(v) for k, v in d.get("batch_sizes", {}).items()},
            unharmonised=[str(b) for b in d.get("unharmonised", [])],
            own_data=[str(b) for b in d.get("own_data", [])],
        )


# ----------------------------------------------------------------------------- checks
def _check_inputs(features: pd.DataFrame, batch: pd.Series, what: str) -> pd.Series:
    if not isinstance(features, pd.DataFrame):
        raise TypeError("features must be a DataFrame (patients x features)")
    batch = pd.Series(batch)
    missing = features.index.difference(batch.index)
    if len(missing):
        raise DlrcError(
            f"ComBat ({what}): no batch label for patient(s) {', '.join(map(str, missing[:10]))}"
            + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        )
    batch = batch.reindex(features.index)
    nolabel = batch.index[batch.isna()]
    if len(nolabel):
        raise DlrcError(
            f"ComBat ({what}): empty batch label for patient(s) {', '.join(map(str, nolabel[:10]))}"
        )
    values = features.to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        rows, cols = np.nonzero(bad)
        examples = ", ".join(
            f"patient {features.index[r]} column {features.columns[c]}"
            for r, c in list(zip(rows, cols))[:5]
        )
        raise DlrcError(
            f"ComBat ({what}): {bad.sum()} missing or non-finite feature value(s), e.g. {examples}; "
            "drop those features or patients before harmonising"
        )
    return batch.astype(str)


def _check_batch_sizes(batch: pd.Series, what: str, label: str = "batch") -> None:
    counts = batch.value_counts()
    single = counts[counts < 2]
    if len(single):
        parts = []
        for b in sorted(single.index):
            pids = batch.index[batch == b]
            parts.append(f"{label} '{b}' has only one patient ({pids[0]})")
        raise DlrcError(
            f"ComBat ({what}): " + "; ".join(parts)
            + " — a batch needs at least 2 patients to estimate its scale; merge it with a "
            "similar scanner, drop it, or harmonise by centre (harmonisation.batch: centre)"
        )


# -------------------------------------------------------------------------------- fit
def fit_combat(features: pd.DataFrame, batch: pd.Series, *, parametric: bool = True,
               label: str = "batch", small_batch: str = "error") -> CombatEstimates:
    """Fit ComBat (neuroCombat, empirical Bayes, no covariates) on ``features``.

    Parameters
    ----------
    features : DataFrame, patients x features, finite values.
    batch : Series indexed by patient: the scanner (or centre) of each patient.
    parametric : parametric (default) or non-parametric empirical-Bayes priors.
    label : the word used for the batch in error messages ("scanner", "centre").
    small_batch : a batch with one patient is refused (``"error"``) or, with ``"skip"``,
        left out of the fit and kept unharmonised (its gamma* = 0, delta* = 1; listed in
        ``unharmonised``).

    Matches ``neuroCombat.neuroCombat(dat, covars, batch_col, eb=True, parametric=...)``
    and R ``sva::ComBat(dat, batch, mod=NULL, par.prior=...)``. Features that are constant
    in the fit data are passed through unchanged.
    """
    batch = _check_inputs(features, batch, "fit")
    counts = batch.value_counts()
    single = sorted(counts.index[counts < 2]) if small_batch == "skip" else []
    if not single:
        _check_batch_sizes(batch, "fit", label)
    else:
        fitted = fit_combat(features[~batch.isin(single)], batch[~batch.isin(single)],
                            parametric=parametric, label=label)
        nf = len(fitted.features)
        levels = sorted(fitted.batches + single)
        rows = {b: i for i, b in enumerate(fitted.batches)}
        gamma = np.array([fitted.gamma_star[rows[b]] if b in rows else np.zeros(nf) for b in levels])
        delta = np.array([fitted.delta_star[rows[b]] if b in rows else np.ones(nf) for b in levels])
        fitted.batches, fitted.gamma_star, fitted.delta_star = levels, gamma, delta
        fitted.batch_sizes = {b: int((batch == b).sum()) for b in levels}
        fitted.unharmonised = single
        return fitted
    X = features.to_numpy(dtype=float)
    sd = X.std(axis=0)
    const = sd == 0
    cols = list(map(str, features.columns))
    used = [c for c, k in zip(cols, const) if not k]
    levels = sorted(batch.unique())
    nb, nf = len(levels), len(cols)
    grand_mean = X.mean(axis=0)
    var_pooled = np.ones(nf)
    gamma = np.zeros((nb, nf))
    delta = np.ones((nb, nf))
    if used and nb >= 2:
        from neuroCombat import neuroCombat

        covars = pd.DataFrame({"batch": batch.to_numpy()})
        with contextlib.redirect_stdout(io.StringIO()):
            out = neuroCombat(
                dat=np.ascontiguousarray(X[:, ~const].T),
                covars=covars,
                batch_col="batch",
                eb=True,
                parametric=parametric,
            )
        est = out["estimates"]
        got = [str(b) for b in est["batches"]]
        if got != levels:  # neuroCombat orders levels with np.unique, as here
            raise RuntimeError(f"unexpected neuroCombat batch order {got} != {levels}")
        idx = np.flatnonzero(~const)
        grand_mean[idx] = np.asarray(est["stand.mean"])[:, 0]
        var_pooled[idx] = np.asarray(est["var.pooled"]).ravel()
        gamma[:, idx] = np.asarray(est["gamma.star"], dtype=float)
        delta[:, idx] = np.asarray(est["delta.star"], dtype=float)
    return CombatEstimates(
        features=cols,
        batches=levels,
        grand_mean=grand_mean,
        var_pooled=var_pooled,
        gamma_star=gamma,
        delta_star=delta,
        parametric=parametric,
        passthrough=[c for c, k in zip(cols, const) if k],
        batch_sizes={b: int((batch == b).sum()) for b in levels},
    )


def estimate_batch(est: CombatEstimates, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Empirical-Bayes location/scale of one new batch towards the fitted reference.

    ``features``: that batch's patients (at least 2) x ``est.features``. The data are
    standardised with the reference's grand mean and pooled variance; the batch's
    ``gamma_hat`` (mean), ``delta_hat`` (variance) and its priors across features are then
    computed and shrunk exactly as neuroCombat does for each batch in a joint fit (same
    helper functions). Applied to a batch of the fit itself, it returns that batch's
    ``gamma_star``/``delta_star``. Unlabelled: the outcome plays no part.
    """
    from neuroCombat.neuroCombat import aprior, bprior, int_eprior, it_sol

    X = features[est.features].to_numpy(dtype=float).T  # features x patients
    if X.shape[1] < 2:
        raise DlrcError("ComBat: a new batch needs at least 2 patients to estimate its scale")
    pas = np.isin(np.asarray(est.features, dtype=object), est.passthrough)
    use = ~pas
    s = (X[use] - est.grand_mean[use, None]) / np.sqrt(est.var_pooled[use, None])
    g_hat = s.mean(axis=1)
    d_hat = np.var(s, axis=1, ddof=1)
    d_hat[d_hat == 0] = 1
    g_bar = np.mean(g_hat)
    t2 = np.var(g_hat, ddof=1)
    if est.parametric:
        a, b = aprior(d_hat), bprior(d_hat)
        g_star, d_star = it_sol(s, g_hat, d_hat, g_bar, t2, a, b)
    else:
        g_star, d_star = int_eprior(s, g_hat, d_hat)
    gamma = np.zeros(len(est.features))
    delta = np.ones(len(est.features))
    gamma[use] = np.asarray(g_star, dtype=float)
    delta[use] = np.asarray(d_star, dtype=float)
    return gamma, delta


# ------------------------------------------------------------------------------ apply
def apply_combat(est: CombatEstimates, features: pd.DataFrame, batch: pd.Series, *,
                 unseen: Literal["error", "estimate"] = "error",
                 label: str = "batch",
                 return_estimates: bool = False,
                 small_batch: str = "error"):
    """Harmonise ``features`` with fitted estimates.

    Each patient's value becomes ``(s - gamma*_b) / sqrt(delta*_b) * sqrt(var_pooled) +
    grand_mean`` with ``s = (x - grand_mean) / sqrt(var_pooled)``: neuroCombat's
    ``adjust_data_final`` without covariates. Batches not in ``est``: ``unseen="error"``
    refuses them (naming batch and patients); ``"estimate"`` harmonises each towards the
    reference from its own data (:func:`estimate_batch`, at least 2 patients per batch).

    Columns other than ``est.features`` are not accepted; missing ones are an error.
    With ``return_estimates`` also returns ``{batch: (gamma, delta)}`` for the new batches.
    ``small_batch="skip"`` leaves a new batch with a single patient unharmonised instead of
    refusing it (its entry then is gamma 0, delta 1).
    """
    missing = [c for c in est.features if c not in features.columns]
    if missing:
        raise DlrcError(
            f"ComBat apply: {len(missing)} feature column(s) the harmonisation was fitted on "
            f"are missing, e.g. {', '.join(missing[:5])}"
        )
    features = features[est.features]
    batch = _check_inputs(features, batch, "apply")
    known = {b: i for i, b in enumerate(est.batches)}
    new = sorted(set(batch.unique()) - set(known))
    if new and unseen != "estimate":
        parts = [f"{label} '{b}' (patients {', '.join(map(str, batch.index[batch == b][:5]))})" for b in new]
        raise DlrcError(
            "ComBat apply: " + "; ".join(parts)
            + f" not seen when the harmonisation was fitted (known: {', '.join(est.batches)})"
        )
    new_single: list[str] = []
    if new:
        sizes = batch[batch.isin(new)].value_counts()
        if small_batch == "skip":
            new_single = sorted(sizes.index[sizes < 2])
        _check_batch_sizes(batch[batch.isin([b for b in new if b not in new_single])], f"new {label}s", label)
    X = features.to_numpy(dtype=float).T
    vp = np.sqrt(est.var_pooled)[:, None]
    s = (X - est.grand_mean[:, None]) / vp
    out = np.empty_like(s)
    new_est: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for b in sorted(batch.unique()):
        cols = np.flatnonzero((batch == b).to_numpy())
        if b in known:
            g, d = est.gamma_star[known[b]], est.delta_star[known[b]]
        elif b in new_single:
            g, d = np.zeros(len(est.features)), np.ones(len(est.features))
            new_est[b] = (g, d)
        else:
            g, d = estimate_batch(est, features.iloc[cols])
            new_est[b] = (g, d)
        out[:, cols] = (s[:, cols] - g[:, None]) / np.sqrt(d)[:, None]
    out = out * vp + est.grand_mean[:, None]
    if est.passthrough:
        pas = np.isin(np.asarray(est.features, dtype=object), est.passthrough)
        out[pas] = X[pas]
    res = pd.DataFrame(out.T, index=features.index, columns=features.columns)
    return (res, new_est) if return_estimates else res


# ----------------------------------------------------------------------------- modes
@dataclass
class HarmonisationResult:
    """Harmonised features plus what was fitted and how each batch was treated."""

    features: pd.DataFrame
    estimates: Optional[CombatEstimates]
    mode: str
    batch_col: str
    fitted_on: list[str]  # patient ids the estimates came from
    new_batches: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    unharmonised: list[str] = field(default_factory=list)  # single-patient batches left as they are
    # the estimates of every batch harmonised: the fit's and those of ``new_batches``
    # (:meth:`CombatEstimates.with_batches`), what a later patient of any of them is given
    applied: Optional[CombatEstimates] = None


def harmonise(features: pd.DataFrame, study: pd.DataFrame, params) -> HarmonisationResult:
    """Harmonise a patients x features matrix according to ``HarmonisationParams``.

    ``study`` (index or column ``patient_id``) supplies ``cohort`` and the batch column
    (``params.batch``: scanner or centre). Modes:

    * ``all``: ComBat fitted on every patient of ``features`` (all cohorts together, no
      labels used);
    * ``train_reference``: fitted on the training cohort only; validation patients from a
      training scanner get that scanner's training estimates, scanners unseen in training
      are harmonised towards the training reference from their own unlabelled data;
    * ``none``: features returned unchanged.
    """
    study = by_patient(study)
    missing = features.index.difference(study.index)
    if len(missing):
        raise DlrcError(f"harmonisation: patient(s) {', '.join(map(str, missing[:10]))} not in the study table")
    col = params.batch
    batch = study.loc[features.index, col].astype(str)
    if params.mode == "none":
        return HarmonisationResult(features.copy(), None, "none", col, [])
    if params.mode == "all":
        fit_idx = features.index
    elif params.mode == "train_reference":
        fit_idx = features.index[study.loc[features.index, "cohort"].to_numpy() == "train"]
        if len(fit_idx) == 0:
            raise DlrcError("harmonisation (train_reference): no training-cohort patient in the features")
    else:  # pragma: no cover - pydantic guards the value
        raise DlrcError(f"harmonisation: unknown mode {params.mode!r}")
    small = getattr(params, "small_batch", "error")
    est = fit_combat(features.loc[fit_idx], batch.loc[fit_idx], parametric=params.parametric, label=col,
                     small_batch=small)
    harm, new = apply_combat(est, features, batch, unseen="estimate", label=col, return_estimates=True,
                             small_batch=small)
    res = HarmonisationResult(harm, est, params.mode, col, list(map(str, fit_idx)), new)
    counts = batch.value_counts()
    res.unharmonised = sorted(set(est.unharmonised) | {b for b in new if counts.get(b, 0) < 2})
    res.applied = est.with_batches(new, {b: int(counts.get(b, 0)) for b in new})
    return res


