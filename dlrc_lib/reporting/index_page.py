"""The run's ``index.html``: the verdict first, then the paper's tables beside this run's.

Order: warnings (random network weights, non-converged fits, a failed notebook), the claims
table (coloured by verdict), the paper's Tables 1-5 and the calibration / decision-curve
results laid out as in the paper (published | reproduced, out-of-CI cells marked) each with
its figure, the notebooks, and every table and figure of the run. The long
paper-vs-reproduction list is written as ``tables/paper_vs_reproduction.csv``.
Every text that reaches the page is escaped.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Iterable

import pandas as pd

from dlrc_lib.core.io import atomic_write_text
from dlrc_lib.reporting import claims as C
from dlrc_lib.reporting.paper_tables import paper_tables, to_html
from dlrc_lib.reporting.report import compare_with_paper, load_discrepancies, load_published
from dlrc_lib.study.cohort_size import run_cohort_size_lines

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem auto;max-width:1500px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:2px solid #ddd} .meta{color:#666}
table{border-collapse:collapse;font-size:.82rem} td,th{border-bottom:1px solid #e4e4e4;padding:.2rem .45rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.demo{background:#e8f0fe;border:2px solid #3b6fd8;padding:.6rem 1rem;margin:.4rem 0 .8rem;font-size:1.05rem}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.45rem 1rem;margin:.3rem 0}
.fail{background:#fde8e8;border-left:4px solid #d33;padding:.5rem 1rem;white-space:pre-wrap;font-family:monospace}
.summary span{display:inline-block;padding:.15rem .6rem;margin-right:.4rem;border-radius:3px;font-weight:600}
table.claims td.v{font-weight:600;white-space:nowrap} table.claims tr.g td{background:#eef1f5;font-weight:600;padding-top:.5rem}
.v-holds{background:#e3f5e1} .v-fails{background:#fbe0e0} .v-small{background:#fff3c4;color:#5a4a00} .v-not{background:#eeeeee;color:#555}
ul.outcomes{font-size:.82rem;color:#444;margin:.2rem 0 .6rem} ul.outcomes b{display:inline-block;min-width:8.5rem}
.v-input{background:#e6eefb;color:#344} .v-calibrated{background:#f6efd9;color:#554}
table.claims td.reason{color:#555;font-size:.76rem;max-width:460px} table.claims details ul{margin:.2rem 0;font-size:.78rem}
section.paper{margin:1.2rem 0} .pair{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
.ptable{overflow-x:auto;max-width:100%} table.side{font-size:.74rem} table.side td,table.side th{text-align:center;white-space:nowrap;padding:.15rem .35rem}
table.side td.lab{text-align:left} table.side.t-table1{font-size:.64rem} table.side.t-table1 td,table.side.t-table1 th{padding:.1rem .2rem} table.side tr.head td{background:#f6f6f6;font-weight:600}
table.side th.sub{font-weight:400;color:#666;font-size:.7rem} table.side td.pub{color:#555;border-left:1px solid #e4e4e4}
table.side td.rep.out{background:#fbe0e0;font-weight:700;color:#a40000} table.side td.input,table.side td.cohort{color:#8a96a8;font-style:italic} table.side td.calibrated{color:#9a8a50;font-style:italic}
figure{display:inline-block;margin:.3rem;max-width:560px;vertical-align:top} figure img{max-width:100%}
figure.side{max-width:640px;flex:1 1 420px} figcaption{font-size:.78rem;color:#555}
ul.cols{columns:3;font-size:.85rem}
"""

_VERDICT_CLASS = {C.HOLDS: "v-holds", C.FAILS: "v-fails", C.TOO_SMALL: "v-small", C.NOT_TESTABLE: "v-not", C.INPUT: "v-input",
                  C.CALIBRATED: "v-calibrated", C.COHORT: "v-input"}

# Figures that show individual patients' images: kept out of snapshots (dlrc snapshot).
PATIENT_FIGURES = ("figS1_segmentations", "fig_dl_inputs")
PATIENT_COLUMNS = ("patient_id", "patient")  # identifier columns ("patients" is a count)


def patient_level_tables(run_dir: Path) -> list[str]:
    """Tables of the run with a patient identifier column (kept out of snapshots)."""
    out = []
    for csv in sorted((run_dir / "tables").glob("*.csv")):
        try:
            cols = pd.read_csv(csv, nrows=0).columns
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
        if any(str(c).strip().lower() in PATIENT_COLUMNS for c in cols):
            out.append(csv.stem)
    return out


def verdict_summary(claims: pd.DataFrame) -> str:
    s = C.summary(claims)
    tested = s[C.HOLDS] + s[C.FAILS]
    head = (f"Of {len(claims)} claims, {tested} can be decided on this run: {s[C.HOLDS]} hold and "
            f"{s[C.FAILS]} fail; " + (f"{s[C.TOO_SMALL]} are too small to tell with this cohort; " if s[C.TOO_SMALL] else "")
            + f"{s[C.NOT_TESTABLE]} are not testable here")
    parts = []
    if s[C.INPUT] or s[C.CALIBRATED]:
        parts.append(f"{s[C.INPUT]} are inputs of the synthetic twin and {s[C.CALIBRATED]} calibrated towards the "
                     "paper (neither counted as reproduced)")
    if s[C.COHORT]:
        parts.append(f"{s[C.COHORT]} describe this study's own cohort (shown beside the paper's, not graded)")
    return head + ("; " + "; ".join(parts) if parts else "") + "."


def _shown_verdicts(s: dict[str, int]) -> list[str]:
    """The verdict badges of the summary line: the twin's roles on a twin run, the own-cohort one on
    a new cohort (a badge for a role the run cannot have would only confuse)."""
    return [v for v in C.VERDICTS if s[v] or v in (C.HOLDS, C.FAILS, C.TOO_SMALL, C.NOT_TESTABLE)]


def outcomes_html() -> str:
    """The three outcomes of a testable claim, one line each."""
    e = html.escape
    return "<ul class='outcomes'>" + "".join(
        f"<li><b class='{_VERDICT_CLASS[v]}'>{e(v)}</b> {e(text)}</li>" for v, text in C.OUTCOMES.items()) + "</ul>"


def claims_html(claims: pd.DataFrame) -> str:
    e = html.escape
    s = C.summary(claims)
    parts = ["<p class='summary'>" + "".join(
        f"<span class='{_VERDICT_CLASS[v]}'>{e(v)}: {s[v]}</span>" for v in _shown_verdicts(s)) + "</p>",
        f"<p>{e(verdict_summary(claims))} <a href='claims.csv'>claims.csv</a></p>", outcomes_html(),
        "<table class='claims'><tr><th>claim</th><th>source</th><th>paper</th><th>this run</th>"
        "<th>verdict</th><th>why</th></tr>"]
    for group, rows in claims.groupby("group", sort=False):
        parts.append(f"<tr class='g'><td colspan='6'>{e(str(group))}</td></tr>")
        # claims of a group not testable for one and the same reason: one folded row
        untestable = rows[rows["verdict"] == C.NOT_TESTABLE]
        counts = untestable["reason"].value_counts()
        fold = set(counts[counts >= 3].index)
        shown: set[str] = set()
        for r in rows.itertuples(index=False):
            if r.verdict == C.NOT_TESTABLE and r.reason in fold:
                if r.reason in shown:
                    continue
                shown.add(r.reason)
                sub = untestable[untestable["reason"] == r.reason]
                items = "".join(f"<li id='{e(str(x.id))}'>{e(str(x.claim))} <span class='meta'>(paper: "
                                f"{e(str(x.published))}; here: {e(str(x.reproduced))})</span></li>"
                                for x in sub.itertuples(index=False))
                parts.append(f"<tr><td colspan='4'><details><summary>{len(sub)} claims: "
                             f"{e(str(r.claim))} …</summary><ul>{items}</ul></details></td>"
                             f"<td class='v v-not'>{e(C.NOT_TESTABLE)}</td><td class='reason'>{e(str(r.reason))}</td></tr>")
                continue
            cls = _VERDICT_CLASS.get(r.verdict, "")
            parts.append(f"<tr id='{e(str(r.id))}'><td>{e(str(r.claim))}</td><td>{e(str(r.source))}</td>"
                         f"<td>{e(str(r.published))}</td><td>{e(str(r.reproduced))}</td>"
                         f"<td class='v {cls}'>{e(str(r.verdict))}</td><td class='reason'>{e(str(r.reason))}</td></tr>")
    parts.append("</table>")
    return "\n".join(parts)


def write_comparison_csv(run_dir: Path, view: C.RunView, published_file: Path) -> pd.DataFrame:
    """The long paper-vs-reproduction list (``tables/paper_vs_reproduction.csv``), inputs marked; the
    paper's own inconsistencies (its notes, e.g. Table 4's p printed twice) only on a twin run."""
    published = load_published(published_file)
    table = compare_with_paper(published, view.reproduced, roles=C.published_roles(view, published),
                               discrepancies=load_discrepancies(published_file) if view.twin else None)
    atomic_write_text(run_dir / "tables" / "paper_vs_reproduction.csv", table.to_csv(index=False))
    return table


def _run_header(run_dir: Path, view: C.RunView) -> list[str]:
    """The lines under the title: the demo banner, what the study is, the run's status and machine,
    the checklist link, a failure and the warnings."""
    e = html.escape
    run = view.run
    study = (run.get("params") or {}).get("study") or {}
    parts = []
    if run.get("demo"):
        parts.append(f"<div class='demo'><b>{e(str(run['demo'])[0].upper() + str(run['demo'])[1:])}</b></div>")
    if view.twin:
        what = "synthetic twin study (simulated patients matched to the paper's published tables)"
    elif view.own_cohort:
        what = (f"your study (manifest {study.get('manifest')}), a new cohort: the paper's findings are tested on it; "
                "its cohort sizes and Table 1 are shown beside the paper's, not graded")
    else:
        what = (f"the paper's own patients re-analysed (manifest {study.get('manifest')}, study.role: same_patients): "
                "cohort sizes and Table 1 are graded too")
    parts.append(f"<p class='meta'>{e(what)}; status <b>{e(str(run.get('status', '?')))}</b>; "
                 f"commit {e(str(run.get('git_commit')))}{' (uncommitted changes)' if run.get('git_dirty') else ''}; "
                 f"finished {e(str(run.get('finished', '?')))}; wall time {e(str(run.get('wall_seconds', '?')))} s; "
                 f"<a href='run.json'>run.json</a></p>")
    parts += _machine_line(run)
    if (run_dir / "checklist.html").exists():
        parts.append("<p><a href='checklist.html'>Reporting checklist</a> (CLEAR, METRICS, RQS) filled from this run</p>")
    if run.get("failure"):
        parts.append(f"<div class='fail'>{e(str(run['failure']))}</div>")
    for nb, msgs in (run.get("warnings") or {}).items():
        for msg in msgs:
            parts.append(f"<div class='warn'><b>{e(str(nb))}</b>: {e(str(msg))}</div>")
    return parts


def _machine_line(run: dict) -> list[str]:
    """The machine the run had and the notebooks' CPU time (nothing when ``run.json`` records no machine)."""
    e = html.escape
    m = run.get("machine") or {}
    if not m:
        return []
    cpu = sum(float((t or {}).get("cpu_seconds", 0) or 0) for t in (run.get("notebooks") or {}).values()
              if isinstance(t, dict))
    return [f"<p class='meta'>machine: {e(str(m.get('cpu_model')))}, {e(str(m.get('cores_available')))} "
            f"core(s), vector instructions {e(str(m.get('vector_isa')))}; torch CPU capability "
            f"{e(str(m.get('torch_cpu_capability')))} with {e(str(m.get('torch_threads')))} thread(s); "
            f"load average at the start {e(str((m.get('at_start') or {}).get('load_average')))}; "
            f"notebooks' CPU time {cpu:.0f} s</p>"]


def _inconsistencies(comparison: pd.DataFrame | None) -> list[str]:
    """A warning for each published number the paper itself contradicts (a ``note`` of the comparison)."""
    e = html.escape
    if comparison is None or "note" not in comparison:
        return []
    return [f"<div class='warn'><b>The paper is inconsistent</b> about {e(str(r.quantity))}: "
            f"{e(str(r.published))}. {e(str(r.note))}</div>"
            for r in comparison[comparison["note"].astype(str) != ""].itertuples()]


def _paper_tables_intro(view: C.RunView, comparison: pd.DataFrame | None) -> list[str]:
    """The heading of the paper's tables and how to read their cells, with what was compared."""
    grey = ("a number the synthetic twin was built from (input) or tuned towards (calibrated): not a reproduction"
            if view.twin else "a number describing this study's own cohort: shown beside the paper's, not graded"
            if view.own_cohort else "")
    parts = ["<h2>The paper's tables beside this run</h2>",
             "<p class='meta'>Each cell: the paper's value, then this run's. <span class='v-fails'>Red</span>: "
             "AUC outside the paper's 95 % CI, or p on the other side of 0.05. "
             + (f"<i>Grey italics</i>: {grey}. " if grey else "") + "Percentages of each column; "
             "counts [LNM−, LNM+]."]
    if comparison is not None:
        parts.append(" The complete list of compared numbers: "
                     "<a href='tables/paper_vs_reproduction.csv'>paper_vs_reproduction.csv</a>.")
        if {"counted", "role", "auc_in_paper_ci"} <= set(comparison.columns):
            parts.append(html.escape(_compared_text(view, comparison)))
    parts.append("</p>")
    return parts


def _compared_text(view: C.RunView, comparison: pd.DataFrame) -> str:
    """How many published numbers were compared with the run, set aside, and inside the paper's CI."""
    counted = comparison[comparison["counted"].astype(bool)]
    roles = comparison["role"].value_counts()
    aucs = counted[counted["auc_in_paper_ci"] != ""]
    if view.twin:
        aside = (f"{int(roles.get(C.INPUT, 0))} are inputs of the twin and {int(roles.get(C.CALIBRATED, 0))} "
                 "calibrated (not counted)")
    elif view.own_cohort:
        aside = f"{int(roles.get(C.COHORT, 0))} describe the paper's cohort (shown, not counted)"
    else:
        aside = "none is set aside"
    return (f" Of {len(comparison)} published numbers, {aside}; {len(counted)} others were "
            f"compared with this run, among them {int((aucs['auc_in_paper_ci'] == 'yes').sum())} "
            f"of {len(aucs)} AUCs inside the paper's 95 % CI.")


def _notebook_links(run_dir: Path, run: dict) -> list[str]:
    """The executed notebooks (HTML) with their run times."""
    e = html.escape
    parts = ["<h2>Notebooks</h2><ul>"]
    for nb in sorted((run_dir / "html").glob("*.html")):
        t = (run.get("notebooks") or {}).get(nb.stem, {})
        parts.append(f"<li><a href='html/{e(nb.name)}'>{e(nb.stem)}</a> "
                     f"<span class='meta'>{e(str(t.get('seconds', '')))} s</span></li>")
    parts.append("</ul>")
    return parts


def _table_items(run_dir: Path, exclude: set[str]) -> list[str]:
    """A list item for each table of the run, with links to its CSV, Markdown and HTML files."""
    e = html.escape
    parts = []
    for csv in sorted((run_dir / "tables").glob("*.csv")):
        if csv.stem in exclude:
            continue
        links = " · ".join(f"<a href='tables/{e(csv.stem)}.{ext}'>{ext}</a>"
                           for ext in ("csv", "md", "html") if csv.with_suffix(f".{ext}").exists())
        parts.append(f"<li class='table' data-name='{e(csv.stem)}'>{e(csv.stem)}: {links}</li>")
    return parts


def _figure_items(run_dir: Path, figures: dict[str, str], pdf_links: bool) -> list[str]:
    """A figure element for each figure of the run (and a link to its PDF when ``pdf_links``)."""
    e = html.escape
    parts = []
    for stem, href in figures.items():
        pdf = run_dir / "figures" / f"{stem}.pdf"
        pdf_link = f" (<a href='figures/{e(pdf.name)}'>pdf</a>)" if pdf_links and pdf.exists() else ""
        parts.append(f"<figure class='figure' data-name='{e(stem)}'><a href='{e(href)}'><img src='{e(href)}' "
                     f"alt='{e(stem)}'></a><figcaption>{e(stem)}{pdf_link}</figcaption></figure>")
    return parts


def render_index(run_dir: str | Path, claims: pd.DataFrame, view: C.RunView, *, run_name: str | None = None,
                 notebooks: bool = True, exclude: Iterable[str] = (), comparison: pd.DataFrame | None = None) -> str:
    """The page's HTML. ``notebooks=False`` and ``exclude`` (table/figure stems) serve snapshots:
    no notebooks, no PDF links, the excluded tables and figures left out."""
    run_dir = Path(run_dir)
    exclude = set(exclude)
    e = html.escape
    name = run_name or str(view.run.get("run_name") or run_dir.name)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>dlrc report: {e(name)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>dlrc report — {e(name)}</h1>"]
    parts += _run_header(run_dir, view)
    if not view.twin:  # a study's own cohorts: big enough to validate the model?
        parts += [f"<p class='meta cohort-size'>cohort size: {e(line)}</p>"
                  for line in run_cohort_size_lines(run_dir, view.run)]
    parts += _inconsistencies(comparison)
    parts += ["<h2>Verdict: the paper's claims on this run</h2>", claims_html(claims)]
    figures = {p.stem: f"figures/{p.name}" for p in sorted((run_dir / "figures").glob("*.png")) if p.stem not in exclude}
    parts += _paper_tables_intro(view, comparison)
    parts += [to_html(t, figures) for t in paper_tables(view)]
    if notebooks:
        parts += _notebook_links(run_dir, view.run)
    parts += ["<h2>All tables</h2><ul class='cols'>", *_table_items(run_dir, exclude), "</ul><h2>All figures</h2>",
              *_figure_items(run_dir, figures, pdf_links=notebooks)]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_index(run_dir: str | Path, params=None) -> Path:
    """Evaluate the claims (``claims.csv``), write the long comparison CSV and ``index.html``."""
    run_dir = Path(run_dir)
    published_file = Path(params.published_values) if params is not None else None
    view = C.run_view(run_dir, published_file=published_file)
    pub_path = C._published_file(view.run, run_dir, published_file)
    claims = C.evaluate_claims(run_dir, published_file=pub_path)
    C.write_claims(run_dir, claims)
    comparison = write_comparison_csv(run_dir, view, pub_path)
    page = render_index(run_dir, claims, view, run_name=getattr(params, "run_name", None), comparison=comparison)
    target = run_dir / "index.html"
    atomic_write_text(target, page)
    return target
