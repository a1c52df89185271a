"""What a sweep shows: the specification curve, the main effects of each choice and how often
each of the paper's claims holds (notebook ``09_sensitivity``; the sweep draws the curve too).

The specification curve (Simonsohn, Simmons & Nelson 2020, *Nature Human Behaviour* 4:1208)
plots one estimate per variant of the analysis, sorted, with its CI, above a dot matrix of
the choices each variant made: it shows at a glance how much the result depends on choices
that the paper fixed without saying why.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from dlrc_lib.core import figures as F
from dlrc_lib.study.schema import COHORT_LABELS as _LABELS

COHORT_LABELS = {c: label.lower() for c, label in _LABELS.items()}
ROLE_LABELS = {"radiomics": "radiomics", "dl": "best DL", "dlrc": "DLRC"}
PUBLISHED_MODEL = {"radiomics": "radiomics", "dl": "ResNet152_2D", "dlrc": "DLRC"}


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


def specification_curve(table: pd.DataFrame, keys: Sequence[str], *, base_choices: Optional[dict] = None,
                        published: Optional[Sequence[float]] = None, cohort: str = "external",
                        role: str = "dlrc", title: Optional[str] = None):
    """A matplotlib figure: AUC with CI per finished variant (sorted), the paper's value and CI
    as a band, and beneath it a dot matrix of each variant's choices."""
    base_choices = base_choices or {}
    col = f"{role}_{cohort}_auc"
    ok = table[(table["status"] == "ok") & table[col].notna()].copy()
    ok = ok.sort_values([col, "variant"], kind="mergesort").reset_index(drop=True)
    x = np.arange(len(ok))
    rows: list[tuple[str, str]] = [(k, lv) for k in keys for lv in _levels(table, k, base_choices.get(k))]
    height_dots = max(1.2, 0.28 * len(rows))
    fig, axes = F.subplots(2, 1, size=(max(6.0, 0.32 * len(ok) + 3.5), 3.2 + height_dots), sharex=True,
                           gridspec_kw={"height_ratios": [3.2, height_dots], "hspace": 0.05})
    ax, ax2 = axes[0, 0], axes[1, 0]
    ax2.grid(False)
    if published is not None:
        est, lo, hi = published
        ax.axhspan(lo, hi, color="#f4c27a", alpha=0.35, lw=0, label=f"paper: {est:.3f} ({lo:.3f}-{hi:.3f})")
        ax.axhline(est, color="#d08a1a", lw=1)
    ax.axhline(0.5, color="0.6", lw=0.8, ls=":")
    is_base = ok["variant"].eq("base").to_numpy()
    lo_err = (ok[col] - ok[f"{role}_{cohort}_auc_lo"]).to_numpy(float)
    hi_err = (ok[f"{role}_{cohort}_auc_hi"] - ok[col]).to_numpy(float)
    ax.errorbar(x, ok[col], yerr=[lo_err, hi_err], fmt="none", ecolor=F.BAR_COLOUR, elinewidth=1, alpha=0.8)
    ax.scatter(x[~is_base], ok.loc[~is_base, col], s=18, color=F.BAR_COLOUR, zorder=3, label="variant")
    if is_base.any():
        ax.scatter(x[is_base], ok.loc[is_base, col], s=40, color=F.THRESHOLD_COLOUR, zorder=4, marker="D",
                   label="defaults (params file)")
    ax.set_ylabel(f"{ROLE_LABELS[role]} AUC, {COHORT_LABELS[cohort]}\n(95 % CI)")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    n_failed = int((table["status"] == "failed").sum())
    ax.set_title(title or f"Specification curve: {len(ok)} variants"
                 + (f" ({n_failed} failed, not shown)" if n_failed else ""), fontsize=10)
    for i, (k, lv) in enumerate(rows):
        used = ok[k].astype(str).eq(lv).to_numpy()
        ax2.scatter(x[used], np.full(used.sum(), i), s=14, color=F.BAR_COLOUR)
        ax2.scatter(x[~used], np.full((~used).sum(), i), s=6, color="0.85")
    ax2.set_yticks(range(len(rows)))
    ax2.set_yticklabels([f"{k} = {lv}" + (" *" if _same(lv, base_choices.get(k)) else "") for k, lv in rows],
                        fontsize=7)
    ax2.set_ylim(len(rows) - 0.5, -0.5)
    ax2.set_xticks(x)
    ax2.set_xticklabels([""] * len(x))
    ax2.set_xlabel("variants, sorted by AUC  (* the params file's choice)", fontsize=8)
    for i in range(1, len(keys)):
        n = sum(1 for k, _ in rows if k in keys[:i])
        ax2.axhline(n - 0.5, color="0.7", lw=0.6)
    fig.align_ylabels()
    return fig


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
