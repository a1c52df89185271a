"""``dlrc snapshot reports/<run> DIR``: a small, readable copy of a finished run to commit.

The snapshot holds what a reader needs without running anything: the verdict
(``claims.csv``), the provenance (``run.json``), every table (CSV and Markdown) and figure
(PNG) the run's page lists, a ``README.md`` that shows the claims and the paper's tables
beside the run's (GitHub renders it), an ``index.html`` of the same, and ``snapshot.json``
(what was copied, its sizes and SHA-256, and what was left out and why).

No patient-level data: executed notebooks, saved frames, results JSON and the study table
stay behind; tables with a patient identifier column and figures of individual patients'
images are left out (listed in ``snapshot.json``), and every copied text file is checked
for the run's patient identifiers before the snapshot replaces ``DIR``. The snapshot is
refused if it would exceed ``max_mb`` (15 MB).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.io import atomic_write_text, dumps
from dlrc_lib.reporting import claims as C
from dlrc_lib.reporting.index_page import PATIENT_FIGURES, patient_level_tables, render_index, verdict_summary
from dlrc_lib.reporting.paper_tables import paper_tables, to_markdown

MAX_MB = 15.0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _patient_ids(run_dir: Path, run: dict) -> set[str]:
    for cand in (run_dir / "study_manifest.csv", Path(str(run.get("analysed_manifest") or "")),
                 Path(str(run.get("study_manifest") or ""))):
        if cand.is_file():
            try:
                ids = pd.read_csv(cand, usecols=["patient_id"], dtype=str)["patient_id"].dropna()
            except (ValueError, pd.errors.EmptyDataError):
                continue
            return {i for i in ids if len(i) >= 3}
    return set()


def _md_cell(v: object) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def claims_markdown(claims: pd.DataFrame) -> str:
    lines = ["| claim | paper | this run | verdict | why |", "|---|---|---|---|---|"]
    group = None
    for r in claims.itertuples(index=False):
        if r.group != group:
            group = r.group
            lines.append(f"| **{_md_cell(group)}** | | | | |")
        lines.append(f"| {_md_cell(r.claim)} | {_md_cell(r.published)} | {_md_cell(r.reproduced)} | "
                     f"**{_md_cell(r.verdict)}** | {_md_cell(r.reason)} |")
    return "\n".join(lines)


def readme(claims: pd.DataFrame, view: C.RunView, tables: list[str], md_tables: list[str],
           figures: list[str], left_out: dict[str, str]) -> str:
    run = view.run
    params = run.get("params") or {}
    study = params.get("study") or {}
    lines = [f"# Reference run: {run.get('run_name', '')}", "",
             f"A snapshot of `reports/{run.get('run_name', '')}/` made by `dlrc snapshot`: run of commit "
             f"`{run.get('git_commit')}`{' (with uncommitted changes)' if run.get('git_dirty') else ''}, "
             f"finished {run.get('finished', '?')}, status **{run.get('status', '?')}**, "
             f"wall time {run.get('wall_seconds', '?')} s, parameters `{run.get('params_file', '')}`.",
             ""]
    if view.own_cohort:
        lines += ["The study is a **new cohort** (`study.role: new_cohort`): the paper's findings are tested on it; "
                  "its cohort sizes and Table 1 are shown beside the paper's, not graded.", ""]
    if view.twin:
        lines += [f"The study is the **synthetic twin** (scale {study.get('scale', 1)}): simulated patients "
                  "matched to the paper's published tables, not the paper's patients.", ""]
    warnings = [f"- **{nb}**: {m}" for nb, msgs in (run.get("warnings") or {}).items() for m in msgs]
    if warnings:
        lines += ["## Warnings", "", *warnings, ""]
    outcomes = [f"- **{v}**: {text}" for v, text in C.OUTCOMES.items()]
    lines += ["## Verdict", "", verdict_summary(claims), "", *outcomes, "", claims_markdown(claims), "",
              "## The paper's tables beside this run", "",
              "Each column: the paper's value, then this run's; **bold ⚠**: AUC outside the paper's 95 % CI "
              "or p on the other side of 0.05; _(input)_: "
              + ("a number the twin was built from." if view.twin else
                 "a number describing this study's own cohort (shown, not graded)." if view.own_cohort else
                 "not used on this study."), ""]
    fig_href = {f: f"figures/{f}.png" for f in figures}
    for t in paper_tables(view):
        lines.append(to_markdown(t, fig_href))
    lines += ["## All tables", ""]
    lines += [f"- {t}: [csv](tables/{t}.csv)" + (f" · [md](tables/{t}.md)" if t in md_tables else "") for t in tables]
    lines += ["", "## All figures", ""] + [f"- [{f}](figures/{f}.png)" for f in figures]
    if left_out:
        lines += ["", "## Left out (patient-level)", ""] + [f"- {k}: {v}" for k, v in left_out.items()]
    return "\n".join(lines) + "\n"


def _check_folders(run_dir: Path, out_dir: Path) -> None:
    """Refuse a run folder that is not finished, and a target inside it or that is not a snapshot."""
    if not (run_dir / "run.json").is_file() or not (run_dir / "tables").is_dir():
        raise DlrcError(f"{run_dir}: not a finished run folder (no run.json or tables/); run dlrc run first")
    if out_dir.resolve() == run_dir.resolve() or run_dir.resolve() in out_dir.resolve().parents:
        raise DlrcError(f"{out_dir}: the snapshot cannot go inside the run folder {run_dir}")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "snapshot.json").is_file():
        raise DlrcError(f"{out_dir}: exists and is not a snapshot (no snapshot.json); choose an empty folder")


def _claims(run_dir: Path) -> pd.DataFrame:
    """The run's ``claims.csv`` (evaluated now when the run has none), ``counted`` as booleans."""
    claims_csv = run_dir / "claims.csv"
    claims = (pd.read_csv(claims_csv, keep_default_na=False, dtype=str) if claims_csv.is_file()
              else C.evaluate_claims(run_dir))
    claims["counted"] = claims["counted"].astype(str).str.lower().isin(["true", "1"])
    return claims


def _patient_level(run_dir: Path) -> dict[str, str]:
    """The tables and figures left out as patient-level, with the reason."""
    left_out: dict[str, str] = {}
    for t in patient_level_tables(run_dir):
        left_out[f"tables/{t}"] = "patient-level: has a patient identifier column"
    for f in PATIENT_FIGURES:
        if (run_dir / "figures" / f"{f}.png").is_file():
            left_out[f"figures/{f}"] = "patient-level: shows individual patients' images"
    return left_out


def _copy_files(run_dir: Path, tmp: Path, tables: list[str], figures: list[str]) -> list[str]:
    """Copy ``run.json``, the tables (CSV, and Markdown where there is one), the figures (PNG) and the
    checklist into ``tmp``; return the tables copied with their Markdown."""
    (tmp / "tables").mkdir()
    (tmp / "figures").mkdir()
    shutil.copyfile(run_dir / "run.json", tmp / "run.json")
    md_tables = []
    for t in tables:
        shutil.copyfile(run_dir / "tables" / f"{t}.csv", tmp / "tables" / f"{t}.csv")
        if (run_dir / "tables" / f"{t}.md").is_file():
            shutil.copyfile(run_dir / "tables" / f"{t}.md", tmp / "tables" / f"{t}.md")
            md_tables.append(t)
    for f in figures:
        shutil.copyfile(run_dir / "figures" / f"{f}.png", tmp / "figures" / f"{f}.png")
    for name in ("checklist.html", "checklist.csv"):  # the reporting checklist, when the run has one
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, tmp / name)
    return md_tables


def _refuse_patient_ids(tmp: Path, ids: set[str]) -> None:
    """Raise when a copied text file names one of the run's patients."""
    if not ids:
        return
    pattern = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True))
                         + r")(?![A-Za-z0-9])")
    for path in sorted(tmp.rglob("*")):
        if path.is_file() and path.suffix in (".csv", ".md", ".json", ".html"):
            m = pattern.search(path.read_text(errors="replace"))
            if m:
                raise DlrcError(f"snapshot: {path.relative_to(tmp)} names patient {m.group(1)}; "
                                f"a snapshot must hold no patient-level data")


def _replace_folder(tmp: Path, out_dir: Path) -> None:
    """Put the finished ``tmp`` in place of ``out_dir`` (the old snapshot removed after the swap)."""
    os.chmod(tmp, 0o755)
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _snapshot_page(run_dir: Path, claims: pd.DataFrame, view: C.RunView, excluded: set[str], tables: list[str]) -> str:
    """The run's page with the snapshot's links: no notebooks, no patient-level files, no HTML tables or PDFs."""
    page = render_index(run_dir, claims, view, notebooks=False, exclude=excluded,
                        comparison=pd.DataFrame() if "paper_vs_reproduction" in tables else None)
    return re.sub(r" · <a href='tables/[^']+\.html'>html</a>", "", page)


def make_snapshot(run_dir: str | Path, out_dir: str | Path, max_mb: float = MAX_MB) -> Path:
    """Write the snapshot of ``run_dir`` into ``out_dir`` (replaced as a whole); return it."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir)
    _check_folders(run_dir, out_dir)
    view = C.run_view(run_dir)
    claims = _claims(run_dir)
    left_out = _patient_level(run_dir)
    excluded = {k.split("/", 1)[1] for k in left_out}
    tables = [p.stem for p in sorted((run_dir / "tables").glob("*.csv")) if p.stem not in excluded]
    figures = [p.stem for p in sorted((run_dir / "figures").glob("*.png")) if p.stem not in excluded]

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp"))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the committed folder from others
    try:
        md_tables = _copy_files(run_dir, tmp, tables, figures)
        atomic_write_text(tmp / "claims.csv", claims.to_csv(index=False, lineterminator="\n"))
        atomic_write_text(tmp / "index.html", _snapshot_page(run_dir, claims, view, excluded, tables))
        atomic_write_text(tmp / "README.md", readme(claims, view, tables, md_tables, figures, left_out))
        _refuse_patient_ids(tmp, _patient_ids(run_dir, view.run))
        files = {str(p.relative_to(tmp)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
                 for p in sorted(tmp.rglob("*")) if p.is_file()}
        total = sum(v["bytes"] for v in files.values())
        if total > max_mb * 1e6:
            raise DlrcError(f"snapshot of {run_dir}: {total / 1e6:.1f} MB exceeds the limit of {max_mb:g} MB")
        meta = {"source_run": str(run_dir), "run_name": view.run.get("run_name"),
                "git_commit": view.run.get("git_commit"), "git_dirty": view.run.get("git_dirty"),
                "run_finished": view.run.get("finished"),
                "snapshot_made": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "verdicts": C.summary(claims), "total_bytes": total, "files": files, "left_out": left_out}
        atomic_write_text(tmp / "snapshot.json", dumps(meta))
        _replace_folder(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
