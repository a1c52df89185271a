"""ROC curves: the points of an empirical curve, and one figure style for every ROC panel
(Fig. 4 and the deep models' curves)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def roc_points(y: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    """Empirical ROC curve (1 - specificity, sensitivity) over all thresholds, (0,0)->(1,1)."""
    y = np.asarray(y, int)
    s = np.asarray(score, float)
    thr = np.unique(s)[::-1]
    pos, neg = max(int(y.sum()), 1), max(int((1 - y).sum()), 1)
    tpr = [0.0] + [float(((s >= t) & (y == 1)).sum()) / pos for t in thr]
    fpr = [0.0] + [float(((s >= t) & (y == 0)).sum()) / neg for t in thr]
    return pd.DataFrame({"fpr": fpr, "tpr": tpr})
