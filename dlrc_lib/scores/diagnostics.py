"""Diagnostics and figures of harmonisation and feature selection.

* Harmonisation (Supplementary Figs. S2/S3): the first two principal components of the
  standardised features before and after ComBat, coloured by centre, and how well the centre
  can be predicted from the features (cross-validated AUC). Before ComBat scanners leave a
  fingerprint the classifier can find; after ComBat it should be near chance (0.5).
* Selection: the funnel (features surviving each step), the LASSO cross-validation curve,
  violin plots of the selected features by LNM status (Fig. S4) and their correlation
  heatmap (Fig. S5).

Computations return DataFrames; plotting functions return plotnine objects.
"""
from __future__ import annotations

import copy
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from dlrc_lib.study.manifest import by_patient

__all__ = [
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


def _redrawable(g):
    """Make a plotnine plot safe to render more than once.

    plotnine 0.15 keeps facet state from one ``draw()`` to the next, so a faceted plot that
    was saved (drawn) and is then displayed by Jupyter fails with an IndexError. Drawing a
    deep copy each time avoids it.
    """
    import plotnine as p9

    class _Plot(p9.ggplot):
        def draw(self, *args, **kwargs):  # noqa: D401 - plotnine API
            fresh = copy.deepcopy(self)
            fresh.__class__ = p9.ggplot
            return fresh.draw(*args, **kwargs)

    g.__class__ = _Plot
    return g




def _standardised(X: pd.DataFrame) -> np.ndarray:
    v = X.to_numpy(dtype=float)
    sd = v.std(axis=0)
    keep = sd > 0
    return (v[:, keep] - v[:, keep].mean(axis=0)) / sd[keep]


# ---------------------------------------------------------------------------- PCA
def _memoised(cache_dir: Optional[str], name: str, fn, *inputs):
    """``fn()`` cached under ``<cache_dir>/memo/diagnostics`` by the inputs' bytes and this
    module's code (``cache_dir=None``: no cache)."""
    from dlrc_lib.core.memo import Memo, code_fingerprint, digest

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


def plot_pca(frame: pd.DataFrame, color: str = "centre", title: Optional[str] = None):
    """Scatter of PC1 vs PC2, one panel before and one after ComBat, coloured by ``color``."""
    import plotnine as p9

    lab = frame.groupby("stage", observed=True)[["var1", "var2"]].first()
    frame = frame.copy()
    names = {s: f"{s} (PC1 {lab.loc[s, 'var1']:.1f}%, PC2 {lab.loc[s, 'var2']:.1f}%)" for s in lab.index}
    frame["panel"] = pd.Categorical(frame["stage"].map(names), [names[s] for s in lab.index])
    g = (
        p9.ggplot(frame, p9.aes("PC1", "PC2", color=color))
        + p9.geom_point(alpha=0.7, size=1.6)
        + p9.facet_wrap("~panel", scales="free")
        + p9.labs(x="PC1", y="PC2", color=color.capitalize(), title=title or "")
        + p9.theme_bw()
        + p9.theme(figure_size=(10, 4.5))
    )
    return _redrawable(g)


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
def plot_funnel(funnel: pd.DataFrame, title: str = "Feature selection funnel"):
    """Horizontal bars: features remaining after each step (log scale), labelled with counts."""
    import plotnine as p9

    df = funnel.copy()
    df["step"] = pd.Categorical(df["step"], list(df["step"])[::-1])
    df["label"] = df["n_features"].map(lambda v: f"{int(v):,}")
    df["plot_n"] = df["n_features"].clip(lower=0.8)
    return _redrawable(
        p9.ggplot(df, p9.aes("step", "plot_n"))
        + p9.geom_segment(p9.aes(x="step", xend="step", y=0.7, yend="plot_n"), color="#3b6ea8",
                          size=9, lineend="butt")
        + p9.geom_text(p9.aes(label="label"), ha="left", nudge_y=0.05, size=9)
        + p9.scale_y_log10(expand=(0, 0, 0.25, 0))
        + p9.coord_flip()
        + p9.labs(x="", y="features remaining (log scale)", title=title)
        + p9.theme_bw()
        + p9.theme(figure_size=(7, 0.5 * len(df) + 1.2))
    )


def plot_lasso_cv(path: pd.DataFrame, lambda_min: float, lambda_1se: float):
    """CV binomial deviance ± 1 SE against log(lambda), with lambda.min and lambda.1se
    marked (the plot R ``plot(cv.glmnet)`` draws)."""
    import plotnine as p9

    return _redrawable(
        p9.ggplot(path, p9.aes("log_lambda", "cvm"))
        + p9.geom_errorbar(p9.aes(ymin="cvlo", ymax="cvup"), color="grey", width=0.0)
        + p9.geom_point(color="#c0392b", size=1.4)
        + p9.geom_vline(xintercept=np.log(lambda_min), linetype="dashed")
        + p9.geom_vline(xintercept=np.log(lambda_1se), linetype="dotted")
        + p9.labs(x="log(lambda)", y="binomial deviance (CV)",
                  title="LASSO: cross-validated deviance (dashed lambda.min, dotted lambda.1se)")
        + p9.theme_bw()
        + p9.theme(figure_size=(7, 4))
    )


# ---------------------------------------------------------------- Figs. S4 / S5
def plot_feature_violins(Z: pd.DataFrame, y: pd.Series, ncol: int = 4,
                         title: str = "Selected features by LNM status"):
    """Violin + box plots of (standardised) features by LNM(−)/LNM(+) (Fig. S4)."""
    import plotnine as p9

    long = Z.assign(LNM=pd.Series(y, index=Z.index).map({0: "LNM(-)", 1: "LNM(+)"}).to_numpy()).melt(
        id_vars="LNM", var_name="feature", value_name="value")
    long["LNM"] = pd.Categorical(long["LNM"], ["LNM(-)", "LNM(+)"])
    long["feature"] = pd.Categorical(long["feature"], list(Z.columns))
    n = Z.shape[1]
    return _redrawable(
        p9.ggplot(long, p9.aes("LNM", "value", fill="LNM"))
        + p9.geom_violin(alpha=0.6, trim=True)
        + p9.geom_boxplot(width=0.15, outlier_size=0.5, fill="white")
        + p9.facet_wrap("~feature", ncol=min(ncol, n), scales="free_y")
        + p9.scale_fill_manual(values=["#4c72b0", "#dd8452"])
        + p9.labs(x="", y="standardised value", title=title)
        + p9.theme_bw()
        + p9.theme(figure_size=(3.2 * min(ncol, n), 2.8 * int(np.ceil(n / ncol)) + 0.6),
                   legend_position="none", strip_text=p9.element_text(size=7))
    )


def correlation_frame(X: pd.DataFrame, method: str = "spearman") -> pd.DataFrame:
    """Long-format correlation matrix (feature_x, feature_y, r), as R ``cor(method=...)``."""
    C = X.corr(method=method)
    long = C.reset_index(names="feature_x").melt(id_vars="feature_x", var_name="feature_y", value_name="r")
    return long


def plot_correlation_heatmap(X: pd.DataFrame, method: str = "spearman",
                             title: Optional[str] = None):
    """Heatmap of the correlations between the selected features, values printed (Fig. S5)."""
    import plotnine as p9

    long = correlation_frame(X, method)
    order = list(X.columns)
    long["feature_x"] = pd.Categorical(long["feature_x"], order)
    long["feature_y"] = pd.Categorical(long["feature_y"], order[::-1])
    long["label"] = long["r"].map(lambda v: f"{v:.2f}")
    n = len(order)
    return _redrawable(
        p9.ggplot(long, p9.aes("feature_x", "feature_y", fill="r"))
        + p9.geom_tile(color="white")
        + p9.geom_text(p9.aes(label="label"), size=7)
        + p9.scale_fill_gradient2(low="#3b4cc0", mid="white", high="#b40426", midpoint=0, limits=(-1, 1))
        + p9.labs(x="", y="", fill=f"{method.capitalize()} r",
                  title=title or f"{method.capitalize()} correlation of the selected features")
        + p9.theme_bw()
        + p9.theme(axis_text_x=p9.element_text(rotation=45, ha="right", size=7),
                   axis_text_y=p9.element_text(size=7),
                   figure_size=(max(5, 0.6 * n + 3), max(4, 0.5 * n + 2.5)))
    )
