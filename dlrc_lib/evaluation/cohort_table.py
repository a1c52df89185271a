"""Table 1 (clinical characteristics by LNM status per cohort) and Fig. 1 (patient flow).

Table 1 follows R compareGroups, as the paper's table does: per cohort, LNM(-) and LNM(+)
columns with "median [Q1; Q3]" (R ``quantile`` type 7) for continuous variables (or
"mean (SD)" where the Shapiro-Wilk test finds them normal, as compareGroups prints) and
"n (%)" (column percentages) for the levels of categorical ones; a p-value per cohort from
:func:`dlrc_lib.stats.compare_categorical` (chi-square with Yates' correction, or Fisher's
exact test when an expected count is below 5; empty levels dropped) or
:func:`dlrc_lib.stats.compare_continuous` (Shapiro-Wilk on the pooled values, then
Student's t-test — compareGroups' ``var.equal = TRUE`` — or Kruskal-Wallis); and the LNM
rates compared across the three cohorts.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from dlrc_lib import stats
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.study import keys as K
from dlrc_lib.study.schema import (
    CLINICAL_VARIABLES,
    COHORT_LABELS,
    COHORTS,
    LEVEL_LABELS,
    clinical_levels,
)

# (column, label, kind, levels) in the paper's row order
VARIABLES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = tuple(
    (v.column, v.label, v.kind, v.levels) for v in CLINICAL_VARIABLES)


def _check_study(study: pd.DataFrame) -> None:
    needed = ["patient_id", "cohort", "lnm"] + [v[0] for v in VARIABLES]
    missing = [c for c in needed if c not in study.columns]
    if missing:
        raise DlrcError(f"study table: column(s) {', '.join(missing)} missing; Table 1 needs them")
    bad_cohort = study.loc[~study["cohort"].isin(COHORTS), "patient_id"].astype(str).tolist()
    if bad_cohort:
        raise DlrcError(f"patient {bad_cohort[0]}, column cohort: {study.loc[study['patient_id'].astype(str) == bad_cohort[0], 'cohort'].iloc[0]!r} "
                        f"is not one of {', '.join(COHORTS)} ({len(bad_cohort)} patient(s))")
    lnm = pd.to_numeric(study["lnm"], errors="coerce")
    bad = study.loc[~lnm.isin([0, 1]), "patient_id"].astype(str).tolist()
    if bad:
        raise DlrcError(f"patient {bad[0]}, column lnm: must be 0 or 1 ({len(bad)} patient(s))")
    for col, _, kind, levels in VARIABLES:
        if kind != "categorical" or col in ("parity", "c_lnm"):
            continue
        vals = study[col]
        wrong = study.loc[vals.notna() & ~vals.isin(levels), ["patient_id", col]]
        if len(wrong):
            pid, val = wrong.iloc[0]
            raise DlrcError(f"patient {pid}, column {col}: {val!r} is not one of {', '.join(levels)}")


@dataclass
class Table1:
    """Everything behind Table 1, in long form.

    ``categorical``: variable, level, cohort, neg, pos (counts);
    ``continuous``: variable, cohort, group (neg|pos), n, median, q1, q3, mean, sd;
    ``tests``: variable, cohort, p, method;
    ``n``: cohort -> [neg, pos]; ``lnm_rate``: (p, method) across cohorts.
    """

    categorical: pd.DataFrame
    continuous: pd.DataFrame
    tests: pd.DataFrame
    n: dict[str, list[int]]
    lnm_rate: stats.TestResult

    @property
    def cohorts(self) -> list[str]:
        """The cohorts the study has (a study without an external cohort shows no external columns)."""
        return [c for c in COHORTS if sum(self.n[c])] or list(COHORTS)


def compute_table1(study: pd.DataFrame) -> Table1:
    """Counts, quartiles and tests of Table 1 from the study table (one row per patient)."""
    _check_study(study)
    study = study.reset_index(drop=True)
    lnm = pd.to_numeric(study["lnm"]).astype(int)
    cat_rows, cont_rows, test_rows = [], [], []
    n = {c: [int(((study["cohort"] == c) & (lnm == 0)).sum()), int(((study["cohort"] == c) & (lnm == 1)).sum())]
         for c in COHORTS}
    for col, _, kind, levels in VARIABLES:
        values = clinical_levels(study, col) if kind == "categorical" else pd.to_numeric(study[col], errors="coerce")
        for cohort in COHORTS:
            in_c = (study["cohort"] == cohort).to_numpy()
            if kind == "categorical":
                table = []
                for level in levels:
                    at = in_c & (values == level).to_numpy()
                    counts = [int((at & (lnm == 0).to_numpy()).sum()), int((at & (lnm == 1).to_numpy()).sum())]
                    table.append(counts)
                    cat_rows.append({"variable": col, "level": level, "cohort": cohort,
                                     "neg": counts[0], "pos": counts[1]})
                res = stats.compare_categorical(table) if sum(map(sum, table)) else stats.TestResult(float("nan"), "no data")
            else:
                groups = []
                for g, label in ((0, "neg"), (1, "pos")):
                    x = values[in_c & (lnm == g).to_numpy()].dropna().to_numpy(dtype=float)
                    groups.append(x)
                    med, q1, q3 = (stats.quantile7(x, [0.5, 0.25, 0.75]) if x.size else [np.nan] * 3)
                    cont_rows.append({"variable": col, "cohort": cohort, "group": label, "n": int(x.size),
                                      "median": float(med), "q1": float(q1), "q3": float(q3),
                                      "mean": float(x.mean()) if x.size else np.nan,
                                      "sd": float(x.std(ddof=1)) if x.size > 1 else np.nan})
                res = stats.compare_continuous(groups[0], groups[1], method="auto")
            test_rows.append({"variable": col, "cohort": cohort, "p": res.pvalue, "method": res.method})
    rate = stats.compare_categorical([n[c] for c in COHORTS])
    return Table1(pd.DataFrame(cat_rows), pd.DataFrame(cont_rows), pd.DataFrame(test_rows), n, rate)


def _fmt_p(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _fmt_quart(med: float, q1: float, q3: float) -> str:
    if any(isinstance(v, float) and math.isnan(v) for v in (med, q1, q3)):
        return ""
    return f"{med:.1f} [{q1:.1f}; {q3:.1f}]"


def _fmt_mean_sd(mean: float, sd: float) -> str:
    if any(isinstance(v, float) and math.isnan(v) for v in (mean, sd)):
        return ""
    return f"{mean:.1f} ({sd:.1f})"


def build_table1(study: pd.DataFrame, result: Table1 | None = None) -> pd.DataFrame:
    """Table 1 in the paper's layout: one row per variable (continuous) or per variable
    heading and level (categorical), per cohort the study has the LNM(−) and LNM(+) columns,
    the p-value and the test used. The first row gives N per column."""
    t = result if result is not None else compute_table1(study)
    cols = ["Clinical feature"]
    for c in t.cohorts:
        lab = COHORT_LABELS[c]
        cols += [f"{lab} LNM(−)", f"{lab} LNM(+)", f"{lab} p-value", f"{lab} test"]
    rows = []
    first = {"Clinical feature": "N"}
    for c in t.cohorts:
        lab = COHORT_LABELS[c]
        first[f"{lab} LNM(−)"] = f"N = {t.n[c][0]}"
        first[f"{lab} LNM(+)"] = f"N = {t.n[c][1]}"
        first[f"{lab} p-value"] = ""
        first[f"{lab} test"] = ""
    rows.append(first)
    tests = t.tests.set_index(["variable", "cohort"])
    for col, label, kind, levels in VARIABLES:
        head = {"Clinical feature": label}
        for c in t.cohorts:
            lab = COHORT_LABELS[c]
            head[f"{lab} p-value"] = _fmt_p(tests.loc[(col, c), "p"])
            head[f"{lab} test"] = tests.loc[(col, c), "method"]
            if kind == "continuous":
                q = t.continuous[(t.continuous["variable"] == col) & (t.continuous["cohort"] == c)].set_index("group")
                for g, name in (("neg", "LNM(−)"), ("pos", "LNM(+)")):
                    if tests.loc[(col, c), "method"] == "t-test":  # compareGroups: normal -> mean (SD)
                        head[f"{lab} {name}"] = _fmt_mean_sd(*q.loc[g, ["mean", "sd"]])
                    else:
                        head[f"{lab} {name}"] = _fmt_quart(*q.loc[g, ["median", "q1", "q3"]])
            else:
                head[f"{lab} LNM(−)"] = ""
                head[f"{lab} LNM(+)"] = ""
        rows.append(head)
        if kind == "categorical":
            sub = t.categorical[t.categorical["variable"] == col]
            for level in levels:
                row = {"Clinical feature": "    " + LEVEL_LABELS.get(level, level)}
                for c in t.cohorts:
                    lab = COHORT_LABELS[c]
                    r = sub[(sub["level"] == level) & (sub["cohort"] == c)].iloc[0]
                    tot = sub[sub["cohort"] == c][["neg", "pos"]].sum()
                    for g, name in (("neg", "LNM(−)"), ("pos", "LNM(+)")):
                        pct = 100.0 * r[g] / tot[g] if tot[g] else float("nan")
                        row[f"{lab} {name}"] = f"{int(r[g])} ({pct:.1f}%)" if tot[g] else f"{int(r[g])}"
                    row[f"{lab} p-value"] = ""
                    row[f"{lab} test"] = ""
                rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def lnm_rate_table(study: pd.DataFrame, result: Table1 | None = None) -> pd.DataFrame:
    """LNM-positive patients per cohort and the test of equal rates across the cohorts."""
    t = result if result is not None else compute_table1(study)
    rows = []
    for i, c in enumerate(t.cohorts):
        neg, pos = t.n[c]
        tot = neg + pos
        rows.append({"Cohort": COHORT_LABELS[c], "N": tot,
                     "LNM(+)": f"{pos} ({100.0 * pos / tot:.1f}%)" if tot else "0",
                     "p-value": _fmt_p(t.lnm_rate.pvalue) if i == 0 else "",
                     "test": t.lnm_rate.method if i == 0 else ""})
    return pd.DataFrame(rows)


def table1_rows(result: Table1) -> list[K.Row]:
    """Reproduced Table 1 numbers (rows keyed by their dotted path in published_values.yaml):
    counts as [neg, pos], medians as [median, Q1, Q3] to the printed decimal, p-values to
    3 decimals or "<0.001"."""
    out = [K.row("table1", list(result.n[c]), cohort=c) for c in COHORTS]
    out.append(K.row("table1", stats.format_p(result.lnm_rate.pvalue)))
    tests = result.tests.set_index(["variable", "cohort"])
    for col, _, kind, _levels in VARIABLES:
        for c in COHORTS:
            p = stats.format_p(tests.loc[(col, c), "p"])
            if kind == "continuous":
                q = result.continuous[(result.continuous["variable"] == col) & (result.continuous["cohort"] == c)]
                for g in ("neg", "pos"):
                    r = q[q["group"] == g].iloc[0]
                    out.append(K.row("table1", [round(float(r[k]), 1) for k in ("median", "q1", "q3")],
                                     variable=col, cohort=c, group=g))
                out.append(K.row("table1", p, variable=col, cohort=c, group="p"))
            else:
                out.append(K.row("table1", p, variable=col, cohort=c))
    for r in result.categorical.itertuples(index=False):
        out.append(K.row("table1", [int(r.neg), int(r.pos)], variable=r.variable, level=r.level, cohort=r.cohort))
    return out


def styled_table1_html(table: pd.DataFrame, caption: str | None = None) -> str:
    """A styled HTML rendering of :func:`build_table1`'s frame (cohort header groups,
    variable headings in bold, levels indented, significant p-values highlighted)."""
    import html as _html

    cohort_cols = [COHORT_LABELS[c] for c in COHORTS if f"{COHORT_LABELS[c]} LNM(−)" in table.columns]
    parts = ["<style>",
             "table.t1{border-collapse:collapse;font-family:Helvetica,Arial,sans-serif;font-size:13px}",
             "table.t1 th,table.t1 td{padding:3px 8px;text-align:center;white-space:nowrap}",
             "table.t1 td.f{text-align:left} table.t1 tr.head td.f{font-weight:600}",
             "table.t1 tr.level td.f{padding-left:22px;color:#333}",
             "table.t1 thead tr:first-child th{border-top:2px solid #222}",
             "table.t1 thead tr:last-child th{border-bottom:1px solid #222}",
             "table.t1 tbody tr:last-child td{border-bottom:2px solid #222}",
             "table.t1 td.sig{font-weight:600;color:#a40000} table.t1 td.test{color:#666;font-size:11px}",
             "table.t1 caption{caption-side:top;text-align:left;font-weight:600;padding-bottom:6px}",
             "</style>", '<table class="t1">']
    if caption:
        parts.append(f"<caption>{_html.escape(caption)}</caption>")
    parts.append('<thead><tr><th rowspan="2">Clinical feature</th>')
    for lab in cohort_cols:
        parts.append(f'<th colspan="4">{_html.escape(lab)}</th>')
    parts.append("</tr><tr>")
    for _ in cohort_cols:
        parts.append("<th>LNM(−)</th><th>LNM(+)</th><th>p-value</th><th>test</th>")
    parts.append("</tr></thead><tbody>")
    for _, row in table.iterrows():
        feat = str(row["Clinical feature"])
        kind = "level" if feat.startswith("    ") else "head"
        parts.append(f'<tr class="{kind}"><td class="f">{_html.escape(feat.strip())}</td>')
        for lab in cohort_cols:
            for name in ("LNM(−)", "LNM(+)", "p-value", "test"):
                v = str(row[f"{lab} {name}"])
                cls = ""
                if name == "p-value" and v and (v.startswith("<") or float(v) < 0.05):
                    cls = ' class="sig"'
                elif name == "test":
                    cls = ' class="test"'
                parts.append(f"<td{cls}>{_html.escape(v)}</td>")
        parts.append("</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- Fig. 1
def flow_counts(study: pd.DataFrame, exclusions: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The numbers of the flow diagram: enrolled, exclusions by reason, included, per centre,
    centre -> cohort, and per cohort [LNM-, LNM+]."""
    _check_study(study)
    excl = {str(k): int(v) for k, v in (exclusions or {}).items()}
    for reason, v in excl.items():
        if v < 0:
            raise DlrcError(f"study.exclusions: count for {reason!r} is negative ({v})")
    lnm = pd.to_numeric(study["lnm"]).astype(int)
    centres = {str(k): int(v) for k, v in study["centre"].astype(str).value_counts().sort_index().items()}
    cross = pd.crosstab(study["centre"].astype(str), study["cohort"])
    centre_to_cohort = {(str(ce), co): int(cross.loc[ce, co]) for ce in cross.index for co in cross.columns
                        if cross.loc[ce, co] > 0}
    cohorts = {c: [int(((study["cohort"] == c) & (lnm == 0)).sum()), int(((study["cohort"] == c) & (lnm == 1)).sum())]
               for c in COHORTS}
    included = int(len(study))
    return {"enrolled": included + sum(excl.values()), "excluded": excl, "n_excluded": sum(excl.values()),
            "included": included, "centres": centres, "centre_to_cohort": centre_to_cohort, "cohorts": cohorts}


def centre_order(centres: Iterable[str], centre_to_cohort: Mapping[tuple[str, str], int]) -> list[str]:
    """The centres from left to right by the cohorts they feed (training, then internal, then
    external validation; by name within), so that no arrow of Fig. 1 crosses another."""
    rank = {c: i for i, c in enumerate(COHORTS)}
    fed = {ce: sorted(rank[co] for (c, co) in centre_to_cohort if c == ce) for ce in centres}
    return sorted(centres, key=lambda ce: (fed[ce][:1] or [len(rank)], fed[ce][-1:] or [len(rank)], ce))


def centre_label(centre: str, count: int, width: int) -> str:
    """A centre's box text: ``Centre A`` for a letter or short code, else its own name, wrapped
    at ``width`` characters, and its number of patients."""
    name = f"Centre {centre}" if len(centre) <= 3 else centre
    return textwrap.fill(name, max(width, 6), break_long_words=True) + f"\n(n = {count})"


def flow_diagram(study: pd.DataFrame, exclusions: Mapping[str, int] | None = None, ax=None):
    """Fig. 1: enrolled -> excluded by reason -> included per centre -> training / internal /
    external cohorts with their LNM counts. Returns the matplotlib Figure (nothing saved).
    Long centre names are wrapped inside their boxes; centres stand in the order of the
    cohorts they feed (:func:`centre_order`)."""
    from matplotlib.figure import Figure

    f = flow_counts(study, exclusions)
    if ax is None:
        fig = Figure(figsize=(11, 7.5))  # no pyplot state: safe in scripts, tests and notebooks
        ax = fig.subplots()
    else:
        fig = ax.figure
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    draw = _FlowDrawing(ax)
    _flow_top(draw, f)
    cx, y_cen = _flow_centres(draw, f, width_in=fig.get_figwidth() * ax.get_position().width)
    _flow_cohorts(draw, f, cx, y_cen)
    return fig


class _FlowDrawing:
    """Boxes and arrows of the flow chart on ``ax`` (axes coordinates 0-1)."""

    def __init__(self, ax):
        self.ax = ax

    def box(self, x, y, text, w, h, face="#f4f6fa", edge="#34495e", fontsize=9):
        from matplotlib.patches import FancyBboxPatch

        self.ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.006",
                                         facecolor=face, edgecolor=edge, linewidth=1.1))
        self.ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)

    def arrow(self, x0, y0, x1, y1, label=None):
        self.ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                         arrowprops=dict(arrowstyle="-|>", color="#34495e", lw=1.0, shrinkA=0, shrinkB=0))
        if label:
            self.ax.text((x0 + x1) / 2 + 0.008, (y0 + y1) / 2, label, fontsize=8, color="#555", va="center")

    def line(self, xs, ys):
        self.ax.plot(xs, ys, color="#34495e", lw=1.0)


def _flow_top(draw: _FlowDrawing, f: dict, y_incl: float = 0.66) -> None:
    """Enrolled, the exclusions by reason (a box right of the column, its top under the enrolled
    box, as tall as its reasons need), and the patients included."""
    draw.box(0.5, 0.93, f"Patients with early-stage cervical cancer enrolled\nfrom {len(f['centres'])} centre(s) "
                        f"(n = {f['enrolled']})", 0.46, 0.08)
    if f["excluded"]:
        reasons = "\n".join(textwrap.fill(f"• {r}: n = {v}", 40, subsequent_indent="  ")
                            for r, v in f["excluded"].items())
        h = 0.027 * (reasons.count("\n") + 2) + 0.02
        top = 0.875
        y = max(top - h / 2, y_incl + 0.06)  # the arrow meets the box, above the included box
        draw.box(0.82, top - h / 2, f"Excluded (n = {f['n_excluded']})\n" + reasons, 0.34, h,
                 face="#fdf2f2", edge="#a94442")
        draw.line([0.5, 0.5], [0.89, y])
        draw.arrow(0.5, y, 0.65, y)
        draw.arrow(0.5, y, 0.5, y_incl + 0.04)
    else:
        draw.arrow(0.5, 0.89, 0.5, y_incl + 0.04)
    draw.box(0.5, y_incl, f"Patients included (n = {f['included']})", 0.27, 0.07)
    draw.line([0.5, 0.5], [y_incl - 0.035, 0.53])


def _flow_centres(draw: _FlowDrawing, f: dict, width_in: float, y_top: float = 0.49) -> tuple[dict, float]:
    """One box per centre (its top at ``y_top``), long names wrapped; returns each centre's x and
    the boxes' lower edge."""
    order = centre_order(f["centres"], f["centre_to_cohort"])
    n = len(order)
    xs = np.linspace(0.1, 0.9, n) if n > 1 else np.array([0.5])
    w = min(0.15, 0.84 / max(n, 1) - 0.01)
    fontsize = 9 if n <= 6 else 8
    chars = int(w * width_in * 72 / (0.55 * fontsize))  # ~0.55 em per character
    labels = {ce: centre_label(ce, f["centres"][ce], chars) for ce in order}
    lines = max(lab.count("\n") + 1 for lab in labels.values()) if labels else 2
    h = 0.027 * lines + 0.02
    y_cen = y_top - h / 2
    draw.line([xs.min(), xs.max()], [0.53, 0.53])
    cx = {}
    for x, centre in zip(xs, order):
        draw.arrow(x, 0.53, x, y_cen + h / 2)
        draw.box(x, y_cen, labels[centre], w, h, fontsize=fontsize)
        cx[centre] = x
    return cx, y_cen - h / 2


def _flow_cohorts(draw: _FlowDrawing, f: dict, cx: dict, y_from: float, y_coh: float = 0.13) -> None:
    """The cohorts the study has (a cohort without patients gets no box), with an arrow from each
    centre feeding it (labelled with its count when a centre feeds several)."""
    present = [c for c in COHORTS if sum(f["cohorts"][c])]
    coh_x = dict(zip(present, np.linspace(0.17, 0.83, len(present)) if len(present) > 1 else [0.5]))
    for cohort, x in coh_x.items():
        neg, pos = f["cohorts"][cohort]
        draw.box(x, y_coh, f"{COHORT_LABELS[cohort]} cohort (n = {neg + pos})\nLNM(−) n = {neg}; LNM(+) n = {pos}",
                 0.3, 0.09, face="#eef7ee", edge="#2e6b30")
    for (centre, cohort), count in sorted(f["centre_to_cohort"].items()):
        split = sum(1 for (ce, _) in f["centre_to_cohort"] if ce == centre) > 1
        draw.arrow(cx[centre], y_from, coh_x[cohort], y_coh + 0.045, label=f"n = {count}" if split else None)
