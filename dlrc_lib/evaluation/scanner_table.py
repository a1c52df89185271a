"""Supplementary Table S1: the scanners and their acquisition protocol.

One row per scanner and sequence: centre, vendor, model, field strength, patients, and per
sequence TR, TE, slice thickness, in-plane resolution and (DWI) the b-values. The values
come from the manifest's optional acquisition columns (``dlrc_lib.study.ACQUISITION_COLUMNS``,
documented in ``docs/manifest.md``; the twin fills them from its scanner table). Values that
differ between a scanner's patients are shown as a range (numbers) or listed (text); a
column the manifest does not have, or leaves empty for every patient of a scanner, reads
"not given".
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from dlrc_lib.study.schema import SEQUENCE_LABELS, SEQUENCES, parse_b_values, parse_inplane

NOT_GIVEN = "not given"
NOT_APPLICABLE = "—"

__all__ = ["NOT_GIVEN", "NOT_APPLICABLE", "scanner_table"]


def _present(values: Iterable) -> list:
    return [v for v in values if not (v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))
                                      or (isinstance(v, str) and not v.strip()))]


def _number(v: float) -> str:
    return f"{float(v):g}"


def _numeric_cell(values: list, fmt=_number) -> str:
    if not values:
        return NOT_GIVEN
    v = np.asarray([float(x) for x in values])
    lo, hi = float(v.min()), float(v.max())
    return fmt(lo) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"


def _text_cell(values: list) -> str:
    if not values:
        return NOT_GIVEN
    return " / ".join(sorted({str(v).strip() for v in values}))


def _inplane_cell(values: list) -> str:
    if not values:
        return NOT_GIVEN
    pairs = sorted({parse_inplane(v) for v in values})
    return " / ".join(f"{_number(a)} × {_number(b)}" for a, b in pairs)


def _b_cell(values: list) -> str:
    if not values:
        return NOT_GIVEN
    sets = sorted({parse_b_values(v) for v in values})
    return " / ".join(", ".join(str(b) for b in s) for s in sets)


def _column(df: pd.DataFrame, name: str) -> list:
    return _present(df[name].tolist()) if name in df.columns else []


def scanner_table(study: pd.DataFrame) -> pd.DataFrame:
    """Table S1 (long form): one row per scanner x sequence, ordered by centre and scanner.

    Columns: Centre, Scanner, Vendor, Model, Field strength (T), Patients, Sequence,
    TR (ms), TE (ms), Slice thickness (mm), In-plane resolution (mm), b-values (s/mm²)
    (DWI only; "—" for the other sequences). Absent values read "not given".
    """
    rows = []
    for (centre, scanner), grp in study.groupby(["centre", "scanner"], sort=True):
        head = {
            "Centre": str(centre), "Scanner": str(scanner),
            "Vendor": _text_cell(_column(grp, "scanner_vendor")),
            "Model": _text_cell(_column(grp, "scanner_model")),
            "Field strength (T)": _numeric_cell(_column(grp, "field_strength_t"), "{:.1f}".format),
            "Patients": int(len(grp)),
        }
        for seq in SEQUENCES:
            rows.append({
                **head, "Sequence": SEQUENCE_LABELS[seq],
                "TR (ms)": _numeric_cell(_column(grp, f"tr_ms_{seq}")),
                "TE (ms)": _numeric_cell(_column(grp, f"te_ms_{seq}")),
                "Slice thickness (mm)": _numeric_cell(_column(grp, f"slice_thickness_mm_{seq}")),
                "In-plane resolution (mm)": _inplane_cell(_column(grp, f"inplane_mm_{seq}")),
                "b-values (s/mm²)": _b_cell(_column(grp, "dwi_b_values")) if seq == "DWI" else NOT_APPLICABLE,
            })
    return pd.DataFrame(rows, columns=["Centre", "Scanner", "Vendor", "Model", "Field strength (T)", "Patients",
                                       "Sequence", "TR (ms)", "TE (ms)", "Slice thickness (mm)",
                                       "In-plane resolution (mm)", "b-values (s/mm²)"])


def scanner_table_caption(source: str) -> str:
    """Supplementary Table S1's caption for the kind of study (``twin`` or ``manifest``)."""
    caption = "Supplementary Table S1. MRI scanners and acquisition parameters per sequence"
    return caption + (" (simulated scanners of the synthetic twin)" if source == "twin" else "")
