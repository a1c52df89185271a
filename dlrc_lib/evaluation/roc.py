"""ROC curves: the points of an empirical curve, and one display for every ROC figure
(Fig. 4 and the deep models' curves)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from dlrc_lib import stats
from dlrc_lib.core import theme as T
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.figures import GgplotDisplay
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
class RocDisplay(GgplotDisplay):
    """ROC curves of several scores, one panel per cohort (Fig. 4, the deep models' figure).

    Compute with :meth:`from_scores`; :meth:`plot` returns the plotnine ``ggplot``,
    :meth:`save` writes it. ``curves``: cohort (the panel), model, threshold, fpr, tpr;
    ``labels``: cohort, model, auc, lower, upper, label (the text printed in the panel), x, y
    (where it is printed).
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

    def plot(self):
        """The ggplot: one panel per cohort with the curves, the chance diagonal and each
        model's AUC text (in the model's colour, bottom right); the models' legend on the right."""
        import plotnine as p9

        panels = list(self.curves["cohort"].cat.categories)
        gg = (p9.ggplot(self.curves, p9.aes("fpr", "tpr", colour="model"))
              + p9.geom_abline(intercept=0, slope=1, linetype="dashed", colour=T.REFERENCE_COLOUR, size=T.pt(0.8))
              + p9.geom_path(size=T.pt(1.3))
              + p9.geom_text(p9.aes("x", "y", label="label", colour="model"), data=self.labels, ha="right",
                             va="bottom", size=T.NOTE_SIZE, show_legend=False)
              + p9.facet_wrap("cohort", nrow=1)
              + T.scale_colour_models(self.models, self.colours, name=self.legend_title)
              + p9.scale_x_continuous(limits=(0, 1), expand=(0, 0), breaks=[0, 0.2, 0.4, 0.6, 0.8, 1.0])
              + p9.scale_y_continuous(limits=(0, 1), expand=(0, 0), breaks=[0, 0.2, 0.4, 0.6, 0.8, 1.0])
              + p9.coord_fixed()
              + p9.labs(x="1 - Specificity", y="Sensitivity", title=self.title or None)
              + T.theme_dlrc(figure_size=(4 * len(panels) + 1.6, 4.6))
              + p9.theme(panel_spacing_x=0.03))
        return gg
