"""The paper's published numbers (``published_values.yaml``) and the paper-vs-reproduction
comparison built from the notebooks' ``reproduced`` results (shown by
:mod:`dlrc_lib.reporting.index_page`)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dlrc_lib.study import keys as K

# Sections of published_values.yaml that hold the paper's reported numbers.
COMPARED_SECTIONS = K.PAPER_TABLES


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
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    flat = flatten_published({k: data[k] for k in COMPARED_SECTIONS if k in data})
    return flat


def load_discrepancies(path: str | Path) -> dict[str, dict[str, Any]]:
    """``discrepancies`` of published_values.yaml: dotted path -> {"text": the paper's other
    value of that number, "note": what differs where}."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return {str(k): dict(v) for k, v in (data.get("discrepancies") or {}).items()}


class Missing(Exception):
    """A value the run did not produce, or not a number (a claim on it is then not testable here)."""


def as_number(v: Any) -> float:
    """A number or a p-value as printed: ``"<0.001"`` is the largest float below 0.001 (a value
    strictly under the bound), ``"0.42"`` is 0.42; :class:`Missing` for NaN and what is not a number."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        if isinstance(v, float) and math.isnan(v):
            raise Missing("value is undefined (NaN)")
        return float(v)
    if isinstance(v, str):
        s = v.strip()
        try:
            if s.startswith("<"):
                return math.nextafter(float(s[1:]), 0.0)
            return float(s)
        except ValueError:
            pass
    raise Missing(f"{v!r} is not a number")


def number_or_none(v: Any) -> float | None:
    """:func:`as_number`, or None where there is no number (the comparison leaves it blank)."""
    try:
        return as_number(v)
    except Missing:
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
    p, r = number_or_none(pub), number_or_none(rep)
    if p is None or r is None:
        return None
    if isinstance(pub, str) and pub.strip().startswith("<"):
        return 0.0 if r < p else r - math.nextafter(p, 1.0)  # the difference to the bound itself
    return round(r - p, 4)


def compare_with_paper(published: dict[str, Any], reproduced: dict[str, Any],
                       roles: dict[str, str] | None = None,
                       discrepancies: dict[str, dict[str, Any]] | None = None) -> pd.DataFrame:
    """One row per published number: published, reproduced (or "not produced"), difference,
    for AUCs whether the reproduced estimate lies inside the paper's 95 % CI, and its role:
    ``input`` (the synthetic twin is built from it) or ``calibrated`` (the twin was tuned
    towards it) -- such rows are never counted as reproduced (``counted``).

    A number the paper states twice, differently (``discrepancies``, see
    :func:`load_discrepancies`), shows both values ("0.524 (table) / 0.542 (text)"), the
    difference to each, and the note saying so; the other rows' note is empty."""
    discrepancies = discrepancies or {}
    rows = []
    roles = roles or {}
    for key, pub in published.items():
        rep = reproduced.get(key)
        produced = key in reproduced
        role = roles.get(key, "")
        in_ci = None
        if key.endswith(".auc") and isinstance(pub, list) and len(pub) == 3 and produced:
            est = rep[0] if isinstance(rep, list) else number_or_none(rep)
            in_ci = bool(est is not None and pub[1] <= est <= pub[2])
        row = {
            "quantity": key,
            "published": _fmt(pub),
            "reproduced": _fmt(rep) if produced else "not produced",
            "difference": _fmt(_difference(pub, rep)) if produced else "",
            "auc_in_paper_ci": "" if in_ci is None else ("yes" if in_ci else "no"),
            "role": role,
            "counted": bool(produced and not role),
            "note": "",
        }
        other = discrepancies.get(key)
        if other is not None:
            row["published"] = f"{_fmt(pub)} (table) / {_fmt(other.get('text'))} (text)"
            if produced:
                row["difference"] = (f"{_fmt(_difference(pub, rep))} (table) / "
                                     f"{_fmt(_difference(other.get('text'), rep))} (text)")
            row["note"] = str(other.get("note", "the paper states this number twice, differently"))
        rows.append(row)
    return pd.DataFrame(rows)
