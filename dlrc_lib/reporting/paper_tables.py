"""The paper's tables laid out as in the paper, each cell with the published and the
reproduced value side by side (``paper | here``).

Built from the published values (``published_values.yaml``) and the run's ``reproduced``
values, so the layout does not depend on how a notebook formats its own tables. Cells are
marked ``out`` where a reproduced AUC lies outside the paper's 95 % CI or a p-value falls
on the other side of 0.05, and ``input`` where the number is one the synthetic twin was
built from.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from dlrc_lib.core.config import PAPER_BEST_DL
from dlrc_lib.reporting.claims import CALIBRATED, COHORT, INPUT, Missing, RunView, as_number, published_roles
from dlrc_lib.study import keys as K
from dlrc_lib.study.schema import COHORT_LABELS, DLRC, LEVEL_LABELS, RADIOMICS, SRA

METRICS = ("acc", "sen", "spe", "ppv", "npv")
TABLE1_VARIABLES = (("parity", "Parity"), ("menopause", "Menopause"), ("family_history", "Family history"),
                    ("figo_stage", "Clinical FIGO stage"), ("c_lnm", "c_LNM"), ("histology", "Histology"))


def _shown_or_dash(show) -> str:
    """A cell's text, or an em dash where the value is missing or not a number."""
    try:
        return show()
    except (Missing, TypeError, ValueError, IndexError):
        return "—"


@dataclass
class Cell:
    published: str
    reproduced: str
    mark: str = ""  # "" | "out" | "input" | "calibrated" | "cohort"
    note: str = ""


@dataclass
class Row:
    label: str
    cells: list[Cell]
    heading: bool = False


@dataclass
class SideTable:
    key: str
    title: str
    groups: list[str]
    rows: list[Row] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    note: str = ""
    supergroups: list[tuple[str, int]] = field(default_factory=list)  # (label, number of groups)


# ----------------------------------------------------------------------------- cells
def _pct(v: Any) -> str:
    if v is None:
        return "0/0"
    try:
        return f"{as_number(v):.1f}%"
    except Missing:
        return str(v)


def _auc(v: Any) -> str:
    if isinstance(v, list) and len(v) == 3:
        try:
            return f"{as_number(v[0]):.3f} ({as_number(v[1]):.3f}–{as_number(v[2]):.3f})"
        except Missing:
            return "—"
    return "/" if v is None else str(v)


def _p(v: Any) -> str:
    if isinstance(v, str):
        return v
    try:
        return f"{as_number(v):.3f}"
    except Missing:
        return "—"


def _quart(v: Any) -> str:
    if isinstance(v, list) and len(v) == 3:
        return f"{as_number(v[0]):.1f} [{as_number(v[1]):.1f}; {as_number(v[2]):.1f}]"
    return "—" if v is None else str(v)


def _count(v: Any, i: int) -> str:
    return str(v[i]) if isinstance(v, list) and len(v) > i else "—"


def run_cohorts(view: RunView) -> dict[str, str]:
    """Cohort -> label of the cohorts the run's study has (Table 1's counts): a study without an
    external cohort gets no external columns; all three when the counts are not there."""
    have = {}
    for c, label in COHORT_LABELS.items():
        n = view.reproduced.get(K.key("table1", cohort=c))
        if isinstance(n, list) and sum(v for v in n if isinstance(v, (int, float))):
            have[c] = label
    return have or dict(COHORT_LABELS)


class _Builder:
    def __init__(self, view: RunView):
        self.view = view
        self.roles = published_roles(view, view.published.keys())
        self.alpha = float(view.settings.get("alpha", 0.05))
        self.cohorts = run_cohorts(view)

    def pub(self, key: str) -> Any:
        return self.view.published.get(key)

    def has(self, key: str | None) -> bool:
        return key is not None and key in self.view.reproduced

    def cell(self, pkey: str, rkey: str | None, kind: str, index: int = 0) -> Cell:
        pv = self.pub(pkey)
        rv = self.view.reproduced.get(rkey) if rkey else None
        produced = self.has(rkey)
        shown = {"auc": _auc, "pct": _pct, "p": _p, "quart": _quart}.get(kind)
        p_text = _shown_or_dash(lambda: _count(pv, index) if kind == "count" else shown(pv))
        if not produced:
            r_text = "—"
        elif kind == "count":
            r_text = _shown_or_dash(lambda: _count(rv, index))
        elif kind == "pct" and rv is None:
            r_text = "0/0"
        else:
            # a value the run could not estimate (e.g. quartiles of a cohort the study does not have)
            r_text = _shown_or_dash(lambda: shown(rv))
        mark, note = "", ""
        if self.roles.get(pkey) == INPUT:
            mark, note = "input", "input of the synthetic twin: matches by construction, not reproduced"
        elif self.roles.get(pkey) == COHORT:
            mark, note = "cohort", "this study's own cohort: shown beside the paper's, not graded"
        elif self.roles.get(pkey) == CALIBRATED:
            mark, note = "calibrated", "the synthetic twin was tuned towards this number: not a reproduction"
        elif produced and kind == "auc" and isinstance(pv, list) and isinstance(rv, list) and len(rv) == 3:
            try:
                est = as_number(rv[0])
                if not (as_number(pv[1]) <= est <= as_number(pv[2])):
                    mark, note = "out", "outside the paper's 95 % CI"
            except Missing:
                pass
        elif produced and kind == "p" and pv is not None and rv is not None:
            try:
                if (as_number(pv) < self.alpha) != (as_number(rv) < self.alpha):
                    mark, note = "out", f"on the other side of {self.alpha:g} than the paper's p"
            except Missing:
                pass
        return Cell(p_text, r_text, mark, note)


# ----------------------------------------------------------------------------- the tables
def table1(b: _Builder) -> SideTable:
    groups = ["LNM(−)", "LNM(+)", "p"] * len(b.cohorts)
    t = SideTable("table1", "Table 1. Clinical characteristics by LNM status", groups, figures=["fig1_flow"],
                  supergroups=[(c, 3) for c in b.cohorts.values()])
    blank = Cell("", "")
    cells = []
    for c in b.cohorts:
        n = K.key("table1", cohort=c)
        cells += [b.cell(n, n, "count", 0), b.cell(n, n, "count", 1), blank]
    rate = K.key("table1")
    cells[-1] = b.cell(rate, rate, "p")
    t.rows.append(Row("N (p: LNM rate across cohorts)", cells))
    for var, label in (("age", "Age, median [Q1; Q3]"), ("age_at_menopause", "Age at menopause")):
        cells = []
        for c in b.cohorts:
            for g, kind in (("neg", "quart"), ("pos", "quart"), ("p", "p")):
                k = K.key("table1", variable=var, cohort=c, group=g)
                cells.append(b.cell(k, k, kind))
        t.rows.append(Row(label, cells))
    for var, label in TABLE1_VARIABLES:
        head = []
        for c in b.cohorts:
            p = K.key("table1", variable=var, cohort=c)
            head += [blank, blank, b.cell(p, p, "p")]
        t.rows.append(Row(label, head, heading=True))
        published = [K.parse(k) for k in b.view.published if K.is_key(k)]
        for level in dict.fromkeys(k.level for k in published
                                   if k.table == "table1" and k.variable == var and k.level is not None):
            cells = []
            for c in b.cohorts:
                key = K.key("table1", variable=var, level=level, cohort=c)
                cells += [b.cell(key, key, "count", 0), b.cell(key, key, "count", 1), blank]
            t.rows.append(Row("  " + LEVEL_LABELS.get(level, level), cells))
    return t


def _perf_rows(b: _Builder, table: str, cohort: str, models: list[tuple[str, str, str]]) -> list[Row]:
    rows = []
    for label, pmodel, rmodel in models:
        cells = []
        pk = {m: K.key(table, cohort=cohort, model=pmodel, metric=m) for m in ("auc", *METRICS)}
        rk = {m: K.key(table, cohort=cohort, model=rmodel, metric=m) if rmodel else None for m in ("auc", *METRICS)}
        cells.append(b.cell(pk["auc"], rk["auc"], "auc") if pk["auc"] in b.view.published else Cell("/", "/"))
        for m in METRICS:
            cells.append(b.cell(pk[m], rk[m], "pct"))
        rows.append(Row(label, cells))
    return rows


def table2(b: _Builder) -> SideTable:
    paper_dl = str(b.view.settings.get("paper_best_dl", PAPER_BEST_DL))
    best = b.view.best_dl
    dl_label = paper_dl if best in (None, paper_dl) else f"{paper_dl} (here: {best})"
    t = SideTable("table2", "Table 2. Performance of SRA, radiomics, the best DL model and DLRC",
                  ["AUC (95% CI)"] + [m.upper() for m in METRICS], figures=["fig4_roc"],
                  note="The DL row compares the paper's best DL model with this run's best." if best not in (None, paper_dl) else "")
    for c, label in b.cohorts.items():
        t.rows.append(Row(label, [Cell("", "")] * 6, heading=True))
        t.rows += _perf_rows(b, "table2", c, [("Radiomics", "radiomics", "radiomics"), (dl_label, paper_dl, best),
                                              ("DLRC", "DLRC", "DLRC"), ("SRA", "SRA", "SRA")])
    return t


def table3(b: _Builder) -> SideTable:
    t = SideTable("table3", "Table 3. Performance of the six DL models", ["AUC (95% CI)"] + [m.upper() for m in METRICS],
                  figures=["fig_dl_roc"])
    for c, label in b.cohorts.items():
        t.rows.append(Row(label, [Cell("", "")] * 6, heading=True))
        published = [K.parse(k) for k in b.view.published if K.is_key(k)]
        models = dict.fromkeys(k.model for k in published if k.table == "table3" and k.cohort == c)
        t.rows += _perf_rows(b, "table3", c, [(m, m, m) for m in models])
    return t


def table4(b: _Builder) -> SideTable:
    paper_dl = str(b.view.settings.get("paper_best_dl", PAPER_BEST_DL))
    best = b.view.best_dl
    here = "" if best in (None, paper_dl) else f" (here: {best})"
    t = SideTable("table4", "Table 4. Paired DeLong p-values between the models' AUCs", list(b.cohorts.values()),
                  figures=["fig3_nomogram"])
    for label, first, pother, rother in (("DLRC vs Radiomics", DLRC, RADIOMICS, RADIOMICS),
                                         (f"DLRC vs {paper_dl}{here}", DLRC, paper_dl, best),
                                         (f"Radiomics vs {paper_dl}{here}", RADIOMICS, paper_dl, best)):
        t.rows.append(Row(label, [b.cell(K.key("table4", model=first, other=pother, cohort=c),
                                         K.key("table4", model=first, other=rother, cohort=c) if rother else None, "p")
                                  for c in b.cohorts]))
    return t


def calibration(b: _Builder) -> SideTable:
    t = SideTable("calibration", "Fig. 5. Hosmer–Lemeshow test of the DLRC model (p)", list(b.cohorts.values()),
                  figures=["fig5_calibration"])
    hl = {c: K.key("calibration_hosmer_lemeshow_p", cohort=c) for c in b.cohorts}
    t.rows.append(Row("DLRC", [b.cell(hl[c], hl[c], "p") for c in b.cohorts]))
    return t


def decision_curves(b: _Builder) -> SideTable:
    t = SideTable("decision_curve", "Fig. 6. Thresholds at which DLRC has the highest net benefit",
                  list(b.cohorts.values()), figures=["fig6_decision_curve"])
    dc = b.view.record.decision_curve if b.view.record is not None else None
    ranges = {r.get("cohort"): r.get("ranges", "") for r in ((dc.dlrc_best_ranges if dc else None) or [])}
    t.rows.append(Row("DLRC", [Cell("“a wide range”", str(ranges.get(c, "—"))) for c in b.cohorts]))
    return t


def table5(b: _Builder) -> SideTable:
    t = SideTable("table5", "Table 5. DLRC and SRA stratified by the largest node's short axis (LNSD)",
                  [m.upper() for m in METRICS])
    for sub, label in (("lnsd_below_10mm", "LNSD < 10 mm"), ("lnsd_10mm_or_more", "LNSD ≥ 10 mm")):
        t.rows.append(Row(label, [Cell("", "")] * 5, heading=True))
        for c, clabel in b.cohorts.items():
            for model in (DLRC, SRA):
                keys = [K.key("table5", subgroup=sub, cohort=c, model=model, metric=m) for m in METRICS]
                t.rows.append(Row(f"{clabel}: {model}", [b.cell(k, k, "pct") for k in keys]))
    return t


def paper_tables(view: RunView) -> list[SideTable]:
    b = _Builder(view)
    return [table1(b), table2(b), table3(b), table4(b), table5(b), calibration(b), decision_curves(b)]


# ----------------------------------------------------------------------------- rendering
def to_html(t: SideTable, figure_href: dict[str, str] | None = None) -> str:
    e = html.escape
    parts = [f"<section class='paper' id='{e(t.key)}'><h3>{e(t.title)}</h3>"]
    if t.note:
        parts.append(f"<p class='meta'>{e(t.note)}</p>")
    parts.append(f"<div class='pair'><div class='ptable'><table class='side t-{e(t.key)}'><thead>")
    if t.supergroups:
        parts.append("<tr><th></th>" + "".join(f"<th colspan='{2 * n}'>{e(label)}</th>" for label, n in t.supergroups)
                     + "</tr>")
    parts.append("<tr><th rowspan='2'></th>")
    parts += [f"<th colspan='2'>{e(g)}</th>" for g in t.groups]
    parts.append("</tr><tr>" + "<th class='sub'>paper</th><th class='sub'>here</th>" * len(t.groups) + "</tr></thead><tbody>")
    for r in t.rows:
        cls = " class='head'" if r.heading else ""
        parts.append(f"<tr{cls}><td class='lab'>{e(r.label)}</td>")
        for c in r.cells:
            title = f" title='{e(c.note)}'" if c.note else ""
            parts.append(f"<td class='pub {e(c.mark)}'>{e(c.published)}</td>"
                         f"<td class='rep {e(c.mark)}'{title}>{e(c.reproduced)}</td>")
        parts.append("</tr>")
    parts.append("</tbody></table></div>")
    for fig in t.figures:
        href = (figure_href or {}).get(fig)
        if href:
            parts.append(f"<figure class='side'><a href='{e(href)}'><img src='{e(href)}' alt='{e(fig)}'></a>"
                         f"<figcaption>{e(fig)}</figcaption></figure>")
    parts.append("</div></section>")
    return "".join(parts)


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def to_markdown(t: SideTable, figure_href: dict[str, str] | None = None) -> str:
    names = list(t.groups)
    if t.supergroups:
        names, i = [], 0
        for label, n in t.supergroups:
            names += [f"{label} {g}" for g in t.groups[i:i + n]]
            i += n
    head = ["", *[f"{g}: {side}" for g in names for side in ("paper", "here")]]
    lines = [f"### {t.title}", ""]
    if t.note:
        lines += [t.note, ""]
    lines += ["| " + " | ".join(_md_escape(h) for h in head) + " |", "|" + "---|" * len(head)]
    for r in t.rows:
        cells = [f"**{r.label}**" if r.heading else r.label.strip()]
        for c in r.cells:
            rep = c.reproduced
            if c.mark == "out" and rep:
                rep = f"**{rep}** ⚠"
            elif c.mark in ("input", "calibrated", "cohort") and rep:
                rep = f"_{rep}_ ({'own cohort' if c.mark == 'cohort' else c.mark})"
            cells += [c.published, rep]
        lines.append("| " + " | ".join(_md_escape(x) for x in cells) + " |")
    lines.append("")
    for fig in t.figures:
        href = (figure_href or {}).get(fig)
        if href:
            lines += [f"![{fig}]({href})", ""]
    return "\n".join(lines)
