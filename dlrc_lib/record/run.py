"""A finished run folder read as one typed object: ``run.json`` and every notebook's record.

>>> from dlrc_lib.record import RunRecord
>>> r = RunRecord.load("reports/quick")
>>> r.dlrc.auc["external"]                 # the DLRC model's external AUC (Table 2)
>>> r.run.status, r.run.git_commit, r.run.param("deep.models")
>>> r.reproduced["table1.n.train"]         # every notebook's reproduced values, merged

A notebook that did not run (the run stopped early, or ``dlrc run --only``) has no record:
its attribute is None.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.record.notebooks import (
    CalibrationRecord, CohortRecord, DecisionCurveRecord, DeepRecord, DlrcRecord, IccRecord,
    NotebookRecord, RadiomicsRecord, SensitivityRecord, SraRecord, StudyRecord, notebook_stem, parse_results,
)

RUN_FILE = "run.json"
RESULTS_DIR = "results"

__all__ = ["RunInfo", "RunRecord", "NotRecorded", "read_run_info", "read_notebook_record", "results_path"]


class NotRecorded(LookupError):
    """A value the run did not record (its notebook did not run, or did not write it)."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DlrcError(f"{path}: not valid JSON ({exc})") from None


@dataclass
class RunInfo:
    """``run.json``: what ran, with which parameters and code, and how it ended."""

    data: dict = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    @property
    def params(self) -> dict:
        """The parameters as recorded (nested sections, e.g. ``params["deep"]["models"]``)."""
        return self.data.get("params") or {}

    def param(self, dotted: str, default: Any = None) -> Any:
        """One parameter by its dotted name, e.g. ``calibration.groups``."""
        value: Any = self.params
        for part in dotted.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return default
            value = value[part]
        return default if value is None else value

    @property
    def run_name(self) -> Optional[str]:
        return self.data.get("run_name")

    @property
    def status(self) -> Optional[str]:
        """``ok``, ``incomplete`` or ``failed``."""
        return self.data.get("status")

    @property
    def failure(self) -> Optional[str]:
        return self.data.get("failure")

    @property
    def warnings(self) -> dict[str, list]:
        """Notebook -> its warnings."""
        return self.data.get("warnings") or {}

    @property
    def git_commit(self) -> Optional[str]:
        return self.data.get("git_commit")

    @property
    def packages(self) -> dict[str, str]:
        return self.data.get("packages") or {}

    @property
    def notebooks(self) -> dict[str, Any]:
        """Notebook -> its status and seconds."""
        return self.data.get("notebooks") or {}

    @property
    def study_manifest(self) -> Optional[str]:
        return self.data.get("study_manifest")

    @property
    def finished(self) -> Optional[str]:
        return self.data.get("finished")


def results_path(run_dir: str | Path, notebook: str) -> Path:
    """``<run>/results/<notebook>.json``."""
    return Path(run_dir) / RESULTS_DIR / f"{notebook_stem(notebook) or notebook}.json"


def read_run_info(run_dir: str | Path) -> RunInfo | None:
    """``run.json`` of a run folder; None when it has none (a run still going, or never finished)."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DlrcError(f"{path}: not a JSON object")
    return RunInfo(data)


def read_notebook_record(run_dir: str | Path, notebook: str) -> NotebookRecord | None:
    """One notebook's record; None when its results file is absent."""
    path = results_path(run_dir, notebook)
    if not path.is_file():
        return None
    return parse_results(path.stem, _read_json(path), str(path))


@dataclass
class RunRecord:
    """A run folder's ``run.json`` (:attr:`run`, None when absent) and each notebook's record."""

    run_dir: Path
    run: Optional[RunInfo]
    records: dict[str, NotebookRecord]  # notebook stem -> its record (only those that wrote one; a
    # notebook outside the pipeline's ten as a plain NotebookRecord)

    @classmethod
    def load(cls, run_dir: str | Path) -> "RunRecord":
        """Read ``run.json`` and ``results/*.json`` (a file of an unknown record version: DlrcError)."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise DlrcError(f"{run_dir}: no such run folder")
        records = {path.stem: parse_results(path.stem, _read_json(path), str(path))
                   for path in sorted((run_dir / RESULTS_DIR).glob("*.json"))}
        return cls(run_dir=run_dir, run=read_run_info(run_dir), records=records)

    def notebook(self, notebook: str) -> NotebookRecord | None:
        """A notebook's record by its stem or number (``05``); None when it did not record one."""
        return self.records.get(notebook_stem(notebook) or str(notebook))

    def get(self, notebook: str, dotted: str) -> Any:
        """A value at a dotted path of a notebook's results (e.g. ``("03_radiomics", "selected")``);
        :class:`NotRecorded` (its message says what is missing) when the run has none."""
        rec = self.notebook(notebook)
        if rec is None:
            raise NotRecorded(f"notebook {notebook} has no results in this run")
        missing = object()
        value = rec.get(dotted, missing)
        if value is missing:
            raise NotRecorded(f"results/{notebook}.json has no {dotted}")
        return value

    @property
    def reproduced(self) -> dict[str, Any]:
        """Every notebook's reproduced values, merged (in notebook order)."""
        out: dict[str, Any] = {}
        for rec in self.records.values():
            out.update(rec.reproduced)
        return out

    @property
    def warnings(self) -> dict[str, list]:
        """Notebook -> the warnings its record holds."""
        return {stem: list(rec.warnings) for stem, rec in self.records.items() if rec.warnings}

    @property
    def study(self) -> StudyRecord | None:
        return self.records.get("00_study")  # type: ignore[return-value]

    @property
    def cohort(self) -> CohortRecord | None:
        return self.records.get("01_cohort_table")  # type: ignore[return-value]

    @property
    def icc(self) -> IccRecord | None:
        return self.records.get("02_icc")  # type: ignore[return-value]

    @property
    def radiomics(self) -> RadiomicsRecord | None:
        return self.records.get("03_radiomics")  # type: ignore[return-value]

    @property
    def deep(self) -> DeepRecord | None:
        return self.records.get("04_deep_learning")  # type: ignore[return-value]

    @property
    def dlrc(self) -> DlrcRecord | None:
        return self.records.get("05_dlrc")  # type: ignore[return-value]

    @property
    def calibration(self) -> CalibrationRecord | None:
        return self.records.get("06_calibration")  # type: ignore[return-value]

    @property
    def decision_curve(self) -> DecisionCurveRecord | None:
        return self.records.get("07_decision_curve")  # type: ignore[return-value]

    @property
    def sra(self) -> SraRecord | None:
        return self.records.get("08_sra_subgroup")  # type: ignore[return-value]

    @property
    def sensitivity(self) -> SensitivityRecord | None:
        return self.records.get("09_sensitivity")  # type: ignore[return-value]

    @property
    def best_dl(self) -> str | None:
        """The best deep-learning model (notebook 04's choice, else the one in the DLRC model)."""
        return (self.deep.best_model if self.deep else None) or (self.dlrc.best_model if self.dlrc else None)
