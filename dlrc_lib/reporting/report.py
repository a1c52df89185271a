"""The run's ``index.html``: links to every notebook, table and figure, and the
paper-vs-reproduction table built from the notebooks' ``reproduced`` results."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dlrc_lib.core.config import Params
from dlrc_lib.core.io import atomic_write_text

# Sections of published_values.yaml that hold the paper's reported numbers.
COMPARED_SECTIONS = ("table1", "table2", "table3", "table4", "table5", "calibration_hosmer_lemeshow_p")


def flatten_published(values: dict, prefix: str = "") -> dict[str, Any]:
    """Dotted path -> leaf (a number, a string such as "<0.001", None, or a list of numbers)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_published(value, path + "."))
        else:
            out[path] = value
    return out


def load_published(path: str | Path) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text())
    flat = flatten_published({k: data[k] for k in COMPARED_SECTIONS if k in data})
    return flat


def collect_reproduced(run_dir: Path) -> dict[str, Any]:
    reproduced: dict[str, Any] = {}
    for path in sorted((run_dir / "results").glob("*.json")):
        reproduced.update(json.loads(path.read_text()).get("reproduced", {}))
    return reproduced


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v.strip().startswith("<"):
        try:
            return float(v.strip()[1:])
        except ValueError:
            return None
    return None


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def _difference(pub: Any, rep: Any) -> Any:
    if isinstance(pub, list) and isinstance(rep, list) and len(pub) == len(rep):
        diffs = [_difference(p, r) for p, r in zip(pub, rep)]
        return diffs
    p, r = _as_number(pub), _as_number(rep)
    if p is None or r is None:
        return None
    if isinstance(pub, str) and pub.strip().startswith("<"):
        return 0.0 if r < p else r - p
    return round(r - p, 4)


def compare_with_paper(published: dict[str, Any], reproduced: dict[str, Any]) -> pd.DataFrame:
    """One row per published number: published, reproduced (or "not produced"), difference,
    and for AUCs whether the reproduced estimate lies inside the paper's 95 % CI."""
    rows = []
    for key, pub in published.items():
        rep = reproduced.get(key)
        produced = key in reproduced
        in_ci = None
        if key.endswith(".auc") and isinstance(pub, list) and len(pub) == 3 and produced:
            est = rep[0] if isinstance(rep, list) else _as_number(rep)
            in_ci = bool(est is not None and pub[1] <= est <= pub[2])
        rows.append({
            "quantity": key,
            "published": _fmt(pub),
            "reproduced": _fmt(rep) if produced else "not produced",
            "difference": _fmt(_difference(pub, rep)) if produced else "",
            "auc_in_paper_ci": "" if in_ci is None else ("yes" if in_ci else "no"),
        })
    return pd.DataFrame(rows)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
h1{margin-bottom:.2rem} .meta{color:#666} table{border-collapse:collapse;font-size:.85rem}
td,th{border-bottom:1px solid #ddd;padding:.2rem .5rem;text-align:left} th{background:#f3f3f3}
figure{display:inline-block;margin:.5rem;max-width:560px;vertical-align:top} figure img{max-width:100%}
figcaption{font-size:.8rem;color:#555} .warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.5rem 1rem}
.fail{background:#fde8e8;border-left:4px solid #d33;padding:.5rem 1rem;white-space:pre-wrap;font-family:monospace}
tr.no td{background:#fff0f0} tr.np td{color:#999}
"""


def write_index(run_dir: str | Path, params: Params) -> Path:
    run_dir = Path(run_dir)
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>dlrc report: {e(params.run_name)}</title>"
             f"<style>{_CSS}</style></head><body>"]
    parts.append(f"<h1>dlrc report — {e(params.run_name)}</h1>")
    study = "synthetic twin study (simulated patients matched to the paper's published tables)" \
        if params.study.source == "twin" else f"study manifest {e(str(params.study.manifest))}"
    parts.append(f"<p class='meta'>{study}; status <b>{e(str(run.get('status', '?')))}</b>; "
                 f"commit {e(str(run.get('git_commit')))}; wall time {run.get('wall_seconds', '?')} s; "
                 f"<a href='run.json'>run.json</a></p>")
    if run.get("failure"):
        parts.append(f"<div class='fail'>{e(run['failure'])}</div>")
    for nb, msgs in (run.get("warnings") or {}).items():
        for msg in msgs:
            parts.append(f"<div class='warn'><b>{e(nb)}</b>: {e(msg)}</div>")

    parts.append("<h2>Notebooks</h2><ul>")
    for nb in sorted((run_dir / "html").glob("*.html")):
        t = run.get("notebooks", {}).get(nb.stem, {})
        parts.append(f"<li><a href='html/{e(nb.name)}'>{e(nb.stem)}</a> "
                     f"<span class='meta'>{t.get('seconds', '')} s</span></li>")
    parts.append("</ul>")

    parts.append("<h2>Paper vs reproduction</h2>")
    published = load_published(params.published_values)
    table = compare_with_paper(published, collect_reproduced(run_dir))
    n_prod = int((table["reproduced"] != "not produced").sum())
    aucs = table[table["auc_in_paper_ci"] != ""]
    parts.append(f"<p>{n_prod} of {len(table)} published numbers reproduced by this run; "
                 f"{int((aucs['auc_in_paper_ci'] == 'yes').sum())} of {len(aucs)} reproduced AUCs lie inside "
                 f"the paper's 95 % CI. Counts are [LNM−, LNM+]; AUC as [estimate, lower, upper]; "
                 f"rates in percent.</p>")
    atomic_write_text(run_dir / "tables" / "paper_vs_reproduction.csv", table.to_csv(index=False))
    parts.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in table.columns) + "</tr>")
    for row in table.itertuples(index=False):
        cls = "no" if row.auc_in_paper_ci == "no" else ("np" if row.reproduced == "not produced" else "")
        parts.append(f"<tr class='{cls}'>" + "".join(f"<td>{e(str(v))}</td>" for v in row) + "</tr>")
    parts.append("</table>")

    parts.append("<h2>Tables</h2><ul>")
    for csv in sorted((run_dir / "tables").glob("*.csv")):
        links = " · ".join(f"<a href='tables/{e(csv.stem)}.{ext}'>{ext}</a>"
                           for ext in ("csv", "md", "html") if (csv.with_suffix(f".{ext}")).exists())
        parts.append(f"<li>{e(csv.stem)}: {links}</li>")
    parts.append("</ul><h2>Figures</h2>")
    for png in sorted((run_dir / "figures").glob("*.png")):
        pdf = png.with_suffix(".pdf")
        pdf_link = f" (<a href='figures/{e(pdf.name)}'>pdf</a>)" if pdf.exists() else ""
        parts.append(f"<figure><a href='figures/{e(png.name)}'><img src='figures/{e(png.name)}' "
                     f"alt='{e(png.stem)}'></a><figcaption>{e(png.stem)}{pdf_link}</figcaption></figure>")
    parts.append("</body></html>\n")
    target = run_dir / "index.html"
    atomic_write_text(target, "\n".join(parts))
    return target
