"""Is a validation cohort big enough? The paper's reference values (its DLRC model's C-statistic,
its LNM prevalence) and, per validation cohort of a study, the patients it has against the
minimum to validate such a model (:func:`dlrc_lib.stats.samplesize.validation_sample_size`).

``dlrc samplesize`` answers before any patient is collected; ``dlrc validate`` and the report
header of a manifest-study run say it of the cohorts at hand (:func:`cohort_size_lines`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import pandas as pd
import yaml

from dlrc_lib.core.config import PACKAGE_ROOT
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.stats.samplesize import ValidationSampleSize, validation_sample_size
from dlrc_lib.study.schema import COHORT_LABELS, COHORTS, DLRC

#: The published values that come with dlrc.
PACKAGED_PUBLISHED = PACKAGE_ROOT / "params" / "published_values.yaml"
#: The cohorts a model is validated in.
VALIDATION_COHORTS = tuple(c for c in COHORTS if c != "train")
#: The model whose C-statistic the paper reports per cohort (Table 2).
PAPER_MODEL = DLRC


@dataclass(frozen=True)
class PaperReference:
    """The paper's numbers a validation sample size starts from."""

    cstatistic: dict[str, float]  # cohort -> the DLRC model's AUC (Table 2)
    lnm: int                      # LNM-positive patients, all cohorts (Table 1)
    patients: int                 # patients, all cohorts (Table 1)
    source: str                   # the published-values file

    @property
    def prevalence(self) -> float:
        return self.lnm / self.patients


def published_values_file(params=None) -> Path:
    """The parameter file's published values when it names an existing file, else dlrc's."""
    name = getattr(params, "published_values", None)
    if name and Path(name).is_file():
        return Path(name)
    return PACKAGED_PUBLISHED


def paper_reference(published_file: str | Path | None = None) -> PaperReference:
    """The DLRC AUC per cohort (``table2.<cohort>.DLRC.auc``) and the LNM counts of Table 1
    (``table1.n``: [negative, positive] per cohort) from a published-values file."""
    path = Path(published_file) if published_file is not None else PACKAGED_PUBLISHED
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        counts = data["table1"]["n"]
        neg = sum(int(counts[c][0]) for c in counts)
        pos = sum(int(counts[c][1]) for c in counts)
        aucs = {c: float(data["table2"][c][PAPER_MODEL]["auc"][0])
                for c in data.get("table2", {}) if PAPER_MODEL in (data["table2"][c] or {})}
    except (OSError, yaml.YAMLError) as exc:
        raise DlrcError(f"{path}: cannot read the published values ({exc})") from None
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise DlrcError(f"{path}: no table1.n counts or table2 {PAPER_MODEL} AUCs ({exc!r})") from None
    if "external" not in aucs or pos + neg == 0:
        raise DlrcError(f"{path}: no table2.external.{PAPER_MODEL}.auc or no patients in table1.n")
    return PaperReference(aucs, pos, pos + neg, str(path))


@lru_cache(maxsize=32)
def minimum_size(cstatistic: float, prevalence: float) -> ValidationSampleSize:
    """:func:`validation_sample_size` at the default precisions (cached: a page asks twice)."""
    return validation_sample_size(cstatistic, prevalence)


def _n(v: int) -> str:
    return f"{v:,}"


def cohort_size_lines(study: Optional[pd.DataFrame], published_file: str | Path | None = None) -> list[str]:
    """One line per validation cohort present in ``study`` (columns ``cohort`` and ``lnm``): its
    patients and LNM against the minimum to validate a model with the paper's DLRC C-statistic in
    that cohort, at the cohort's own LNM prevalence (the paper's when the cohort has a single
    class), and the criterion that sets it."""
    if study is None or not {"cohort", "lnm"} <= set(study.columns):
        return []
    ref = paper_reference(published_file)
    cohort = study["cohort"].astype(str).str.strip()
    lnm = pd.to_numeric(study["lnm"], errors="coerce")
    lines = []
    for name in VALIDATION_COHORTS:
        y = lnm[cohort == name].dropna()
        if y.empty:
            continue
        n, events = int(y.size), int((y == 1).sum())
        c = ref.cstatistic.get(name, ref.cstatistic["external"])
        c_from = (f"the paper's {PAPER_MODEL} AUC in its {COHORT_LABELS[name].lower()} cohort"
                  if name in ref.cstatistic else f"the paper's {PAPER_MODEL} AUC in external validation")
        if 0 < events < n:
            prevalence, p_from = events / n, "this cohort's"
        else:
            only = "no" if events == 0 else "only"
            prevalence, p_from = ref.prevalence, f"the paper's, as this cohort has {only} LNM"
        need = minimum_size(c, prevalence)
        verdict = "enough" if n >= need.n else f"{_n(need.n - n)} patients short"
        lines.append(f"{COHORT_LABELS[name].lower()}: {_n(n)} patients ({_n(events)} LNM); the minimum to "
                     f"validate a model with C = {c:g} ({c_from}) at {100 * prevalence:.0f} % prevalence "
                     f"({p_from}) is {_n(need.n)} patients ({_n(need.events)} events; binding: {need.binding.name}): "
                     f"{verdict}")
    return lines


def run_cohort_size_lines(run_dir: str | Path, run: dict) -> list[str]:
    """:func:`cohort_size_lines` of a run folder's analysed study (``study_manifest.csv``), with the
    run's published values (``run.json`` params) or dlrc's; nothing when the table is absent or
    unreadable (a snapshot has none)."""
    path = Path(run_dir) / "study_manifest.csv"
    if not path.is_file():
        return []
    try:
        study = pd.read_csv(path, usecols=["cohort", "lnm"], dtype={"cohort": str})
    except (ValueError, OSError, pd.errors.ParserError):
        return []
    name = (run.get("params") or {}).get("published_values")
    published = None
    for cand in ((Path(name), Path(run_dir) / name, PACKAGE_ROOT / name) if name else ()):
        if cand.is_file():
            published = cand
            break
    try:
        return cohort_size_lines(study, published)
    except DlrcError:
        return []

