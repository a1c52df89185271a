"""The run record: what each notebook records in ``results/<notebook>.json`` (one typed dataclass
per notebook, :mod:`dlrc_lib.record.notebooks`) and a finished run folder read as one object
(:class:`RunRecord`, :mod:`dlrc_lib.record.run`).

Everything that reads a run's results or ``run.json`` goes through this package; it depends on
``core`` and ``study`` only.
"""
from dlrc_lib.record.notebooks import (
    RECORD_VERSION, RECORDS, VERSION_KEY, CalibrationRecord, CohortRecord, DecisionCurveRecord, DeepRecord,
    DlrcRecord, IccRecord, NotebookRecord, RadiomicsRecord, SensitivityRecord, SraRecord, StudyRecord,
    check_fields, parse_results, record_class,
)
from dlrc_lib.record.run import (
    NotRecorded, RunInfo, RunRecord, read_notebook_record, read_run_info, results_path,
)

__all__ = ["RECORD_VERSION", "RECORDS", "VERSION_KEY", "CalibrationRecord", "CohortRecord", "DecisionCurveRecord",
           "DeepRecord", "DlrcRecord", "IccRecord", "NotebookRecord", "RadiomicsRecord", "SensitivityRecord",
           "SraRecord", "StudyRecord", "check_fields", "parse_results", "record_class", "NotRecorded", "RunInfo",
           "RunRecord", "read_notebook_record", "read_run_info", "results_path"]
