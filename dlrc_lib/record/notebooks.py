"""What each notebook records: one dataclass per notebook, the schema of ``results/<notebook>.json``.

Every notebook writes its machine-readable results with ``Artifacts.results(key=...)``; the keys
it may write are the fields of its record class below (:func:`check_fields` refuses any other
key), plus the three every notebook shares: ``reproduced`` (values keyed by their dotted path in
``published_values.yaml``), ``warnings`` and ``provenance`` (how the run went: seconds, cache
hits). Each file also carries :data:`VERSION_KEY` = :data:`RECORD_VERSION`.

Version rule: a file without :data:`VERSION_KEY` was written before the record had a version; its
layout is version 1's and it is read as such. A file of another version is refused in one line
naming the file and its version (rerun the notebook). Raise :data:`RECORD_VERSION` whenever a
field changes meaning or is renamed, and teach :func:`parse_results` to read the older layout.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Optional

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.study.schema import COHORTS

RECORD_VERSION = 1
VERSION_KEY = "record_version"
COMMON_FIELDS = ("reproduced", "warnings", "provenance")

__all__ = ["RECORD_VERSION", "VERSION_KEY", "NotebookRecord", "StudyRecord", "CohortRecord", "IccRecord",
           "RadiomicsRecord", "DeepRecord", "DlrcRecord", "CalibrationRecord", "DecisionCurveRecord",
           "SraRecord", "SensitivityRecord", "RECORDS", "record_class", "check_fields", "parse_results"]

Rows = Optional[list]  # a table as a list of row dicts (DataFrame.to_dict("records"))


@dataclass
class NotebookRecord:
    """What every notebook records besides its own fields."""

    NOTEBOOK: ClassVar[str] = ""
    reproduced: dict = field(default_factory=dict)  # published-value key -> reproduced value
    warnings: list = field(default_factory=list)  # warnings that reach the report page and run.json
    provenance: dict = field(default_factory=dict)  # how the run went (differs cold / warm)
    extra: dict = field(default_factory=dict)  # keys of an older file that no field names
    recorded: frozenset = field(default=frozenset(), compare=False, repr=False)  # keys the file had

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The keys this notebook may write (its own fields and the shared ones)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "recorded"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NotebookRecord":
        names = set(cls.field_names())
        known = {k: v for k, v in data.items() if k in names and v is not None}
        extra = {k: v for k, v in data.items() if k not in names and k != VERSION_KEY}
        return cls(**known, extra=extra, recorded=frozenset(k for k in data if k in names))

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of ``results/<notebook>.json`` (fields never written left out)."""
        out: dict[str, Any] = {VERSION_KEY: RECORD_VERSION}
        for name in self.field_names():
            value = getattr(self, name)
            if name in self.recorded or (value is not None and not (name in COMMON_FIELDS and not value)):
                out[name] = value
        out.update(self.extra)
        return out

    def get(self, dotted: str, default: Any = None) -> Any:
        """The value at a dotted path of this record's JSON layout (e.g. ``optimism_corrected.B``)."""
        data: Any = self.to_dict()
        for part in str(dotted).split("."):
            if isinstance(data, Mapping) and part in data:
                data = data[part]
            else:
                return default
        return data


@dataclass
class StudyRecord(NotebookRecord):
    """00_study: the analysed study."""

    NOTEBOOK: ClassVar[str] = "00_study"
    table_s1_not_given: Optional[int] = None  # Table S1 cells the manifest did not give
    n_patients: Optional[int] = None
    n_scanners: Optional[int] = None
    patients_shown: Any = None  # the patients the image panels show


@dataclass
class CohortRecord(NotebookRecord):
    """01_cohort_table: Table 1 and Fig. 1."""

    NOTEBOOK: ClassVar[str] = "01_cohort_table"
    n_patients: Optional[int] = None
    flow: Any = None  # Fig. 1's flow (steps and counts)
    lnm_rate_p: Optional[float] = None  # LNM rate across cohorts: p-value
    lnm_rate_test: Optional[str] = None  # ... and its test
    tests: Rows = None  # Table 1's tests, one row per characteristic


@dataclass
class IccRecord(NotebookRecord):
    """02_icc: reproducibility of the radiomics features."""

    NOTEBOOK: ClassVar[str] = "02_icc"
    icc_cases: Optional[int] = None  # re-segmented patients the ICC was computed from
    icc_tested: Optional[bool] = None
    icc_skipped: Optional[str] = None  # why the ICC was not computed
    icc_subset: Optional[int] = None  # patients with a second segmentation
    n_features: Optional[int] = None
    n_kept: Optional[int] = None  # features whose ICCs both exceed the threshold
    form: Optional[str] = None  # ICC form, e.g. ICC(2,1)
    threshold: Optional[float] = None
    extraction: Rows = None  # extraction summary
    failures: Optional[int] = None  # failed extractions
    median_icc_inter: Optional[float] = None
    median_icc_intra: Optional[float] = None


@dataclass
class RadiomicsRecord(NotebookRecord):
    """03_radiomics: the radiomics score."""

    NOTEBOOK: ClassVar[str] = "03_radiomics"
    harmonisation: Rows = None  # cross-validated AUC of predicting centre / scanner
    selected: Rows = None  # selected features: feature, coef
    funnel: Rows = None  # feature-selection steps and counts
    state: Optional[dict] = None  # the fitted score pipeline (FeatureScore.to_dict)
    excluded: Rows = None  # features left out before selection
    performance: Rows = None  # per-cohort performance
    cutoff: Optional[float] = None  # training Youden cut-off


@dataclass
class DeepRecord(NotebookRecord):
    """04_deep_learning: the six DL models and the best one."""

    NOTEBOOK: ClassVar[str] = "04_deep_learning"
    deep_learning: Optional[str] = None  # "on" | "off" (deep.models: [])
    reason: Optional[str] = None  # why deep learning is off
    best_model: Optional[str] = None
    best_model_rule: Optional[str] = None
    best_model_rule_text: Optional[str] = None
    ranking: Rows = None
    states: Optional[dict] = None  # model -> fitted score pipeline (the best model's)
    weights: Optional[dict] = None  # model -> network weights (source, random_fallback, identity)
    failed_models: Optional[dict] = None
    extraction: Rows = None

    @property
    def off(self) -> bool:
        """Deep learning switched off."""
        return self.deep_learning == "off"


@dataclass
class DlrcRecord(NotebookRecord):
    """05_dlrc: the DLRC model, Tables 2 and 4."""

    NOTEBOOK: ClassVar[str] = "05_dlrc"
    best_model: Optional[str] = None  # the DL model in the DLRC model (None: deep learning off)
    cutoffs: Optional[dict] = None  # training Youden cut-off per model (radiomics, dl, dlrc)
    dlrc_terms: Optional[list] = None
    dlrc_coefficients: Optional[dict] = None
    clinical_candidates: Any = None  # the univariate screening of the clinical candidates
    lost_patients: Rows = None  # patients without a score
    model_file: Optional[str] = None  # the exported model, relative to the run folder

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DlrcRecord":
        if "dlrc_terms" not in data and data.get("terms"):  # the oldest runs' name
            data = {**{k: v for k, v in data.items() if k != "terms"}, "dlrc_terms": data["terms"]}
        return super().from_dict(data)  # type: ignore[return-value]

    def table2(self, model: str = "DLRC", metric: str = "auc") -> dict[str, Any]:
        """Cohort -> the reproduced Table 2 value of ``model`` (e.g. ``[auc, lower, upper]``)."""
        return {c: self.reproduced[k] for c in COHORTS
                if (k := f"table2.{c}.{model}.{metric}") in self.reproduced}

    @property
    def auc(self) -> dict[str, float]:
        """Cohort -> the DLRC model's AUC (Table 2)."""
        return {c: _first(v) for c, v in self.table2("DLRC", "auc").items()}

    @property
    def auc_ci(self) -> dict[str, tuple]:
        """Cohort -> the DLRC model's AUC 95 % CI (lower, upper)."""
        return {c: tuple(v[1:3]) for c, v in self.table2("DLRC", "auc").items()
                if isinstance(v, (list, tuple)) and len(v) >= 3}


@dataclass
class CalibrationRecord(NotebookRecord):
    """06_calibration: Hosmer-Lemeshow and the optimism-corrected calibration."""

    NOTEBOOK: ClassVar[str] = "06_calibration"
    hosmer_lemeshow: Rows = None
    optimism_corrected: Optional[dict] = None  # terms, coefficients, B, failed, auc_*, calibration_errors


@dataclass
class DecisionCurveRecord(NotebookRecord):
    """07_decision_curve: the decision curves."""

    NOTEBOOK: ClassVar[str] = "07_decision_curve"
    models: Optional[dict] = None  # label -> probability column
    thresholds: Optional[list] = None  # first, last, count
    dlrc_best_ranges: Rows = None  # threshold ranges where DLRC has the highest net benefit
    net_benefit_at: Rows = None


@dataclass
class SraRecord(NotebookRecord):
    """08_sra_subgroup: SRA against DLRC, Table 5, reader agreement."""

    NOTEBOOK: ClassVar[str] = "08_sra_subgroup"
    reader_agreement: Rows = None
    consensus: Rows = None
    consensus_rule: Optional[str] = None
    dlrc_cutoff: Optional[float] = None
    table2_sra: Rows = None
    table5: Rows = None
    mcnemar: Rows = None


@dataclass
class SensitivityRecord(NotebookRecord):
    """09_sensitivity: the sweep of analysis choices."""

    NOTEBOOK: ClassVar[str] = "09_sensitivity"
    variants: Optional[int] = None
    finished: Optional[int] = None
    failed: Optional[list] = None
    keys: Optional[list] = None
    base_choices: Optional[dict] = None
    main_effects: Rows = None
    auc_summary: Rows = None
    claims: Rows = None
    largest_effect: Optional[dict] = None


RECORDS: dict[str, type[NotebookRecord]] = {cls.NOTEBOOK: cls for cls in (
    StudyRecord, CohortRecord, IccRecord, RadiomicsRecord, DeepRecord, DlrcRecord, CalibrationRecord,
    DecisionCurveRecord, SraRecord, SensitivityRecord)}


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, (list, tuple)) and value else value


def record_class(notebook: str) -> type[NotebookRecord]:
    """The record class of a notebook, by its stem (``05_dlrc``) or number (``05``); a notebook
    outside the pipeline records only the shared fields (:class:`NotebookRecord`)."""
    return RECORDS.get(notebook_stem(notebook) or "", NotebookRecord)


def notebook_stem(notebook: str) -> str | None:
    """``05`` or ``05_dlrc`` -> ``05_dlrc``; None for a name no record class has."""
    name = str(notebook)
    if name in RECORDS:
        return name
    return next((stem for stem in RECORDS if stem[:2] == name), None) if len(name) == 2 else None


def check_fields(notebook: str, keys: Any) -> None:
    """Refuse, in one line, a key the pipeline notebook's record class does not have (a notebook
    outside the pipeline records what it likes)."""
    cls = RECORDS.get(str(notebook))
    unknown = sorted(set(keys) - set(cls.field_names())) if cls else []
    if unknown:
        raise DlrcError(f"results of {cls.NOTEBOOK}: {', '.join(unknown)} not a field of {cls.__name__} "
                        f"(dlrc_lib/record/notebooks.py); add the field there first")


def parse_results(notebook: str, data: Any, where: str) -> NotebookRecord:
    """The record of one results file's JSON ``data``; ``where`` names the file in errors."""
    if not isinstance(data, Mapping):
        raise DlrcError(f"{where}: not a JSON object")
    version = data.get(VERSION_KEY, RECORD_VERSION)  # no version: written before it had one, same layout
    if version != RECORD_VERSION or isinstance(version, bool):
        raise DlrcError(f"{where}: record version {version!r}, this dlrc reads version {RECORD_VERSION}; "
                        f"rerun the notebook")
    return record_class(notebook).from_dict(data)
