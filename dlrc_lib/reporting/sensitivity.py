"""What a sweep shows: the specification curve, the main effects of each choice and how often
each of the paper's claims holds (notebook ``09_sensitivity``; the sweep draws the curve too).

The specification curve (Simonsohn, Simmons & Nelson 2020, *Nature Human Behaviour* 4:1208)
plots one estimate per variant of the analysis, sorted, with its CI, above a dot matrix of
the choices each variant made: it shows at a glance how much the result depends on choices
that the paper fixed without saying why.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from dlrc_lib.core import theme as T
from dlrc_lib.core.config import PAPER_BEST_DL
from dlrc_lib.core.figures import GgplotDisplay
from dlrc_lib.study.schema import COHORT_LABELS as _LABELS
from dlrc_lib.study.schema import DLRC, RADIOMICS

COHORT_LABELS = {c: label.lower() for c, label in _LABELS.items()}
ROLE_LABELS = {"radiomics": "radiomics", "dl": "best DL", "dlrc": "DLRC"}
PUBLISHED_MODEL = {"radiomics": RADIOMICS, "dl": PAPER_BEST_DL, "dlrc": DLRC}


def load_sweep(sweep_dir: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``sweep.csv`` and ``sweep.json`` of a sweep folder."""
    sweep_dir = Path(sweep_dir)
    table = pd.read_csv(sweep_dir / "sweep.csv", keep_default_na=False, na_values=[""])
    meta = json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))
    return table, meta


def published_auc(published_file: str | Path, cohort: str = "external", role: str = "dlrc") -> Optional[list[float]]:
    """The paper's AUC [estimate, lower, upper] for a model and cohort (Table 2)."""
    import yaml

    path = Path(published_file)
    if not path.is_file():
        return None
    pub = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        return [float(v) for v in pub["table2"][cohort][PUBLISHED_MODEL[role]]["auc"]]
    except (KeyError, TypeError):
        return None


def _same(a: Any, b: Any) -> bool:
    return str(a) == str(b)


def _levels(table: pd.DataFrame, key: str, base: Any) -> list[str]:
    values = list(dict.fromkeys(str(v) for v in table[key]))
    if base is not None and str(base) in values:
        values.remove(str(base))
        values.insert(0, str(base))
    return values


@dataclass
class SpecificationCurveDisplay(GgplotDisplay):
    """The specification curve of a sweep: ``estimates`` (one row per finished variant,
    sorted by AUC: x, variant, auc, lower, upper, base) above ``choices`` (x, row, used: the
    dot matrix of each variant's choices); ``rows`` labels the matrix's rows, top down."""

    estimates: pd.DataFrame
    choices: pd.DataFrame
    rows: list[str]
    separators: list[float]
    ylabel: str
    title: str
    published: Optional[Sequence[float]] = None

    @classmethod
    def from_sweep(cls, table: pd.DataFrame, keys: Sequence[str], *, base_choices: Optional[dict] = None,
                   published: Optional[Sequence[float]] = None, cohort: str = "external", role: str = "dlrc",
                   title: Optional[str] = None) -> "SpecificationCurveDisplay":
        """``table``: ``sweep.csv``; ``keys``: the swept parameters; ``published``: the
        paper's [estimate, lower, upper], drawn as a band."""
        base_choices = base_choices or {}
        col = f"{role}_{cohort}_auc"
        ok = table[(table["status"] == "ok") & table[col].notna()].copy()
        ok = ok.sort_values([col, "variant"], kind="mergesort").reset_index(drop=True)
        est = pd.DataFrame({"x": np.arange(len(ok), dtype=float), "variant": ok["variant"].astype(str),
                            "auc": ok[col].astype(float), "lower": ok[f"{col}_lo"].astype(float),
                            "upper": ok[f"{col}_hi"].astype(float), "base": ok["variant"].eq("base")})
        pairs = [(k, lv) for k in keys for lv in _levels(table, k, base_choices.get(k))]
        dots = [{"x": float(i), "row": r, "used": str(ok.at[i, k]) == lv}
                for r, (k, lv) in enumerate(pairs) for i in range(len(ok))]
        labels = [f"{k} = {lv}" + (" *" if _same(lv, base_choices.get(k)) else "") for k, lv in pairs]
        seps = [float(sum(1 for k, _ in pairs if k in keys[:i])) for i in range(1, len(keys))]
        n_failed = int((table["status"] == "failed").sum())
        title = title or (f"Specification curve: {len(ok)} variants"
                          + (f" ({n_failed} failed, not shown)" if n_failed else ""))
        return cls(est, pd.DataFrame(dots, columns=["x", "row", "used"]), labels, seps,
                   f"{ROLE_LABELS[role]} AUC, {COHORT_LABELS[cohort]}\n(95 % CI)", title,
                   list(published) if published is not None else None)

    def plot(self):
        """The ggplot: AUC with its CI per variant (the params file's defaults a red diamond),
        the paper's value and CI as a band, chance (0.5) dotted; beneath, the dot matrix of the
        choices (filled: the variant made this choice)."""
        import plotnine as p9

        AUC, CHOICES = "AUC", "choices"
        panels = [AUC, CHOICES]
        est = self.estimates.assign(panel=pd.Categorical([AUC] * len(self.estimates), panels))
        est["kind"] = np.where(est["base"], "defaults (params file)", "variant")
        nrow = len(self.rows)
        dots_h = max(1.2, 0.28 * nrow)  # the height of the choices panel (inches)
        dots = self.choices.assign(y=-1.0 - self.choices["row"],
                                   panel=pd.Categorical([CHOICES] * len(self.choices), panels))
        labels = dict(zip([-1.0 - r for r in range(nrow)], self.rows))

        def breaks(limits):
            if limits[1] < 0:  # the dot matrix
                return sorted(labels)
            lo, hi = limits
            step = 0.05 if hi - lo < 0.4 else 0.1
            return list(np.round(np.arange(np.ceil(lo / step) * step, hi + 1e-9, step), 2))

        def fmt(values):
            return [labels.get(float(v), "") if v < 0 else f"{v:.2f}" for v in values]

        n = max(len(est), 1)
        ref = pd.DataFrame({"panel": pd.Categorical([AUC], panels), "y": [0.5]})
        frame = pd.DataFrame({"panel": pd.Categorical([CHOICES, CHOICES], panels), "x": [0.0, 0.0],
                              "y": [-0.5, -0.5 - nrow]})
        gg = p9.ggplot()
        kinds = ["variant", "defaults (params file)"]
        if self.published is not None:
            e, lo, hi = self.published
            band = pd.DataFrame({"panel": pd.Categorical([AUC], panels), "lo": [lo], "hi": [hi], "e": [e],
                                 "what": [f"paper: {e:.3f} ({lo:.3f}-{hi:.3f})"]})
            gg = (gg + p9.geom_rect(p9.aes(xmin=-np.inf, xmax=np.inf, ymin="lo", ymax="hi", fill="what"),
                                    data=band, alpha=0.35, size=0)
                  + p9.geom_hline(p9.aes(yintercept="e"), data=band, colour=T.PAPER_COLOUR, size=T.pt(1.0))
                  + p9.scale_fill_manual(values={band["what"].iloc[0]: T.PAPER_FILL}, name=""))
        gg = (gg + p9.geom_hline(p9.aes(yintercept="y"), data=ref, colour="#999999", linetype="dotted",
                                 size=T.pt(0.8))
              + p9.geom_blank(p9.aes("x", "y"), data=frame)
              + p9.geom_linerange(p9.aes("x", ymin="lower", ymax="upper"), data=est, colour=T.BAR_COLOUR,
                                  alpha=0.8, size=T.pt(1.0))
              + p9.geom_point(p9.aes("x", "auc", colour="kind", shape="kind", size="kind"), data=est)
              + p9.geom_point(p9.aes("x", "y"), data=dots[~dots["used"]], colour="#d9d9d9", size=T.pt(2.4), stroke=0)
              + p9.geom_point(p9.aes("x", "y"), data=dots[dots["used"]], colour=T.BAR_COLOUR, size=T.pt(3.7),
                              stroke=0)
              + p9.scale_colour_manual(values=dict(zip(kinds, (T.BAR_COLOUR, T.THRESHOLD_COLOUR))), limits=kinds,
                                       name="")
              + p9.scale_shape_manual(values=dict(zip(kinds, ("o", "D"))), limits=kinds, name="")
              + p9.scale_size_manual(values=dict(zip(kinds, (T.pt(4.2), T.pt(6.3)))), limits=kinds, name="")
              + p9.scale_x_continuous(breaks=list(est["x"]), labels=[""] * len(est), limits=(-0.6, n - 0.4),
                                      expand=(0, 0))
              + p9.scale_y_continuous(breaks=breaks, labels=fmt)
              + p9.facet_grid(rows="panel", scales="free_y", space={"x": [1.0], "y": [3.2, dots_h]})
              + p9.labs(x="variants, sorted by AUC  (* the params file's choice)", y=self.ylabel, title=self.title,
                        fill="", colour="", shape="", size="")
              + T.theme_dlrc(figure_size=(max(6.0, 0.32 * n + 3.5), 3.2 + dots_h + 0.6))
              + p9.theme(strip_text_y=p9.element_blank(), legend_position="bottom",
                         axis_title_x=p9.element_text(size=T.TICK_SIZE), axis_text_y=p9.element_text(size=T.NOTE_SIZE),
                         panel_spacing_y=0.01, plot_title=p9.element_text(size=T.TITLE_SIZE, ha="center")))
        if self.separators:
            seps = pd.DataFrame({"panel": pd.Categorical([CHOICES] * len(self.separators), panels),
                                 "y": [-0.5 - s for s in self.separators]})
            gg = gg + p9.geom_hline(p9.aes(yintercept="y"), data=seps, colour="#b3b3b3", size=T.pt(0.6))
        return gg


def specification_curve(table: pd.DataFrame, keys: Sequence[str], *, base_choices: Optional[dict] = None,
                        published: Optional[Sequence[float]] = None, cohort: str = "external",
                        role: str = "dlrc", title: Optional[str] = None):
    """The ggplot of :class:`SpecificationCurveDisplay`: AUC with CI per finished variant
    (sorted), the paper's value and CI as a band, and beneath it a dot matrix of each
    variant's choices."""
    return SpecificationCurveDisplay.from_sweep(table, keys, base_choices=base_choices, published=published,
                                                cohort=cohort, role=role, title=title).plot()


def main_effects(table: pd.DataFrame, keys: Sequence[str], base_choices: dict, *,
                 cohort: str = "external", role: str = "dlrc") -> pd.DataFrame:
    """How much each choice moves the AUC, all other choices equal.

    For every key and every level other than the params file's, the mean (and range) of the
    AUC difference over the pairs of finished variants that differ only in that key. Sorted by
    the absolute mean difference, largest first.
    """
    col = f"{role}_{cohort}_auc"
    ok = table[(table["status"] == "ok") & table[col].notna()].copy()
    for k in keys:
        ok[k] = ok[k].astype(str)
    rows = []
    for k in keys:
        base = str(base_choices.get(k))
        others = [o for o in keys if o != k]
        ref = ok[ok[k] == base].set_index(others)[col] if others else ok[ok[k] == base][col].reset_index(drop=True)
        for lv in _levels(table, k, base):
            if lv == base:
                continue
            alt = ok[ok[k] == lv]
            if others:
                alt = alt.set_index(others)[col]
                both = pd.concat([ref.rename("ref"), alt.rename("alt")], axis=1, join="inner")
            else:
                both = pd.DataFrame({"ref": ref.iloc[:1].to_numpy(), "alt": alt[col].iloc[:1].to_numpy()})
            diff = (both["alt"] - both["ref"]).dropna()
            rows.append({"key": k, "default": base, "level": lv, "pairs": int(len(diff)),
                         "mean_change": float(diff.mean()) if len(diff) else np.nan,
                         "min_change": float(diff.min()) if len(diff) else np.nan,
                         "max_change": float(diff.max()) if len(diff) else np.nan})
    out = pd.DataFrame(rows, columns=["key", "default", "level", "pairs", "mean_change", "min_change", "max_change"])
    if len(out):
        out = out.iloc[out["mean_change"].abs().fillna(-1).sort_values(ascending=False, kind="mergesort").index]
    return out.reset_index(drop=True)


def claim_frequencies(table: pd.DataFrame) -> pd.DataFrame:
    """For each claim: in how many finished variants it holds, fails, and the share that holds."""
    ok = table[table["status"] == "ok"]
    counts: dict[str, dict[str, int]] = {}
    for col, what in (("claims_holding", "holds"), ("claims_failing", "fails")):
        if col not in ok.columns:
            continue
        for cell in ok[col].dropna():
            for cid in str(cell).split(";"):
                if cid:
                    counts.setdefault(cid, {"holds": 0, "fails": 0})[what] += 1
    rows = [{"claim": cid, "holds": c["holds"], "fails": c["fails"], "tested": c["holds"] + c["fails"],
             "share_holding": c["holds"] / (c["holds"] + c["fails"])} for cid, c in counts.items()]
    out = pd.DataFrame(rows, columns=["claim", "holds", "fails", "tested", "share_holding"])
    return out.sort_values(["share_holding", "claim"], kind="mergesort").reset_index(drop=True)


def auc_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per model and cohort: the AUC's median, range and the share of variants above 0.5."""
    ok = table[table["status"] == "ok"]
    rows = []
    for role in ROLE_LABELS:
        for cohort in COHORT_LABELS:
            col = f"{role}_{cohort}_auc"
            if col not in ok.columns:
                continue
            v = ok[col].dropna().astype(float)
            if v.empty:
                continue
            rows.append({"model": ROLE_LABELS[role], "cohort": cohort, "variants": int(len(v)),
                         "median_auc": float(v.median()), "min_auc": float(v.min()), "max_auc": float(v.max()),
                         "share_ci_above_0.5": float((ok.loc[v.index, f"{col}_lo"] > 0.5).mean())})
    return pd.DataFrame(rows)
