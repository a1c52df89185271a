"""Calibration of the predicted probabilities (Fig. 5) and bootstrap optimism correction.

A model is calibrated when, among patients given a probability of about p, about a
fraction p has the outcome. The paper judged this with the Hosmer-Lemeshow test (ten
groups of predicted risk; observed vs expected events) and calibration plots. This module

* tabulates the Hosmer-Lemeshow test and calibration intercept, slope and Brier score of
  every model in every cohort (:func:`calibration_table`, from
  :func:`dlrc_lib.stats.hosmer_lemeshow` and :func:`dlrc_lib.stats.calibration_curve`);
* draws Fig. 5 (:class:`CalibrationDisplay`, a plotnine ggplot): grouped observed vs predicted
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
from dlrc_lib.core import theme as T
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.figures import GgplotDisplay
from dlrc_lib.core.progress import progress_bar as tqdm
from dlrc_lib.evaluation.sra import COHORT_LABELS, COHORTS
from dlrc_lib.study import keys as K
from dlrc_lib.study.schema import PROB_COLUMNS

#: Default DLRC terms when the model's terms are not given.
DEFAULT_TERMS = ("c_lnm", "DL_score", "Rad_score")
PANEL_LETTERS = "abc"


def model_columns(best_model: str | None = None, available: Iterable[str] | None = None) -> dict[str, str]:
    """Display label -> probability column of the ``predictions`` frame; with ``available`` (the
    frame's columns), only the models it holds (no deep-learning model when it was switched off)."""
    out = {"Radiomics": PROB_COLUMNS["radiomics"], best_model or "DL": PROB_COLUMNS["dl"],
           "DLRC": PROB_COLUMNS["dlrc"]}
    if available is None:
        return out
    have = set(available)
    return {label: col for label, col in out.items() if col in have}


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


def hosmer_lemeshow_rows(table: pd.DataFrame, model: str = "DLRC") -> list[K.Row]:
    """``calibration_hosmer_lemeshow_p.<cohort>``: ``model``'s p as the paper prints it (3
    decimals or "<0.001")."""
    sel = table[table["model"] == model]
    return [K.row("calibration_hosmer_lemeshow_p", stats.format_p(r["hl_p"]), cohort=r["cohort"])
            for _, r in sel.iterrows()]


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
def panel_titles(cohorts: Iterable[str], titles: Iterable[str] | None = None) -> dict[str, str]:
    """``cohort -> panel title``: the given ``titles`` in order, else "a  Training", ... (no
    letter for a single panel)."""
    cohorts = list(cohorts)
    if titles is not None:
        return dict(zip(cohorts, titles))
    return {c: f"{PANEL_LETTERS[i]}  {COHORT_LABELS.get(c, c)}" if len(cohorts) > 1 else COHORT_LABELS.get(c, c)
            for i, c in enumerate(cohorts)}


def with_panels(frame: pd.DataFrame, titles: dict[str, str]) -> pd.DataFrame:
    """``frame`` (with a ``cohort`` column) restricted to the panels' cohorts, with a ``panel``
    column: the title, ordered as the panels (what the plots facet by)."""
    out = frame[frame["cohort"].isin(list(titles))].copy()
    out["panel"] = pd.Categorical(out["cohort"].map(titles), list(titles.values()))
    return out


@dataclass
class CalibrationDisplay(GgplotDisplay):
    """Calibration curves of several models, one panel per cohort (Fig. 5).

    Compute with :meth:`from_predictions`; :meth:`plot` returns the plotnine ``ggplot``,
    :meth:`save` writes it. ``groups``: model, cohort, group, n, predicted, observed, lower,
    upper (Wilson 95 % CI); ``smooth``: model, cohort, x, fitted (R ``lowess(p, y, iter =
    0)``); ``summary``: model, cohort, intercept, slope, brier; ``histogram``: cohort, left,
    right, events, non_events (``hist_model``'s predictions in 50 bins).
    """

    groups: pd.DataFrame
    smooth: pd.DataFrame
    summary: pd.DataFrame
    histogram: pd.DataFrame
    models: list[str]
    cohorts: list[str]
    hist_model: str | None = None
    colours: dict[str, str] | None = None

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

    def plot(self, titles: Iterable[str] | None = None):
        """The ggplot: one panel per cohort with the grouped observed vs predicted risk and
        its 95 % CI, the lowess smooth of each model, the ideal line, ``hist_model``'s
        predictions along the bottom (events up in black, non-events down in grey); each
        model's calibration intercept, slope and Brier score printed top left in its colour."""
        import plotnine as p9

        names = panel_titles(self.cohorts, titles)
        colours = T.colours_for(self.models, self.colours)
        keys = ["Ideal", *self.models]
        groups = with_panels(self.groups, names)
        groups = groups.assign(lower=np.minimum(groups["lower"], groups["observed"]),
                               upper=np.maximum(groups["upper"], groups["observed"]))
        smooth = with_panels(self.smooth, names)
        # the models in their given order (the last, DLRC, drawn on top where lines coincide)
        smooth["model"] = pd.Categorical(smooth["model"], self.models)
        groups["model"] = pd.Categorical(groups["model"], self.models)
        ideal = with_panels(pd.DataFrame({"cohort": list(names) * 2, "x": [0.0] * len(names) + [1.0] * len(names),
                                          "fitted": [0.0] * len(names) + [1.0] * len(names), "model": "Ideal"}),
                            names)
        text = with_panels(self.summary, names)
        text["label"] = [f"{r.model}: intercept {r.intercept:.2f}, slope {r.slope:.2f}, Brier {r.brier:.3f}"
                         for r in text.itertuples()]
        text["y"] = 1.03 - 0.055 * text.groupby("cohort", sort=False).cumcount()
        text["x"] = 0.0
        base = -0.02
        hist = with_panels(self.histogram, names)
        top = hist.groupby("cohort")[["events", "non_events"]].transform("max").max(axis=1).clip(lower=1)
        hist["scale"] = 0.08 / top
        up = hist[hist["events"] > 0].assign(ymin=base, ymax=lambda d: base + d["events"] * d["scale"], kind="LNM(+)")
        down = hist[hist["non_events"] > 0].assign(ymin=lambda d: base - d["non_events"] * d["scale"], ymax=base,
                                                   kind="LNM(-)")
        gg = (p9.ggplot(smooth, p9.aes("x", "fitted", colour="model", linetype="model"))
              + p9.geom_line(data=ideal, size=T.pt(1.0))
              + p9.geom_errorbar(p9.aes("predicted", ymin="lower", ymax="upper", colour="model"), data=groups,
                                 width=0.02, size=T.pt(0.8), alpha=0.9, inherit_aes=False, show_legend=False)
              + p9.geom_point(p9.aes("predicted", "observed", colour="model"), data=groups, size=T.pt(4.0),
                              alpha=0.9, inherit_aes=False, show_legend=False)
              + p9.geom_line(size=T.pt(1.6))
              # on a white label so that a curve under it does not strike the numbers through
              + p9.geom_label(p9.aes("x", "y", label="label", colour="model"), data=text, ha="left", va="top",
                              size=T.NOTE_SIZE, fill="white", alpha=0.85, label_size=0, label_padding=0.1,
                              boxstyle="square", inherit_aes=False, show_legend=False))
        if len(up) or len(down):
            bars = pd.concat([up, down], ignore_index=True)
            gg = (gg + p9.geom_rect(p9.aes(xmin="left", xmax="right", ymin="ymin", ymax="ymax", fill="kind"),
                                    data=bars, inherit_aes=False, size=0, show_legend=False)
                  + p9.geom_hline(yintercept=base, colour="black", size=T.pt(0.4))
                  + p9.scale_fill_manual(values={"LNM(+)": "black", "LNM(-)": "grey"}))
        return (gg + p9.facet_wrap("panel", nrow=1)
                + p9.scale_colour_manual(values={"Ideal": T.REFERENCE_COLOUR, **colours}, limits=keys, name="Model")
                + p9.scale_linetype_manual(values={"Ideal": "dashed", **{m: "solid" for m in self.models}},
                                           limits=keys, name="Model")
                + p9.coord_cartesian(xlim=(-0.02, 1.02), ylim=(-0.12, 1.05), expand=False)
                + p9.labs(x="Predicted probability of LNM", y="Observed proportion of LNM")
                + T.theme_dlrc(figure_size=(5.2 * len(names) + 1.2, 5.4)))


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
class OptimismCalibration(GgplotDisplay):
    """Result of :func:`optimism_calibration` (rms ``calibrate`` columns in ``curve``); its
    :meth:`plot` returns the ggplot of the apparent and bias-corrected curves."""

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

    def plot(self):
        """The ggplot: apparent and bias-corrected calibration curves with the ideal line
        (rms ``plot.calibrate``), the optimism-corrected AUC in the title."""
        import plotnine as p9

        c = self.curve
        corrected = f"Bias-corrected (B = {self.B - self.n_failed})"
        keys = ["Ideal", "Apparent", corrected]
        lines = pd.concat([
            pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0], "curve": "Ideal"}),
            pd.DataFrame({"x": c["predy"], "y": c["calibrated_orig"], "curve": "Apparent"}),
            pd.DataFrame({"x": c["predy"], "y": c["calibrated_corrected"], "curve": corrected})], ignore_index=True)
        lines = lines[np.isfinite(lines["y"].to_numpy(dtype=float))]
        lines["curve"] = pd.Categorical(lines["curve"], keys)
        return (p9.ggplot(lines, p9.aes("x", "y", colour="curve", linetype="curve", size="curve"))
                + p9.geom_line()
                + p9.scale_colour_manual(values=dict(zip(keys, (T.REFERENCE_COLOUR, "black", T.MODEL_COLOURS[2]))),
                                         limits=keys, name="")
                + p9.scale_linetype_manual(values=dict(zip(keys, ("dashed", "dotted", "solid"))), limits=keys, name="")
                + p9.scale_size_manual(values=dict(zip(keys, (T.pt(1.0), T.pt(1.0), T.pt(1.8)))), limits=keys, name="")
                + p9.coord_cartesian(xlim=(0, 1), ylim=(0, 1), expand=False)
                + p9.labs(x="Predicted probability of LNM", y="Observed proportion of LNM",
                          title=f"DLRC, training: optimism-corrected AUC {self.auc_corrected:.3f} "
                                f"(apparent {self.auc_apparent:.3f})")
                + T.theme_dlrc(figure_size=(5.6, 4.6))
                + p9.theme(legend_position=(0.03, 0.97), legend_justification=(0, 1), legend_title=p9.element_blank(),
                           plot_title=p9.element_text(size=T.BASE_SIZE, ha="left")))


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


def plot_optimism_calibration(res: OptimismCalibration):
    """The ggplot of :meth:`OptimismCalibration.plot`."""
    return res.plot()
