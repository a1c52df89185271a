"""Calibration of the predicted probabilities (Fig. 5) and bootstrap optimism correction.

A model is calibrated when, among patients given a probability of about p, about a
fraction p has the outcome. The paper judged this with the Hosmer-Lemeshow test (ten
groups of predicted risk; observed vs expected events) and calibration plots. This module

* tabulates the Hosmer-Lemeshow test and calibration intercept, slope and Brier score of
  every model in every cohort (:func:`calibration_table`, from
  :func:`dlrc_lib.stats.hosmer_lemeshow` and :func:`dlrc_lib.stats.calibration_curve`);
* draws Fig. 5 (:class:`CalibrationDisplay`): grouped observed vs predicted
  with 95 % CIs, a lowess smooth (R ``lowess(p, y, iter=0)``, as rms ``val.prob``), the
  ideal line and a histogram of the predictions;
* corrects the training cohort's apparent calibration for optimism by the bootstrap, as rms
  ``calibrate(lrm(...), method="boot", B=B)`` (:func:`optimism_calibration`): the DLRC
  logistic model is refitted on each bootstrap sample, its calibration error on that
  sample minus its error on the original data is the optimism, averaged over samples and
  subtracted from the apparent curve; the same resampling gives the optimism-corrected AUC
  (as Harrell's ``validate``: Dxy / 2 + 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd
from scipy.special import expit

from dlrc_lib import stats
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.figures import MODEL_COLOURS
from dlrc_lib.evaluation.sra import COHORT_LABELS, COHORTS
from dlrc_lib.study.schema import PROB_COLUMNS

#: Default DLRC terms when the model's terms are not given.
DEFAULT_TERMS = ("c_lnm", "DL_score", "Rad_score")
PANEL_LETTERS = "abc"


def model_columns(best_model: str | None = None) -> dict[str, str]:
    """Display label -> probability column of the ``predictions`` frame."""
    return {"Radiomics": PROB_COLUMNS["radiomics"], best_model or "DL": PROB_COLUMNS["dl"],
            "DLRC": PROB_COLUMNS["dlrc"]}


def _cohorts(predictions: pd.DataFrame) -> list[str]:
    if "cohort" not in predictions.columns:
        raise DlrcError("predictions: missing column cohort")
    present = set(predictions["cohort"])
    unknown = sorted(present - set(COHORTS))
    if unknown:
        raise DlrcError(f"predictions, column cohort: unknown cohort(s) {unknown}")
    return [c for c in COHORTS if c in present]


def check_probabilities(predictions: pd.DataFrame, columns: Iterable[str], outcome: str = "lnm") -> None:
    """Refuse missing columns, probabilities outside [0, 1], NaNs and non-0/1 outcomes."""
    columns = list(columns)
    missing = [c for c in [outcome, *columns] if c not in predictions.columns]
    if missing:
        raise DlrcError(f"predictions: missing column(s) {', '.join(missing)}")
    y = pd.to_numeric(predictions[outcome], errors="coerce")
    bad = ~y.isin([0, 1])
    if bad.any():
        raise DlrcError(f"predictions, column {outcome}: not 0/1 for patient(s) "
                        + ", ".join(map(str, predictions.index[bad][:5])))
    for col in columns:
        p = pd.to_numeric(predictions[col], errors="coerce")
        bad = ~((p >= 0) & (p <= 1))
        if bad.any():
            raise DlrcError(f"predictions, column {col}: missing or outside [0, 1] for patient(s) "
                            + ", ".join(map(str, predictions.index[bad][:5])))


# ------------------------------------------------------------------------------ tables
def calibration_table(predictions: pd.DataFrame, models: dict[str, str], groups: int = 10) -> pd.DataFrame:
    """Per model and cohort: Hosmer-Lemeshow chi-square, df and p (ResourceSelection
    ``hoslem.test(y, p, g=groups)``), calibration intercept and slope and Brier score (rms
    ``val.prob``)."""
    check_probabilities(predictions, models.values())
    rows = []
    for coh in _cohorts(predictions):
        part = predictions[predictions["cohort"] == coh]
        y = part["lnm"].to_numpy(dtype=int)
        for label, col in models.items():
            p = part[col].to_numpy(dtype=float)
            hl = stats.hosmer_lemeshow(y, p, groups=groups)
            cc = stats.calibration_curve(y, p, groups=groups)
            rows.append({"model": label, "cohort": coh, "n": len(part), "events": int(y.sum()),
                         "hl_statistic": float(hl.statistic), "hl_df": int(hl.df), "hl_p": float(hl.pvalue),
                         "hl_p_text": "" if not np.isfinite(hl.pvalue) else str(stats.format_p(hl.pvalue)),
                         "intercept": float(cc.intercept), "slope": float(cc.slope), "brier": float(cc.brier)})
    return pd.DataFrame(rows)


def hosmer_lemeshow_reproduce(table: pd.DataFrame, model: str = "DLRC") -> dict[str, float | str | None]:
    """``{"calibration_hosmer_lemeshow_p.<cohort>": p}`` for ``model`` (p as the paper prints
    it: 3 decimals or "<0.001")."""
    fmt = stats.format_p
    sel = table[table["model"] == model]
    return {f"calibration_hosmer_lemeshow_p.{r['cohort']}": fmt(r["hl_p"]) for _, r in sel.iterrows()}


def grouped_calibration(predictions: pd.DataFrame, models: dict[str, str], groups: int = 10) -> pd.DataFrame:
    """Grouped observed vs predicted risk with 95 % CIs (long: model, cohort, group, ...)."""
    check_probabilities(predictions, models.values())
    frames = []
    for coh in _cohorts(predictions):
        part = predictions[predictions["cohort"] == coh]
        for label, col in models.items():
            cc = stats.calibration_curve(part["lnm"].to_numpy(dtype=int), part[col].to_numpy(dtype=float),
                                         groups=groups)
            tab = _groups_frame(cc)
            tab.insert(0, "cohort", coh)
            tab.insert(0, "model", label)
            frames.append(tab)
    return pd.concat(frames, ignore_index=True)


def _groups_frame(cc) -> pd.DataFrame:
    """Group rows of a :class:`dlrc_lib.stats.CalibrationResult`: group, n, predicted,
    observed, lower, upper (Wilson 95 % CI of the observed proportion)."""
    return cc.groups.rename(columns={"mean_predicted": "predicted"})[
        ["group", "n", "predicted", "observed", "lower", "upper"]].reset_index(drop=True)


def lowess_curve(y, prob, frac: float = 2 / 3) -> pd.DataFrame:
    """R ``lowess(prob, y, iter = 0)`` (f = 2/3, delta = 1 % of the range): x, fitted."""
    from statsmodels.nonparametric.smoothers_lowess import lowess

    x = np.asarray(prob, dtype=float)
    yy = np.asarray(y, dtype=float)
    if x.size < 2 or np.ptp(x) == 0:
        return pd.DataFrame({"x": np.unique(x), "fitted": [yy.mean()] * len(np.unique(x))})
    fit = lowess(yy, x, frac=frac, it=0, delta=0.01 * float(np.ptp(x)), return_sorted=True)
    return pd.DataFrame({"x": fit[:, 0], "fitted": fit[:, 1]})


# ------------------------------------------------------------------------------ figure
def draw_cohort_panels(panel, cohorts: list[str], axes=None, titles: Iterable[str] | None = None, *,
                       height: float = 4.4, width: float = 5.2):
    """Call ``panel(ax, cohort, title)`` for each cohort, on the caller's ``axes`` (one per
    cohort) or on a new figure in the package's style; default titles "a  Training", ...
    (no letter for a single panel). Returns the figure."""
    from dlrc_lib.core import figures as F

    if axes is None:
        fig, grid = F.subplots(1, len(cohorts), size=(width * len(cohorts), height))
        axes = grid[0]
    else:
        axes = list(np.atleast_1d(axes))
        fig = axes[0].figure
    titles = list(titles) if titles is not None else [
        f"{PANEL_LETTERS[i]}  {COHORT_LABELS.get(c, c)}" if len(cohorts) > 1 else COHORT_LABELS.get(c, c)
        for i, c in enumerate(cohorts)]
    for ax, coh, title in zip(axes, cohorts, titles):
        panel(ax, coh, title)
    fig.tight_layout()
    return fig


@dataclass
class CalibrationDisplay:
    """Calibration curves of several models, one panel per cohort (Fig. 5).

    Compute with :meth:`from_predictions`, draw with :meth:`plot`. ``groups``: model, cohort,
    group, n, predicted, observed, lower, upper (Wilson 95 % CI); ``smooth``: model, cohort,
    x, fitted (R ``lowess(p, y, iter = 0)``); ``summary``: model, cohort, intercept, slope,
    brier; ``histogram``: cohort, left, right, events, non_events (``hist_model``'s
    predictions in 50 bins).
    """

    groups: pd.DataFrame
    smooth: pd.DataFrame
    summary: pd.DataFrame
    histogram: pd.DataFrame
    models: list[str]
    cohorts: list[str]
    hist_model: str | None = None

    @classmethod
    def from_predictions(cls, predictions: pd.DataFrame, models: dict[str, str], *, groups: int = 10,
                         hist_model: str = "DLRC", cohorts: Iterable[str] | None = None) -> "CalibrationDisplay":
        """``predictions``: ``cohort``, ``lnm`` and the probability columns; ``models``:
        display name -> column. Refuses probabilities outside [0, 1] or missing, naming the
        patients."""
        cohorts = list(cohorts) if cohorts is not None else _cohorts(predictions)
        check_probabilities(predictions, models.values())
        grp, smo, summ, hist = [], [], [], []
        bins = np.linspace(0, 1, 51)
        for coh in cohorts:
            part = predictions[predictions["cohort"] == coh]
            if part.empty:
                raise DlrcError(f"predictions: no patients in cohort {coh}")
            y = part["lnm"].to_numpy(dtype=int)
            for label, col in models.items():
                p = part[col].to_numpy(dtype=float)
                cc = stats.calibration_curve(y, p, groups=groups)
                grp.append(_groups_frame(cc).assign(model=label, cohort=coh))
                smo.append(lowess_curve(y, p).assign(model=label, cohort=coh))
                summ.append({"model": label, "cohort": coh, "intercept": float(cc.intercept),
                             "slope": float(cc.slope), "brier": float(cc.brier)})
            if hist_model in models:
                p = part[models[hist_model]].to_numpy(dtype=float)
                hist.append(pd.DataFrame({"cohort": coh, "left": bins[:-1], "right": bins[1:],
                                          "events": np.histogram(p[y == 1], bins=bins)[0],
                                          "non_events": np.histogram(p[y == 0], bins=bins)[0]}))
        return cls(pd.concat(grp, ignore_index=True), pd.concat(smo, ignore_index=True), pd.DataFrame(summ),
                   pd.concat(hist, ignore_index=True) if hist else pd.DataFrame(
                       columns=["cohort", "left", "right", "events", "non_events"]),
                   list(models), cohorts, hist_model if hist_model in models else None)

    def plot(self, axes=None, titles: Iterable[str] | None = None):
        """Draw one panel per cohort (``axes``: one matplotlib axis per cohort, else a new
        figure): grouped observed vs predicted with CI bars, the lowess smooth, the ideal
        line, ``hist_model``'s predictions along the bottom (events up, non-events down);
        intercept, slope and Brier score in the legend. Returns the figure."""
        return draw_cohort_panels(self._panel, self.cohorts, axes, titles, height=5.4)

    def _panel(self, ax, cohort: str, title: str) -> None:
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="Ideal")
        for i, label in enumerate(self.models):
            colour = MODEL_COLOURS[i % len(MODEL_COLOURS)]
            tab = self.groups[(self.groups["cohort"] == cohort) & (self.groups["model"] == label)]
            yerr = np.vstack([np.clip(tab["observed"] - tab["lower"], 0, None),
                              np.clip(tab["upper"] - tab["observed"], 0, None)])
            ax.errorbar(tab["predicted"], tab["observed"], yerr=yerr, fmt="o", ms=4, color=colour,
                        capsize=2, lw=0.8, alpha=0.9)
            lw = self.smooth[(self.smooth["cohort"] == cohort) & (self.smooth["model"] == label)]
            st = self.summary[(self.summary["cohort"] == cohort) & (self.summary["model"] == label)].iloc[0]
            ax.plot(lw["x"], lw["fitted"], color=colour, lw=1.6,
                    label=f"{label} (int {st['intercept']:.2f}, slope {st['slope']:.2f}, Brier {st['brier']:.3f})")
        h = self.histogram[self.histogram["cohort"] == cohort]
        if len(h):
            scale = 0.08 / max(1, int(h["events"].max()), int(h["non_events"].max()))
            base = -0.02
            width = (h["right"] - h["left"]).to_numpy()
            ax.bar(h["left"], h["events"] * scale, width=width, bottom=base, align="edge", color="black", lw=0)
            ax.bar(h["left"], -h["non_events"] * scale, width=width, bottom=base, align="edge", color="grey", lw=0)
            ax.axhline(base, color="black", lw=0.4)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.12, 1.05)
        ax.set_xlabel("Predicted probability of LNM")
        ax.set_ylabel("Observed proportion of LNM")
        ax.set_title(title, loc="left")
        ax.legend(loc="upper left", fontsize=7, frameon=False)


# ------------------------------------------------------- bootstrap optimism correction
def refit_logistic(X: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Coefficients (intercept first) of R ``glm(y ~ X, family = binomial)``
    (:func:`dlrc_lib.stats.logistic_glm`), or None when the fit fails as rms counts a
    failure: no convergence, an aliased term, or fitted probabilities of 0 or 1
    (separation)."""
    fit = stats.logistic_glm(X, y)
    if not fit.converged or fit.boundary_fitted or np.isnan(fit.coef).any():
        return None
    return fit.coef


def resolve_terms(terms: Iterable[str] | None, columns: Iterable[str]) -> tuple[list[str], list[str]]:
    """The DLRC model's terms as columns of the ``predictions`` frame.

    ``terms``: the fitted model's terms (:attr:`dlrc_lib.model.dlrc.DlrcModel.terms_`; None or
    empty: c_lnm, DL_score, Rad_score), matched to columns exactly or ignoring case (the model
    names the clinical term ``c_LNM``). Returns (columns found, terms without a column).
    """
    terms = list(terms or DEFAULT_TERMS)
    columns = list(columns)
    by_lower = {c.lower(): c for c in columns}
    found, missing = [], []
    for t in terms:
        col = t if t in columns else by_lower.get(str(t).lower())
        (found if col else missing).append(col or t)
    return found, missing


def _cal_error(prob: np.ndarray, y: np.ndarray, predy: np.ndarray) -> np.ndarray:
    """rms ``calibrate``'s measure: lowess(prob, y, iter=0) at ``predy`` minus ``predy``
    (R ``approx(..., ties = function(x) x[1])``: first fitted value of tied x)."""
    lw = lowess_curve(y, prob)
    x, f = lw["x"].to_numpy(), lw["fitted"].to_numpy()
    ux, first = np.unique(x, return_index=True)
    cal = np.interp(predy, ux, f[first], left=np.nan, right=np.nan)
    return cal - predy


@dataclass
class OptimismCalibration:
    """Result of :func:`optimism_calibration` (rms ``calibrate`` columns in ``curve``)."""

    terms: list[str]
    coefficients: dict[str, float]
    curve: pd.DataFrame  # predy, calibrated_orig, calibrated_corrected, optimism, n_boot
    auc_apparent: float
    auc_optimism: float
    auc_corrected: float
    B: int
    n_failed: int
    max_abs_diff_to_predictions: float = float("nan")  # refit vs prob_dlrc on training
    separated: bool = False  # the training fit itself separates the classes (probabilities 0/1)
    errors: dict[str, dict[str, float]] = field(default_factory=dict)  # apparent / corrected

    def summary(self) -> pd.DataFrame:
        """AUC and rms ``print.calibrate``'s error summaries, apparent vs corrected."""
        rows = [{"quantity": "AUC", "apparent": self.auc_apparent, "corrected": self.auc_corrected}]
        for key, label in (("mean_abs", "Mean absolute calibration error"),
                           ("mean_sq", "Mean squared calibration error"),
                           ("q90_abs", "0.9 quantile of absolute calibration error")):
            rows.append({"quantity": label, "apparent": self.errors.get("apparent", {}).get(key, np.nan),
                         "corrected": self.errors.get("corrected", {}).get(key, np.nan)})
        return pd.DataFrame(rows)


def _training_design(predictions: pd.DataFrame, terms: list[str],
                     cohort: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The cohort's rows, their term matrix and outcomes; refuses missing terms or values and
    cohorts too small for rms ``calibrate``."""
    part = predictions[predictions["cohort"] == cohort]
    missing = [t for t in terms if t not in predictions.columns]
    if missing:
        raise DlrcError(f"predictions: DLRC term column(s) {', '.join(missing)} missing")
    if len(part) < 11:
        raise DlrcError(f"predictions: cohort {cohort} has {len(part)} patients; the bootstrap "
                        "calibration needs more than 10 (rms calibrate)")
    X = part[terms].to_numpy(dtype=float)
    if not np.isfinite(X).all():
        bad = part.index[~np.isfinite(X).all(axis=1)]
        raise DlrcError(f"predictions: missing DLRC term value for patient(s) {', '.join(map(str, bad[:5]))}")
    return part, X, part["lnm"].to_numpy(dtype=int)


def _bootstrap_optimism(X: np.ndarray, y: np.ndarray, predy: np.ndarray, *, B: int, seed: int,
                        progress: bool) -> tuple[np.ndarray, np.ndarray, list[float], int]:
    """rms ``calibrate``'s bootstrap: per grid point the mean optimism of the calibration error
    and the samples behind it, each sample's AUC optimism, and the number of failed refits."""
    from dlrc_lib.core.progress import progress_bar as tqdm

    n = len(y)
    X1 = np.column_stack([np.ones(n), X])
    rng = np.random.default_rng(seed)
    diffs, auc_opt = [], []
    failed = 0
    for _ in tqdm(range(B), desc="bootstrap calibration", disable=not progress):
        idx = rng.integers(0, n, n)
        yb = y[idx]
        if yb.min() == yb.max():  # one class only: nothing to fit
            failed += 1
            continue
        bb = refit_logistic(X[idx], yb)
        if bb is None:
            failed += 1
            continue
        pb_train = expit(X1[idx] @ bb)
        pb_test = expit(X1 @ bb)
        diffs.append(_cal_error(pb_train, yb, predy) - _cal_error(pb_test, y, predy))
        auc_opt.append(stats.auc(yb, pb_train) - stats.auc(y, pb_test))
    if not diffs:
        return np.full_like(predy, np.nan), np.zeros_like(predy, dtype=int), auc_opt, failed
    d = np.vstack(diffs)
    return np.nanmean(d, axis=0), np.sum(np.isfinite(d), axis=0), auc_opt, failed


def optimism_calibration(predictions: pd.DataFrame, terms: Iterable[str] | None = None, *, B: int = 200,
                         seed: int = 0, cohort: str = "train", prob_column: str = "prob_dlrc",
                         progress: bool = True) -> OptimismCalibration:
    """Bootstrap optimism-corrected calibration curve and AUC of the DLRC logistic model on
    the training cohort, as rms ``calibrate(lrm(lnm ~ terms, x=TRUE, y=TRUE), B=B)``.

    The grid ``predy`` is 50 points from the 5th smallest to the 5th largest apparent
    probability (rms default). Bootstrap samples whose refit does not converge (separation)
    are skipped and counted in ``n_failed``, as rms does. The scores enter as fixed
    columns, so the correction covers the final logistic model only, not the feature
    selection behind Rad_score and DL_score.
    """
    terms = list(terms or DEFAULT_TERMS)
    part, X, y = _training_design(predictions, terms, cohort)
    fit = stats.logistic_glm(X, y)
    if np.isnan(fit.coef).any():
        raise DlrcError(f"DLRC terms {', '.join(terms)} are linearly dependent on cohort {cohort}; "
                        "the logistic model cannot be refitted")
    # R glm returns a (quasi-)separated fit with a warning rather than failing; so does the
    # DLRC model of notebook 05. The apparent curve then uses that fit and says so.
    beta = fit.coef
    separated = bool(fit.boundary_fitted or not fit.converged)
    X1 = np.column_stack([np.ones(len(y)), X])
    p_app = expit(X1 @ beta)
    ps = np.sort(p_app)
    n = len(y)
    predy = np.linspace(ps[4], ps[n - 5], 50)
    err_orig = _cal_error(p_app, y, predy)
    auc_app = stats.auc(y, p_app)

    optimism, n_boot, auc_opt, failed = _bootstrap_optimism(X, y, predy, B=B, seed=seed, progress=progress)
    cal_orig = predy + err_orig
    cal_corr = cal_orig - optimism
    curve = pd.DataFrame({"predy": predy, "calibrated_orig": cal_orig, "calibrated_corrected": cal_corr,
                          "optimism": optimism, "n_boot": n_boot})
    a_opt = float(np.mean(auc_opt)) if auc_opt else float("nan")
    diff = float("nan")
    if prob_column in part.columns:
        diff = float(np.max(np.abs(part[prob_column].to_numpy(dtype=float) - p_app)))
    return OptimismCalibration(
        terms=terms, coefficients=dict(zip(["(Intercept)", *terms], map(float, beta))), curve=curve,
        auc_apparent=auc_app, auc_optimism=a_opt, auc_corrected=auc_app - a_opt, B=B, n_failed=failed,
        max_abs_diff_to_predictions=diff, separated=separated,
        errors={"apparent": _error_summary(p_app, predy, cal_orig),
                "corrected": _error_summary(p_app, predy, cal_corr)},
    )


def _error_summary(predicted: np.ndarray, predy: np.ndarray, calibrated: np.ndarray) -> dict[str, float]:
    """rms ``print.calibrate``: err = predicted - (calibration curve at each patient's
    predicted risk, linear interpolation, NA outside the grid); mean |err|, mean err^2 and
    the 0.9 quantile of |err| (type 7)."""
    ok = np.isfinite(predy + calibrated)
    if ok.sum() < 2:
        return {"mean_abs": float("nan"), "mean_sq": float("nan"), "q90_abs": float("nan")}
    curve = np.interp(predicted, predy[ok], calibrated[ok], left=np.nan, right=np.nan)
    err = predicted - curve
    err = err[np.isfinite(err)]
    return {"mean_abs": float(np.mean(np.abs(err))), "mean_sq": float(np.mean(err ** 2)),
            "q90_abs": float(np.quantile(np.abs(err), 0.9))}


def plot_optimism_calibration(res: OptimismCalibration, ax=None):
    """Apparent and bias-corrected calibration curves (rms ``plot.calibrate``)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    c = res.curve
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="Ideal")
    ax.plot(c["predy"], c["calibrated_orig"], color="black", lw=1, ls=":", label="Apparent")
    ax.plot(c["predy"], c["calibrated_corrected"], color="#7570b3", lw=1.8,
            label=f"Bias-corrected (B = {res.B - res.n_failed})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Predicted probability of LNM")
    ax.set_ylabel("Observed proportion of LNM")
    ax.set_title(f"DLRC, training: optimism-corrected AUC {res.auc_corrected:.3f} "
                 f"(apparent {res.auc_apparent:.3f})", loc="left", fontsize=9)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return ax
