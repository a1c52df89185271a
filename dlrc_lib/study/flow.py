"""A manifest study's patient flow (Fig. 1): how many patients were enrolled and why some were
excluded before the manifest was written.

The flow table is optional: ``flow.csv`` beside the manifest, or the file ``study.flow`` names.
Two columns, ``step,n``; the first row is ``enrolled`` with the number of patients enrolled, then
one row per exclusion reason with the number of patients it excluded::

    step,n
    enrolled,120
    Presurgical treatment,12
    Poor-quality MRI,8

Enrolled minus the exclusions must be the manifest's number of patients. Without a flow table
the flow chart starts at the patients included. (The synthetic twin's exclusions are its
``study.exclusions`` parameter instead.)
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from dlrc_lib.core.config import FLOW_FILE
from dlrc_lib.core.errors import DlrcError

__all__ = ["FLOW_FILE", "Flow", "check_flow", "default_flow_file", "flow_exclusions", "read_flow"]

ENROLLED = "enrolled"


@dataclass
class Flow:
    """The patients enrolled and those excluded, by reason (in the table's order)."""

    enrolled: int
    exclusions: dict[str, int] = field(default_factory=dict)

    @property
    def included(self) -> int:
        return self.enrolled - sum(self.exclusions.values())


def default_flow_file(manifest: str | Path | None) -> Optional[Path]:
    """``flow.csv`` beside the manifest when there is one, else None."""
    if not manifest:
        return None
    candidate = Path(manifest).parent / FLOW_FILE
    return candidate if candidate.is_file() else None


def _count(value: str, where: str) -> int:
    text = str(value).strip()
    try:
        n = int(text)
    except ValueError:
        raise DlrcError(f"{where}: n must be a whole number of patients, got {text!r}") from None
    if n < 0:
        raise DlrcError(f"{where}: n must not be negative, got {n}")
    return n


def _rows(path: Path) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return [row for row in csv.reader(fh) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError:
        raise DlrcError(f"{path}: flow table is not UTF-8 text") from None
    except OSError as exc:
        raise DlrcError(f"{path}: flow table cannot be read ({exc.strerror or exc})") from None


def read_flow(path: str | Path) -> Flow:
    """The flow table at ``path`` (see the module docstring); one :class:`DlrcError` line naming
    the file, the row and the problem otherwise."""
    path = Path(path)
    rows = _rows(path)
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if header != ["step", "n"]:
        raise DlrcError(f"{path}: flow table must have the columns step,n (found {','.join(header) or 'nothing'})")
    if len(rows) < 2 or rows[1][0].strip().lower() != ENROLLED:
        raise DlrcError(f"{path}: the flow table's first row must be '{ENROLLED}' with the number of patients "
                        "enrolled, then one row per exclusion reason")
    flow = Flow(enrolled=_count(rows[1][1] if len(rows[1]) > 1 else "", f"{path}, row 2 ({ENROLLED})"))
    for i, row in enumerate(rows[2:], start=3):
        reason = row[0].strip()
        where = f"{path}, row {i} ({reason or 'no reason'})"
        if len(row) != 2 or not reason:
            raise DlrcError(f"{where}: each exclusion row needs a reason and its n")
        if reason.lower() == ENROLLED or reason in flow.exclusions:
            raise DlrcError(f"{where}: this step is listed more than once")
        flow.exclusions[reason] = _count(row[1], where)
    return flow


def check_flow(flow: Flow, n_patients: int, path: str | Path) -> None:
    """Refuse, in one line, a flow whose enrolled minus excluded is not the manifest's patients."""
    if flow.included != n_patients:
        raise DlrcError(f"{path}: enrolled {flow.enrolled} minus {sum(flow.exclusions.values())} excluded is "
                        f"{flow.included}, but the manifest has {n_patients} patients; correct the counts")


def flow_exclusions(flow_file: str | None, exclusions: Mapping[str, int] | None,
                    n_patients: int) -> dict[str, int]:
    """The exclusions Fig. 1 shows: those of the flow table (checked against the ``n_patients``
    of the study) when there is one, else ``exclusions`` (the twin's ``study.exclusions``)."""
    if not flow_file:
        return dict(exclusions or {})
    flow = read_flow(flow_file)
    check_flow(flow, n_patients, flow_file)
    return dict(flow.exclusions)
