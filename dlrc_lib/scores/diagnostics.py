"""Diagnostics and figures of harmonisation and feature selection.

* Harmonisation (Supplementary Figs. S2/S3): the first two principal components of the
  standardised features before and after ComBat, coloured by centre, and how well the centre
  can be predicted from the features (cross-validated AUC). Before ComBat scanners leave a
  fingerprint the classifier can find; after ComBat it should be near chance (0.5).
* Selection: the funnel (features surviving each step), the LASSO cross-validation curve,
  violin plots of the selected features by LNM status (Fig. S4) and their correlation
  heatmap (Fig. S5).

Computations return DataFrames; plotting functions draw with matplotlib (``dlrc_lib.core.figures``)
and return the figure.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd

from dlrc_lib.core import figures as F
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


def plot_pca(frame: pd.DataFrame, color: str = "centre", title: Optional[str] = None, axes=None):
    """Scatter of PC1 vs PC2, one panel before and one after ComBat, coloured by ``color``
    (``axes``: two matplotlib axes to draw into; a new figure otherwise). Returns the figure."""
    import matplotlib.pyplot as plt

    stages = [s for s in frame["stage"].cat.categories if (frame["stage"] == s).any()] \
        if hasattr(frame["stage"], "cat") else list(dict.fromkeys(frame["stage"]))
    if axes is None:
        fig, grid = F.subplots(1, len(stages), size=(5 * len(stages), 4.5))
        axes = grid[0]
    else:
        fig = axes[0].figure
    groups = sorted(frame[color].astype(str).unique())
    cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    for ax, stage in zip(axes, stages):
        sub = frame[frame["stage"] == stage]
        for k, g in enumerate(groups):
            pts = sub[sub[color].astype(str) == g]
            ax.scatter(pts["PC1"], pts["PC2"], s=9, alpha=0.7, color=cmap(k % cmap.N), label=g, linewidths=0)
        ax.set_title(f"{stage} (PC1 {sub['var1'].iloc[0]:.1f}%, PC2 {sub['var2'].iloc[0]:.1f}%)")
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
    axes[-1].legend(title=color.capitalize(), loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=1.5)
    if title:
        fig.suptitle(title)
    return fig


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
def plot_funnel(funnel: pd.DataFrame, title: str = "Feature selection funnel", ax=None):
    """Horizontal bars: features remaining after each step (log scale), labelled with counts."""
    df = funnel.reset_index(drop=True)
    fig, ax = F.axes_or_new(ax, size=(7, 0.5 * len(df) + 1.2))
    ypos = np.arange(len(df))[::-1]
    n = df["n_features"].clip(lower=0.8).to_numpy(dtype=float)
    ax.barh(ypos, n - 0.7, left=0.7, color=F.BAR_COLOUR, height=0.6)
    for yv, v, raw in zip(ypos, n, df["n_features"]):
        ax.text(v * 1.08, yv, f"{int(raw):,}", va="center", ha="left", fontsize=9)
    ax.set_xscale("log")
    ax.set_xlim(0.7, max(10.0, n.max()) * 3)
    ax.set_yticks(ypos, df["step"].tolist())
    ax.set_xlabel("features remaining (log scale)")
    ax.set_title(title)
    ax.grid(axis="y", visible=False)
    return fig


def plot_lasso_cv(path: pd.DataFrame, lambda_min: float, lambda_1se: float, ax=None):
    """CV binomial deviance ± 1 SE against log(lambda), with lambda.min and lambda.1se
    marked (the plot R ``plot(cv.glmnet)`` draws)."""
    fig, ax = F.axes_or_new(ax, size=(7, 4))
    ax.errorbar(path["log_lambda"], path["cvm"], yerr=[path["cvm"] - path["cvlo"], path["cvup"] - path["cvm"]],
                fmt="o", color="#c0392b", ecolor="grey", markersize=3, elinewidth=0.8)
    ax.axvline(np.log(lambda_min), linestyle="--", color="#333333", linewidth=0.8)
    ax.axvline(np.log(lambda_1se), linestyle=":", color="#333333", linewidth=0.8)
    ax.set_xlabel("log(lambda)")
    ax.set_ylabel("binomial deviance (CV)")
    ax.set_title("LASSO: cross-validated deviance (dashed lambda.min, dotted lambda.1se)")
    return fig


# ---------------------------------------------------------------- Figs. S4 / S5
def plot_feature_violins(Z: pd.DataFrame, y: pd.Series, ncol: int = 4,
                         title: str = "Selected features by LNM status"):
    """Violin + box plots of (standardised) features by LNM(−)/LNM(+) (Fig. S4), one panel
    per feature."""
    n = Z.shape[1]
    cols = max(1, min(ncol, n))
    rows = int(np.ceil(n / cols))
    fig, axes = F.subplots(rows, cols, size=(3.2 * cols, 2.8 * rows + 0.6))
    yy = pd.Series(np.asarray(y), index=Z.index)
    for ax, feature in zip(axes.ravel(), Z.columns):
        groups = [Z.loc[yy == 0, feature], Z.loc[yy == 1, feature]]
        F.violins(ax, groups, [0, 1], F.LNM_COLOURS)
        ax.set_xticks([0, 1], ["LNM(-)", "LNM(+)"])
        ax.set_title(feature, fontsize=7)
        ax.set_ylabel("standardised value")
    F.hide_unused(axes, n)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def correlation_frame(X: pd.DataFrame, method: str = "spearman") -> pd.DataFrame:
    """Long-format correlation matrix (feature_x, feature_y, r), as R ``cor(method=...)``."""
    C = X.corr(method=method)
    long = C.reset_index(names="feature_x").melt(id_vars="feature_x", var_name="feature_y", value_name="r")
    return long


def plot_correlation_heatmap(X: pd.DataFrame, method: str = "spearman",
                             title: Optional[str] = None, ax=None):
    """Heatmap of the correlations between the selected features, values printed (Fig. S5)."""
    C = X.corr(method=method)
    n = C.shape[0]
    fig, ax = F.axes_or_new(ax, size=(max(5, 0.6 * n + 3), max(4, 0.5 * n + 2.5)))
    im = ax.imshow(C.to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1)
    for i in range(n):
        for j in range(n):
            v = C.iat[i, j]
            ax.text(j, i, "" if pd.isna(v) else f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if not pd.isna(v) and abs(v) > 0.6 else "black")
    ax.set_xticks(range(n), C.columns, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(n), C.index, fontsize=7)
    ax.grid(False)
    fig.colorbar(im, ax=ax, label=f"{method.capitalize()} r", shrink=0.8)
    ax.set_title(title or f"{method.capitalize()} correlation of the selected features")
    return fig