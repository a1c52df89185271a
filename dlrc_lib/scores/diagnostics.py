"""Diagnostics and figures of harmonisation and feature selection.

* Harmonisation (Supplementary Figs. S2/S3): the first two principal components of the
  standardised features before and after ComBat, coloured by centre, and how well the centre
  can be predicted from the features (cross-validated AUC). Before ComBat scanners leave a
  fingerprint the classifier can find; after ComBat it should be near chance (0.5).
* Selection: the funnel (features surviving each step), the LASSO cross-validation curve,
  violin plots of the selected features by LNM status (Fig. S4) and their correlation
  heatmap (Fig. S5).

Computations return DataFrames; each figure is a Display (``PcaDisplay``, ``FunnelDisplay``,
``LassoCvDisplay``, ``FeatureViolinDisplay``, ``CorrelationDisplay``) whose ``plot()`` returns a
plotnine ggplot (``dlrc_lib.core.figures``); the ``plot_*`` functions return that ggplot.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from dlrc_lib.core import theme as T
from dlrc_lib.core import figures as F
from dlrc_lib.core.figures import GgplotDisplay
from dlrc_lib.core.memo import Memo, code_fingerprint, digest
from dlrc_lib.study.manifest import by_patient

__all__ = [
    "PcaDisplay",
    "FunnelDisplay",
    "LassoCvDisplay",
    "FeatureViolinDisplay",
    "CorrelationDisplay",
    "pca_frame",
    "plot_pca",
    "batch_predictability",
    "batch_association",
    "harmonisation_summary",
    "plot_funnel",
    "plot_lasso_cv",
    "plot_feature_violins",
    "correlation_frame",
    "plot_correlation_heatmap",
]


def _standardised(X: pd.DataFrame) -> np.ndarray:
    v = X.to_numpy(dtype=float)
    sd = v.std(axis=0)
    keep = sd > 0
    return (v[:, keep] - v[:, keep].mean(axis=0)) / sd[keep]


# ---------------------------------------------------------------------------- PCA
def _memoised(cache_dir: Optional[str], name: str, fn, *inputs):
    """``fn()`` cached under ``<cache_dir>/memo/diagnostics`` by the inputs' bytes and this
    module's code (``cache_dir=None``: no cache)."""
    if cache_dir is None:
        return fn()
    code = code_fingerprint(("dlrc_lib.scores.diagnostics",))
    key = None if code is None else digest(name, *inputs, code)
    return Memo(cache_dir, "diagnostics").get_or_compute(key, fn)


def pca_frame(before: pd.DataFrame, after: pd.DataFrame, study: pd.DataFrame,
              color: str = "centre", cache_dir: Optional[str] = None) -> pd.DataFrame:
    """PC1/PC2 of the z-scored features before and after harmonisation (long format).

    Columns: patient_id, stage ("Before ComBat"/"After ComBat"), PC1, PC2, var1, var2
    (percent of variance explained), and ``color`` (e.g. centre). With ``cache_dir`` the
    frame is cached by the inputs' bytes.
    """
    study = by_patient(study)
    return _memoised(cache_dir, "pca_frame", lambda: _pca_frame(before, after, study, color),
                     before, after, study[[color]], color)


def _pca_frame(before: pd.DataFrame, after: pd.DataFrame, study: pd.DataFrame, color: str) -> pd.DataFrame:
    from sklearn.decomposition import PCA

    out = []
    for stage, X in (("Before ComBat", before), ("After ComBat", after)):
        Z = _standardised(X)
        k = min(2, Z.shape[1], Z.shape[0])
        pca = PCA(n_components=k, svd_solver="full").fit(Z)
        pcs = pca.transform(Z)
        if k < 2:
            pcs = np.column_stack([pcs, np.zeros((len(pcs), 2 - k))])
        # fix the sign of each component (largest loading positive) for reproducible plots
        for j in range(k):
            if pca.components_[j][np.argmax(np.abs(pca.components_[j]))] < 0:
                pcs[:, j] = -pcs[:, j]
        ev = list(pca.explained_variance_ratio_ * 100) + [0.0] * (2 - k)
        out.append(pd.DataFrame({
            "patient_id": X.index.astype(str), "stage": stage, "PC1": pcs[:, 0], "PC2": pcs[:, 1],
            "var1": ev[0], "var2": ev[1], color: study.loc[X.index.astype(str), color].astype(str).to_numpy(),
        }))
    df = pd.concat(out, ignore_index=True)
    df["stage"] = pd.Categorical(df["stage"], ["Before ComBat", "After ComBat"])
    return df


@dataclass
class PcaDisplay(GgplotDisplay):
    """PC1 vs PC2 before and after ComBat, coloured by centre (Figs. S2/S3).

    ``frame``: :func:`pca_frame`'s (stage, PC1, PC2, var1, var2 and the ``color`` column).
    """

    frame: pd.DataFrame
    color: str = "centre"
    title: Optional[str] = None

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, color: str = "centre", title: Optional[str] = None) -> "PcaDisplay":
        return cls(frame, color, title)

    def plot(self):
        """The ggplot: one panel per stage (its title gives the variance explained by PC1 and
        PC2), each panel its own scales."""
        import plotnine as p9

        f = self.frame.copy()
        stages = [s for s in f["stage"].cat.categories if (f["stage"] == s).any()] \
            if hasattr(f["stage"], "cat") else list(dict.fromkeys(f["stage"]))
        titles = {s: f"{s} (PC1 {f.loc[f['stage'] == s, 'var1'].iloc[0]:.1f}%, "
                     f"PC2 {f.loc[f['stage'] == s, 'var2'].iloc[0]:.1f}%)" for s in stages}
        f["panel"] = pd.Categorical(f["stage"].astype(str).map(titles), [titles[s] for s in stages])
        levels = sorted(f[self.color].astype(str).unique())
        f["group"] = pd.Categorical(f[self.color].astype(str), levels)
        return (p9.ggplot(f, p9.aes("PC1", "PC2", colour="group"))
                + p9.geom_point(size=T.pt(3.0), alpha=0.7, stroke=0)
                + p9.facet_wrap("panel", nrow=1, scales="free")
                + T.scale_colour_groups(levels, name=self.color.capitalize())
                + p9.guides(colour=p9.guide_legend(override_aes={"size": T.pt(4.5), "alpha": 1}))
                + p9.labs(title=self.title)
                + T.theme_dlrc(figure_size=(5 * len(stages) + 1.2, 4.5))
                + p9.theme(strip_text=p9.element_text(ha="center", size=T.TITLE_SIZE), panel_spacing_x=0.05))


def plot_pca(frame: pd.DataFrame, color: str = "centre", title: Optional[str] = None):
    """The ggplot of :class:`PcaDisplay`."""
    return PcaDisplay.from_frame(frame, color, title).plot()


# ------------------------------------------------------------ batch predictability
def batch_predictability(X: pd.DataFrame, groups: pd.Series, *, folds: int = 5, seed: int = 0,
                         n_components: int = 20, svd_solver: str = "randomized") -> float:
    """Cross-validated AUC of predicting the group (centre/scanner) from the features.

    Inside each fold: z-scoring, the first ``n_components`` principal components, then a
    multinomial logistic regression (L2, C = 1); stratified ``folds``-fold CV (fewer if a
    group is smaller), out-of-fold probabilities, macro-averaged one-vs-rest AUC (two groups:
    the ordinary AUC). 0.5 = the features carry no trace of the group. Groups with a single
    patient are left out.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    g = pd.Series(groups).astype(str).reindex(X.index.astype(str))
    counts = g.value_counts()
    use = g.isin(counts[counts >= 2].index).to_numpy()
    Xv = X.to_numpy(dtype=float)[use]
    Xv = Xv[:, Xv.std(axis=0) > 0]
    gv = g.to_numpy()[use]
    classes = np.unique(gv)
    if len(classes) < 2 or Xv.shape[1] == 0:
        return float("nan")
    k = int(max(2, min(folds, pd.Series(gv).value_counts().min())))
    n_train = len(gv) - int(np.ceil(len(gv) / k))
    comps = int(max(1, min(n_components, Xv.shape[1], n_train - 1)))
    # randomized SVD (seeded) by default: the leading components of a ~900 x 4,000 matrix in
    # well under a second instead of a full SVD per fold; the AUC agrees with the full SVD's
    # (tests/test_diagnostics.py)
    model = make_pipeline(StandardScaler(), PCA(n_components=comps, svd_solver=svd_solver, random_state=seed),
                          LogisticRegression(C=1.0, max_iter=5000))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    prob = cross_val_predict(model, Xv, gv, cv=cv, method="predict_proba")
    if len(classes) == 2:
        return float(roc_auc_score(gv == classes[1], prob[:, 1]))
    return float(roc_auc_score(gv, prob, multi_class="ovr", average="macro", labels=classes))


def batch_association(X: pd.DataFrame, groups: pd.Series, alpha: float = 0.05) -> float:
    """Share of features whose distribution differs between groups: Kruskal–Wallis
    p < ``alpha`` (R ``kruskal.test(x ~ group)``), groups with one patient left out."""
    from scipy.stats import kruskal

    g = pd.Series(groups).astype(str).reindex(X.index.astype(str))
    counts = g.value_counts()
    levels = sorted(counts.index[counts >= 2])
    if len(levels) < 2 or X.shape[1] == 0:
        return float("nan")
    V = X.to_numpy(dtype=float)
    samples = [V[(g == lv).to_numpy()] for lv in levels]
    with np.errstate(all="ignore"):
        p = np.asarray(kruskal(*samples, axis=0).pvalue, dtype=float)
    p = p[np.isfinite(p)]
    return float(np.mean(p < alpha)) if p.size else float("nan")


def harmonisation_summary(before: pd.DataFrame, after: pd.DataFrame, study: pd.DataFrame, *,
                          by: Sequence[str] = ("centre", "scanner"), seed: int = 0,
                          cache_dir: Optional[str] = None) -> pd.DataFrame:
    """How much of each grouping in ``by`` the features reveal, before and after harmonisation.

    ``auc_*``: cross-validated AUC of predicting the group (:func:`batch_predictability`);
    ``share_assoc_*``: share of features associated with the group (Kruskal–Wallis p < 0.05,
    :func:`batch_association`; about 0.05 when there is no association). In small samples the
    CV AUC after ComBat can fall well below 0.5: ComBat equalises the group means using every
    patient, so a held-out patient sits on the opposite side of its group's mean in the
    training folds. The association share does not have this bias. With ``cache_dir`` the
    table is cached by the inputs' bytes.
    """
    study = by_patient(study)
    return _memoised(cache_dir, "harmonisation_summary",
                     lambda: _harmonisation_summary(before, after, study, by, seed),
                     before, after, study[list(by)], list(by), int(seed))


def _harmonisation_summary(before, after, study, by, seed) -> pd.DataFrame:
    rows = []
    after = after.loc[before.index]
    for col in by:
        g = study.loc[before.index.astype(str), col]
        rows.append({
            "predict": col, "n_groups": int(g.nunique()),
            "auc_before": batch_predictability(before, g, seed=seed),
            "auc_after": batch_predictability(after, g, seed=seed),
            "share_assoc_before": batch_association(before, g),
            "share_assoc_after": batch_association(after, g),
        })
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------ funnel
@dataclass
class FunnelDisplay(GgplotDisplay):
    """Features remaining after each selection step (``funnel``: step, n_features)."""

    funnel: pd.DataFrame
    title: str = "Feature selection funnel"

    @classmethod
    def from_funnel(cls, funnel: pd.DataFrame, title: str = "Feature selection funnel") -> "FunnelDisplay":
        return cls(funnel.reset_index(drop=True), title)

    def plot(self):
        """The ggplot: horizontal bars on a log scale (from 0.7, so a step keeping one
        feature still shows), labelled with the counts; the first step on top."""
        import plotnine as p9

        df = self.funnel[["step", "n_features"]].copy()
        n = len(df)
        df["y"] = np.arange(n)[::-1].astype(float)
        df["n"] = df["n_features"].clip(lower=0.8).astype(float)
        df["label"] = [f"{int(v):,}" for v in df["n_features"]]
        df["xlabel"] = df["n"] * 1.08
        hi = max(10.0, float(df["n"].max())) * 3
        return (p9.ggplot(df)
                + p9.geom_rect(p9.aes(xmin=0.7, xmax="n", ymin=df["y"] - 0.3, ymax=df["y"] + 0.3),
                               fill=T.BAR_COLOUR, size=0)
                + p9.geom_text(p9.aes("xlabel", "y", label="label"), ha="left", va="center", size=T.BASE_SIZE)
                + p9.scale_x_log10(limits=(0.7, hi), expand=(0, 0),
                                   labels=lambda v: [f"{x:,.0f}" if x >= 1 else f"{x:g}" for x in v])
                + p9.scale_y_continuous(breaks=list(df["y"]), labels=list(df["step"]), limits=(-0.6, n - 0.4),
                                        expand=(0, 0))
                + p9.labs(x="features remaining (log scale)", y="", title=self.title)
                + T.theme_dlrc(figure_size=(7, 0.5 * n + 1.2))
                + p9.theme(panel_grid_major_y=p9.element_blank(), axis_text_y=p9.element_text(size=T.BASE_SIZE)))


def plot_funnel(funnel: pd.DataFrame, title: str = "Feature selection funnel"):
    """The ggplot of :class:`FunnelDisplay`."""
    return FunnelDisplay.from_funnel(funnel, title).plot()


@dataclass
class LassoCvDisplay(GgplotDisplay):
    """The LASSO cross-validation curve, as R ``plot(cv.glmnet)``: ``path`` (log_lambda, cvm,
    cvlo, cvup), lambda.min and lambda.1se."""

    path: pd.DataFrame
    lambda_min: float
    lambda_1se: float

    @classmethod
    def from_path(cls, path: pd.DataFrame, lambda_min: float, lambda_1se: float) -> "LassoCvDisplay":
        return cls(path, float(lambda_min), float(lambda_1se))

    def plot(self):
        """The ggplot: CV binomial deviance ± 1 SE against log(lambda), lambda.min dashed and
        lambda.1se dotted."""
        import plotnine as p9

        p = self.path[["log_lambda", "cvm", "cvlo", "cvup"]].dropna()
        return (p9.ggplot(p, p9.aes("log_lambda", "cvm"))
                + p9.geom_linerange(p9.aes(ymin="cvlo", ymax="cvup"), colour="grey", size=T.pt(0.8))
                + p9.geom_point(colour="#c0392b", size=T.pt(3.0))
                + p9.geom_vline(xintercept=np.log(self.lambda_min), linetype="dashed", colour=T.EDGE_COLOUR,
                                size=T.pt(0.8))
                + p9.geom_vline(xintercept=np.log(self.lambda_1se), linetype="dotted", colour=T.EDGE_COLOUR,
                                size=T.pt(0.8))
                + p9.labs(x="log(lambda)", y="binomial deviance (CV)",
                          title="LASSO: cross-validated deviance (dashed lambda.min, dotted lambda.1se)")
                + T.theme_dlrc(figure_size=(7, 4)))


def plot_lasso_cv(path: pd.DataFrame, lambda_min: float, lambda_1se: float):
    """The ggplot of :class:`LassoCvDisplay`."""
    return LassoCvDisplay.from_path(path, lambda_min, lambda_1se).plot()


# ---------------------------------------------------------------- Figs. S4 / S5
@dataclass
class FeatureViolinDisplay(GgplotDisplay):
    """(Standardised) selected features by LNM status, one panel per feature (Figs. S4/S6).

    ``values``: feature, lnm ("LNM(-)"/"LNM(+)"), value (finite values only).
    """

    values: pd.DataFrame
    features: list[str]
    ncol: int = 4
    title: str = "Selected features by LNM status"

    @classmethod
    def from_features(cls, Z: pd.DataFrame, y: pd.Series, ncol: int = 4,
                      title: str = "Selected features by LNM status") -> "FeatureViolinDisplay":
        yy = np.asarray(y).astype(int)
        long = Z.assign(lnm=np.where(yy == 1, T.LNM_LABELS[1], T.LNM_LABELS[0])).melt(
            id_vars="lnm", var_name="feature", value_name="value")
        long = long[np.isfinite(long["value"].to_numpy(dtype=float))].reset_index(drop=True)
        return cls(long, [str(c) for c in Z.columns], ncol, title)

    def plot(self):
        """The ggplot: violins with box plots of LNM(-) and LNM(+), each panel its own y-scale."""
        import plotnine as p9

        d = self.values.copy()
        d["feature"] = pd.Categorical(d["feature"].astype(str), self.features)
        d["lnm"] = pd.Categorical(d["lnm"], list(T.LNM_LABELS))
        n = len(self.features)
        cols = max(1, min(self.ncol, n))
        rows = int(np.ceil(n / cols))
        return (p9.ggplot(d) + F.violin_layers(d, "lnm", "value", "lnm")
                + p9.facet_wrap("feature", ncol=cols, scales="free_y")
                + T.scale_fill_lnm()
                + p9.labs(x="", y="standardised value", title=self.title)
                + T.theme_dlrc(figure_size=(3.2 * cols, 2.8 * rows + 0.6))
                + p9.theme(legend_position="none", strip_text=p9.element_text(size=T.NOTE_SIZE, ha="center"),
                           plot_title=p9.element_text(ha="center", size=T.TITLE_SIZE)))


def plot_feature_violins(Z: pd.DataFrame, y: pd.Series, ncol: int = 4,
                         title: str = "Selected features by LNM status"):
    """The ggplot of :class:`FeatureViolinDisplay` (Fig. S4)."""
    return FeatureViolinDisplay.from_features(Z, y, ncol, title).plot()


def correlation_frame(X: pd.DataFrame, method: str = "spearman") -> pd.DataFrame:
    """Long-format correlation matrix (feature_x, feature_y, r), as R ``cor(method=...)``."""
    C = X.corr(method=method)
    long = C.reset_index(names="feature_x").melt(id_vars="feature_x", var_name="feature_y", value_name="r")
    return long


@dataclass
class CorrelationDisplay(GgplotDisplay):
    """Correlations between the selected features (Figs. S5/S7): ``frame`` from
    :func:`correlation_frame`, ``features`` in the matrix's order."""

    frame: pd.DataFrame
    features: list[str]
    method: str = "spearman"
    title: Optional[str] = None

    @classmethod
    def from_features(cls, X: pd.DataFrame, method: str = "spearman",
                      title: Optional[str] = None) -> "CorrelationDisplay":
        return cls(correlation_frame(X, method), [str(c) for c in X.columns], method, title)

    def plot(self):
        """The ggplot: a tile per pair coloured from -1 (blue) to 1 (red), the value printed
        (white on dark tiles); the first feature top left, as a matrix reads."""
        import plotnine as p9

        d = self.frame.copy()
        n = len(self.features)
        d["feature_x"] = pd.Categorical(d["feature_x"].astype(str), self.features[::-1])  # rows, top down
        d["feature_y"] = pd.Categorical(d["feature_y"].astype(str), self.features)  # columns
        d["text"] = ["" if pd.isna(v) else f"{v:.2f}" for v in d["r"]]
        d["dark"] = np.where(d["r"].abs().fillna(0) > 0.6, "white", "black")
        longest = max((len(f) for f in self.features), default=0)
        name = self.method.capitalize()
        return (p9.ggplot(d, p9.aes("feature_y", "feature_x"))
                + p9.geom_tile(p9.aes(fill="r"), colour="white", size=T.pt(0.3))
                + p9.geom_text(p9.aes(label="text", colour="dark"), size=T.NOTE_SIZE)
                + p9.scale_fill_gradientn(colors=["#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
                                                  "#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f"],
                                          limits=(-1, 1), name=f"{name} r", na_value="#f0f0f0")
                + p9.scale_colour_identity()
                + p9.scale_x_discrete(expand=(0, 0))
                + p9.scale_y_discrete(expand=(0, 0))
                + p9.labs(x="", y="", title=self.title or f"{name} correlation of the selected features")
                # room for the feature names (7 pt: about 0.055 in a character; x labels at 45 degrees)
                + T.theme_dlrc(figure_size=(max(5, 0.6 * n + 3) + 0.055 * longest,
                                            max(4, 0.5 * n + 2.5) + 0.04 * longest))
                + p9.theme(axis_text_x=p9.element_text(rotation=45, ha="right", size=T.NOTE_SIZE),
                           axis_text_y=p9.element_text(size=T.NOTE_SIZE), panel_grid_major=p9.element_blank()))


def plot_correlation_heatmap(X: pd.DataFrame, method: str = "spearman", title: Optional[str] = None):
    """The ggplot of :class:`CorrelationDisplay` (Fig. S5)."""
    return CorrelationDisplay.from_features(X, method, title).plot()
