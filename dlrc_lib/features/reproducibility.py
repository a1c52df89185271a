"""Feature reproducibility: inter- and intra-observer ICC of every radiomics feature.

The paper re-segmented 30 randomly chosen tumours twice: radiologist 2 drew them
independently (inter-observer), and radiologist 1 drew them again two months later
(intra-observer). Every feature was extracted from all three masks, and only features
whose intraclass correlation coefficient exceeded 0.75 in both comparisons were kept.

:func:`icc_table` computes both ICCs for every feature at once with the vectorised
:func:`dlrc_lib.stats.icc_many` (ICC(2,1) as ``psych::ICC``: two-way random effects,
absolute agreement, single rater), from feature tables of the three masks;
:func:`reproducibility` extracts those tables through the feature store (the reader-1
features are the same cache entries the rest of the analysis uses) and applies the filter.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from dlrc_lib.core import theme as T
from dlrc_lib.core import figures as F
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.figures import GgplotDisplay
from dlrc_lib.features.radiomics import (
    RadiomicsResult,
    extract_radiomics,
    feature_groups,
)
from dlrc_lib.stats import icc_many
from dlrc_lib.study.schema import MASK_ROLES

ROLES = tuple(r.name for r in MASK_ROLES)


def icc_table(reader1: pd.DataFrame, reader2: pd.DataFrame, repeat: pd.DataFrame, *,
              form: str = "ICC(2,1)", threshold: float = 0.75, min_cases: int = 5) -> pd.DataFrame:
    """Inter- (reader 1 vs reader 2) and intra-observer (reader 1 vs repeat) ICC per feature.

    Parameters
    ----------
    reader1, reader2, repeat : DataFrame
        Features (patients x features) from the three masks; the patients present in all
        three (and the columns present in all three) are used.
    form : ``"ICC(2,1)"`` or ``"ICC(3,1)"`` (as ``psych::ICC``).
    threshold : a feature is kept when both ICCs are strictly greater.

    Returns
    -------
    DataFrame indexed by feature name (``index.name == "feature"``) with columns
    ``icc_inter``, ``icc_intra``, ``keep`` (bool). A feature without variance among the
    cases has an undefined ICC (NaN) and is not kept.
    """
    cases = reader1.index.intersection(reader2.index).intersection(repeat.index)
    in_all = set(cases)
    cases = [p for p in reader1.index if p in in_all]
    if len(cases) < min_cases:
        raise DlrcError(
            f"ICC: only {len(cases)} patient(s) have features from all three masks (reader 1, reader 2, "
            f"repeat); at least {min_cases} are needed (icc.min_cases). Check the study's mask_r2_*/mask_rep_* "
            "columns and the radiomics failures table")
    shared = set(reader2.columns) & set(repeat.columns)
    cols = [c for c in reader1.columns if c in shared]
    a = reader1.loc[cases, cols].to_numpy(dtype=float).T  # (features, cases)
    b = reader2.loc[cases, cols].to_numpy(dtype=float).T
    c = repeat.loc[cases, cols].to_numpy(dtype=float).T
    with np.errstate(divide="ignore", invalid="ignore"):
        inter = icc_many(np.stack([a, b], axis=2), form=form)
        intra = icc_many(np.stack([a, c], axis=2), form=form)
    # a feature without any variance has no defined ICC (0/0), whatever the estimator returns
    stacked = np.concatenate([a, b, c], axis=1)
    constant = np.nanmax(stacked, axis=1) == np.nanmin(stacked, axis=1)
    inter[constant] = np.nan
    intra[constant] = np.nan
    out = pd.DataFrame({"icc_inter": inter, "icc_intra": intra}, index=pd.Index(cols, name="feature"))
    out["keep"] = (out["icc_inter"] > threshold) & (out["icc_intra"] > threshold)
    return out


def kept_counts(icc: pd.DataFrame) -> pd.DataFrame:
    """Features before and after the ICC filter per sequence and image type (plus totals)."""
    g = feature_groups(icc.index)
    g["keep"] = icc["keep"].to_numpy(dtype=bool)
    t = (g.groupby(["sequence", "image_type"], sort=True)["keep"]
         .agg(features="size", kept="sum").reset_index())
    per_seq = g.groupby("sequence", sort=True)["keep"].agg(features="size", kept="sum").reset_index()
    per_seq["image_type"] = "all"
    total = pd.DataFrame([{"sequence": "all", "image_type": "all", "features": len(g), "kept": int(g["keep"].sum())}])
    out = pd.concat([t, per_seq[t.columns], total], ignore_index=True)
    out["kept"] = out["kept"].astype(int)
    out["kept_pct"] = np.round(100.0 * out["kept"] / out["features"].where(out["features"] > 0), 1)
    return out


def excluded_features(icc: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The features the filter removed, with both ICCs and the reason, worst first."""
    ex = icc.loc[~icc["keep"].astype(bool), ["icc_inter", "icc_intra"]].copy()

    def reason(r) -> str:
        if np.isnan(r.icc_inter) or np.isnan(r.icc_intra):
            return "ICC undefined (feature constant across the cases)"
        parts = []
        if not r.icc_inter > threshold:
            parts.append(f"inter-observer ICC {r.icc_inter:.3f} <= {threshold}")
        if not r.icc_intra > threshold:
            parts.append(f"intra-observer ICC {r.icc_intra:.3f} <= {threshold}")
        return "; ".join(parts)

    ex["reason"] = [reason(r) for r in ex.itertuples()]
    ex["worst"] = ex[["icc_inter", "icc_intra"]].min(axis=1)
    ex = ex.sort_values(["worst"], na_position="first", kind="mergesort").drop(columns="worst")
    return ex.reset_index()


def icc_long(icc: pd.DataFrame) -> pd.DataFrame:
    """Long format for plotting: feature, sequence, image_type, comparison, icc."""
    g = feature_groups(icc.index).set_index("feature")
    rows = []
    for col, label in (("icc_inter", "inter-observer"), ("icc_intra", "intra-observer")):
        d = g[["sequence", "image_type"]].copy()
        d["comparison"] = label
        d["icc"] = icc[col].to_numpy()
        rows.append(d.reset_index())
    out = pd.concat(rows, ignore_index=True)
    return out[np.isfinite(out["icc"])]


@dataclass
class IccDisplay(GgplotDisplay):
    """The inter- and intra-observer ICCs of every feature (:func:`icc_long`) against the
    keep threshold: ``kind="violin"`` (per sequence and image type) or ``"histogram"``."""

    values: pd.DataFrame
    threshold: float
    kind: str = "violin"

    @classmethod
    def from_icc(cls, icc: pd.DataFrame, threshold: float, kind: str = "violin") -> "IccDisplay":
        if kind not in ("violin", "histogram"):
            raise ValueError(f"ICC figure: kind must be violin or histogram, not {kind!r}")
        return cls(icc_long(icc), float(threshold), kind)

    def plot(self):
        """The ggplot: ``violin``, violins with box plots of the two ICCs per image type, one
        panel per sequence (ICCs below -1 shown at -1); ``histogram``, both ICCs over all
        features in bins of 0.025 (below -0.2 shown at -0.2). The threshold dashed."""
        return self._violin() if self.kind == "violin" else self._histogram()

    def _violin(self):
        import plotnine as p9

        d = self.values.copy()
        d["icc"] = d["icc"].clip(lower=-1.0)
        comps = list(dict.fromkeys(d["comparison"]))
        sequences = list(dict.fromkeys(d["sequence"]))
        d["sequence"] = pd.Categorical(d["sequence"], sequences)
        d["image_type"] = pd.Categorical(d["image_type"], list(dict.fromkeys(d["image_type"])))
        d["comparison"] = pd.Categorical(d["comparison"], comps)
        return (p9.ggplot(d) + F.violin_layers(d, "image_type", "icc", "comparison", width=0.34 * len(comps) + 0.04,
                                             dodge=0.38 * len(comps))
                + p9.geom_hline(yintercept=self.threshold, linetype="dashed", colour=T.THRESHOLD_COLOUR,
                                size=T.pt(0.9))
                + p9.facet_wrap("sequence", ncol=1)
                + T.scale_fill_models(comps, name="")
                + p9.labs(x="image type", y="ICC", fill="",
                          title=f"Feature reproducibility (dashed: keep threshold {self.threshold})")
                + T.theme_dlrc(figure_size=(9, 2.7 * len(sequences) + 0.9))
                + p9.theme(legend_position="top", axis_text_x=p9.element_text(rotation=20, ha="right"),
                           plot_title=p9.element_text(ha="center", size=T.TITLE_SIZE)))

    def _histogram(self):
        import plotnine as p9

        d = self.values.copy()
        d["icc"] = d["icc"].clip(lower=-0.2)
        comps = list(dict.fromkeys(d["comparison"]))
        d["comparison"] = pd.Categorical(d["comparison"], comps)
        bins = np.arange(-0.2, 1.0 + 0.025, 0.025)
        return (p9.ggplot(d, p9.aes("icc", fill="comparison"))
                + p9.geom_histogram(breaks=bins, position="identity", alpha=0.6, size=0)
                + p9.geom_vline(xintercept=self.threshold, linetype="dashed", colour=T.THRESHOLD_COLOUR,
                                size=T.pt(0.9))
                + T.scale_fill_models(comps, name="")
                + p9.labs(x="ICC (values below -0.2 shown at -0.2)", y="features", fill="")
                + T.theme_dlrc(figure_size=(8, 4))
                + p9.theme(legend_position=(0.02, 0.98), legend_justification=(0, 1)))


def plot_icc(icc: pd.DataFrame, threshold: float):
    """The violin ggplot of :class:`IccDisplay`."""
    return IccDisplay.from_icc(icc, threshold, "violin").plot()


def plot_icc_histogram(icc: pd.DataFrame, threshold: float):
    """The histogram ggplot of :class:`IccDisplay`."""
    return IccDisplay.from_icc(icc, threshold, "histogram").plot()


@dataclass
class ReproducibilityResult:
    """What :func:`reproducibility` returns: the ICC table (the ``icc`` frame of notebook 02),
    the extraction behind it, the re-segmented patients (``subset``) and those with all
    three masks extracted (``cases``, the ICC's sample)."""

    icc: pd.DataFrame
    extraction: RadiomicsResult
    cases: list[str]
    subset: list[str]
    threshold: float
    form: str
    skipped: str | None = None  # why no ICC was computed (every feature kept), or None

    @property
    def tested(self) -> bool:
        """Whether the ICC filter was computed (else :attr:`skipped` says why)."""
        return self.skipped is None

    @property
    def failures(self) -> pd.DataFrame:
        """Extraction failures of the re-segmented patients (any of their three masks)."""
        f = self.extraction.failures
        return f[f["patient_id"].isin(self.subset)].reset_index(drop=True)


def icc_subset(study: pd.DataFrame, sequences: Sequence[str]) -> pd.DataFrame:
    """The study rows that have reader-2 and repeat masks for every sequence."""
    have = pd.Series(True, index=study.index)
    for seq in sequences:
        for col in (f"mask_r2_{seq}", f"mask_rep_{seq}"):
            if col not in study.columns:
                return study.iloc[:0]  # a study without re-segmented patients
            have &= study[col].notna() & (study[col].astype(str).str.len() > 0)
    return study[have]


def reproducibility(study: pd.DataFrame, settings_file: str | os.PathLike, cache_dir: str | os.PathLike, *,
                    sequences: Sequence[str] = ("CET1", "DWI", "T2FS"), form: str = "ICC(2,1)",
                    threshold: float = 0.75, min_cases: int = 5, n_jobs: int = 0,
                    dask_scheduler: str | None = None, progress: bool = True,
                    all_patients: bool = True, mask_label: int | None = None) -> ReproducibilityResult:
    """Extract the three masks of the re-segmented patients and compute the ICC filter.

    With ``all_patients`` (default) the reader-1 features of the whole study are extracted
    in the same parallel run, so later steps find every case in the cache. ``mask_label``:
    the tumour's voxel value in the masks (:func:`~dlrc_lib.features.radiomics.extract_radiomics`).
    """
    subset = icc_subset(study, sequences)
    rows = study if all_patients or subset.empty else subset
    roles = ROLES if not subset.empty else ("reader1",)
    res = extract_radiomics(rows, settings_file, cache_dir, sequences=sequences, masks=roles,
                            n_jobs=n_jobs, dask_scheduler=dask_scheduler, progress=progress,
                            mask_label=mask_label)
    used: list[str] = []
    if not subset.empty:
        both = set(res.by_mask["reader1"].index) & set(res.by_mask["repeat"].index)
        used = [p for p in res.by_mask["reader2"].index if p in both]
    if len(used) < min_cases:
        # no reproducibility subset to speak of: every feature is kept, and the run says why
        why = ("no patient has reader-2 and repeat masks (columns mask_r2_<SEQ>, mask_rep_<SEQ>)" if subset.empty
               else f"only {len(used)} re-segmented patient(s) have features from all three masks")
        reason = (f"{why}; the ICC needs icc.min_cases={min_cases}: the reproducibility filter was not applied "
                  "and every feature was kept")
        icc = pd.DataFrame({"icc_inter": np.nan, "icc_intra": np.nan, "keep": True},
                           index=pd.Index(list(res.by_mask["reader1"].columns), name="feature"))
        return ReproducibilityResult(icc=icc, extraction=res, cases=used, subset=list(subset["patient_id"]),
                                     threshold=threshold, form=form, skipped=reason)
    icc = icc_table(res.by_mask["reader1"], res.by_mask["reader2"], res.by_mask["repeat"],
                    form=form, threshold=threshold, min_cases=min_cases)
    return ReproducibilityResult(icc=icc, extraction=res, cases=used, subset=list(subset["patient_id"]),
                                 threshold=threshold, form=form)
