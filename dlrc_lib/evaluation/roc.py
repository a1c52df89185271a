"""ROC curves: the points of an empirical curve, and one display for every ROC figure
(Fig. 4 and the deep models' curves)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from dlrc_lib import stats
from dlrc_lib.core import figures as F
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.study.schema import COHORTS, PANEL_LABELS


def roc_points(y: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    """Empirical ROC curve over all thresholds, from (0, 0) to (1, 1): one point per distinct
    score (positive when score >= threshold; the first, threshold inf, calls nobody positive),
    columns threshold, fpr (1 - specificity), tpr (sensitivity)."""
    y = np.asarray(y, int)
    s = np.asarray(score, float)
    thr = np.r_[np.inf, np.unique(s)[::-1]]
    pos, neg = max(int(y.sum()), 1), max(int((1 - y).sum()), 1)
    tpr = [float(((s >= t) & (y == 1)).sum()) / pos for t in thr]
    fpr = [float(((s >= t) & (y == 0)).sum()) / neg for t in thr]
    return pd.DataFrame({"threshold": thr, "fpr": fpr, "tpr": tpr})


@dataclass
class RocDisplay:
    """ROC curves of several scores, one panel per cohort (Fig. 4, the deep models' figure).

    Compute with :meth:`from_scores`, draw with :meth:`plot`. ``curves``: panel, model, fpr,
    tpr; ``labels``: panel, model, auc, lower, upper, label (the text printed in the panel).
    """

    curves: pd.DataFrame
    labels: pd.DataFrame
    models: list[str]
    title: str = ""
    legend_title: str = "Model"
    colours: Mapping[str, str] | None = None

    @classmethod
    def from_scores(cls, frame: pd.DataFrame, scores: Mapping[str, str], *, ci: bool = True, title: str = "",
                    legend_title: str = "Model", colours: Mapping[str, str] | None = None) -> "RocDisplay":
        """``frame``: ``cohort``, ``lnm`` and the score columns; ``scores``: display name -> column.
        Patients without a score are left out of that score's curve; a cohort with one LNM
        class has no curve. Panel text: ``name: AUC`` or, with ``ci``, ``name: AUC (lo-hi)``
        (DeLong, R pROC ``ci.auc``)."""
        models = list(scores)
        curves, labels = [], []
        for cohort in COHORTS:
            sub = frame[frame["cohort"] == cohort]
            present = [m for m in models if sub.loc[sub[scores[m]].notna(), "lnm"].nunique() == 2]
            for i, name in enumerate(present):
                ok = sub[sub[scores[name]].notna()]
                y, s = ok["lnm"].to_numpy(int), ok[scores[name]].to_numpy(float)
                c = roc_points(y, s)
                c["cohort"], c["model"] = PANEL_LABELS[cohort], name
                curves.append(c)
                a = stats.auc_ci(y, s)
                text = f"{name}: {a.auc:.3f} ({a.lower:.3f}-{a.upper:.3f})" if ci else f"{name}: {a.auc:.3f}"
                labels.append({"cohort": PANEL_LABELS[cohort], "model": name, "auc": float(a.auc),
                               "lower": float(a.lower), "upper": float(a.upper), "label": text,
                               "x": 0.98, "y": 0.05 + (0.08 if ci else 0.065) * (len(present) - 1 - i)})
        if not curves:
            raise DlrcError("ROC curves: no cohort has LNM(+) and LNM(-) patients with a score")
        order = [PANEL_LABELS[c] for c in COHORTS]
        curves_df, labels_df = pd.concat(curves, ignore_index=True), pd.DataFrame(labels)
        for df in (curves_df, labels_df):
            df["cohort"] = pd.Categorical(df["cohort"], [o for o in order if o in set(df["cohort"])])
            df["model"] = pd.Categorical(df["model"], models)
        return cls(curves_df, labels_df, models, title, legend_title, colours)

    def plot(self, axes=None):
        """Draw one panel per cohort (``axes``: matplotlib axes, one per panel; a new figure
        otherwise): the curves, the chance diagonal, each panel's AUC text. Returns the figure."""
        panels = list(self.curves["cohort"].cat.categories)
        if axes is None:
            fig, grid = F.subplots(1, len(panels), size=(4 * len(panels), 4.6))
            axes = grid[0]
        else:
            fig = axes[0].figure
        colours = dict(self.colours) if self.colours else {m: F.MODEL_COLOURS[i % len(F.MODEL_COLOURS)]
                                                           for i, m in enumerate(self.models)}
        for ax, panel in zip(axes, panels):
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
            for model in self.models:
                c = self.curves[(self.curves["cohort"] == panel) & (self.curves["model"] == model)]
                if len(c):
                    ax.plot(c["fpr"], c["tpr"], color=colours[model], linewidth=1.3, label=model)
            lab = self.labels[self.labels["cohort"] == panel]
            for r in lab.itertuples():
                ax.text(r.x, r.y, r.label, ha="right", va="bottom", fontsize=7, color=colours[r.model])
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_aspect("equal")
            ax.set_title(panel, loc="left")
            ax.set_xlabel("1 - Specificity")
            ax.set_ylabel("Sensitivity")
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, title=self.legend_title, loc="center left", bbox_to_anchor=(0.99, 0.5))
        if self.title:
            fig.suptitle(self.title)
        fig.tight_layout()
        return fig
