"""The keys of reproduced values, defined once.

A reproduced number is recorded under the dotted path of its published counterpart in
``published_values.yaml`` (``table2.train.DLRC.auc``, ``table4.DLRC_vs_radiomics.external``,
...). Every such key is built here from its parts and parsed back here; no other module
writes or splits one by hand, so a misspelt part fails where the key is made, not as a
missing claim in the report.

>>> str(Key("table2", cohort="train", model="DLRC", metric="auc"))
'table2.train.DLRC.auc'
>>> key("table4", model="DLRC", other="radiomics", cohort="internal")
'table4.DLRC_vs_radiomics.internal'
>>> parse("table5.lnsd_below_10mm.external.SRA.sen").subgroup
'lnsd_below_10mm'

Lower layers return :class:`Row` s (a key and its value); :func:`values` turns them into the
``{key: value}`` dict that ``Artifacts.reproduce`` records.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, Iterable

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.study.schema import CLINICAL_VARIABLES, COHORTS, DLRC, RADIOMICS, SRA

#: Measures of the performance tables (Tables 2, 3 and 5): AUC [est, lo, hi], the rest percent.
METRICS = ("auc", "acc", "sen", "spe", "ppv", "npv")
#: The measures of a rule's calls (SRA in Table 2, both rows of Table 5): no AUC.
CALL_METRICS = METRICS[1:]
#: Table 1's continuous variables: the LNM-negative and -positive medians [median, Q1, Q3] and the p-value.
GROUPS = ("neg", "pos", "p")
#: Names under ``selected_features`` (the features the paper names in its discussion).
SELECTED_FEATURES = ("radiomics_count", "radiomics_top", "dl_top", "dlrc_terms")
#: Names under ``study`` (the study's size and design).
STUDY_NAMES = ("enrolled", "included", "scanners", "sequences", "dwi_b_values", "icc_cases", "icc_threshold",
               "split_ratio")

_SUBGROUP = re.compile(r"lnsd_below_[0-9.]+mm|lnsd_[0-9.]+mm_or_more")
_NAME = re.compile(r"[A-Za-z0-9_>=<+\-]+")

#: Each table's key forms: the template of every kind of key under it, parts in key order.
#: Within one table, forms differ in the set of parts they take.
FORMS: dict[str, tuple[str, ...]] = {
    "table1": ("table1.n.{cohort}", "table1.lnm_rate_p", "table1.{variable}.{cohort}.{group}",
               "table1.categorical.{variable}.p.{cohort}",
               "table1.categorical.{variable}.levels.{level}.{cohort}"),
    "table2": ("table2.{cohort}.{model}.{metric}",),
    "table3": ("table3.{cohort}.{model}.{metric}",),
    "table4": ("table4.{model}_vs_{other}.{cohort}",),
    "table5": ("table5.{subgroup}.{cohort}.{model}.{metric}",),
    "calibration_hosmer_lemeshow_p": ("calibration_hosmer_lemeshow_p.{cohort}",),
    "selected_features": ("selected_features.{name}",),
    "study": ("study.{name}", "study.centres.{centre}"),
}
TABLES = tuple(FORMS)
#: The tables whose values the comparison page sets beside the paper's (the others describe the
#: study and its selected features).
PAPER_TABLES = ("table1", "table2", "table3", "table4", "table5", "calibration_hosmer_lemeshow_p")
_PART = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Key:
    """One reproduced value's key, by its parts; ``str(key)`` is the dotted path."""

    table: str
    cohort: str | None = None
    model: str | None = None
    other: str | None = None  # Table 4: the model compared with ``model``
    metric: str | None = None
    subgroup: str | None = None
    variable: str | None = None
    level: str | None = None
    group: str | None = None
    name: str | None = None
    centre: str | None = None

    def parts(self) -> dict[str, str]:
        """The parts that are set (the table left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "table" and getattr(self, f.name) is not None}

    def __post_init__(self) -> None:
        _template(self)  # unknown table or set of parts
        for part, value in self.parts().items():
            _check_part(part, str(value))

    def __str__(self) -> str:
        return _template(self).format(**self.parts())

    @property
    def pair(self) -> str | None:
        """Table 4's comparison as the paper names it: ``DLRC_vs_radiomics``."""
        return None if self.other is None else f"{self.model}_vs_{self.other}"


@dataclass(frozen=True)
class Row:
    """A reproduced value and its key: tidy rows that :func:`values` turns into a dict."""

    key: Key
    value: Any

    def __repr__(self) -> str:
        return f"Row({self.key} = {self.value!r})"


def _template(k: Key) -> str:
    forms = FORMS.get(k.table)
    if forms is None:
        raise DlrcError(f"reproduced value: unknown table {k.table!r} (known: {', '.join(TABLES)})")
    given = set(k.parts())
    for t in forms:
        if set(_PART.findall(t)) == given:
            return t
    raise DlrcError(f"reproduced value: {k.table} takes the parts "
                    + " or ".join("(" + ", ".join(_PART.findall(t)) + ")" for t in forms)
                    + f", not ({', '.join(sorted(given))})")


def _check_part(part: str, value: str) -> None:
    allowed = {"cohort": COHORTS, "metric": METRICS, "group": GROUPS}.get(part)
    if allowed is not None and value not in allowed:
        raise DlrcError(f"reproduced value: {part} {value!r} is not one of {', '.join(allowed)}")
    if part == "subgroup" and not _SUBGROUP.fullmatch(value):
        raise DlrcError(f"reproduced value: subgroup {value!r} is not lnsd_below_<g>mm or lnsd_<g>mm_or_more")
    if part == "centre":  # a hospital's own name: free text, spaces included, but no dot (see centre_part)
        if not value.strip() or "." in value:
            raise DlrcError(f"reproduced value: centre {value!r} is empty or holds a dot")
    elif allowed is None and not _NAME.fullmatch(value):
        raise DlrcError(f"reproduced value: {part} {value!r} is empty or holds a dot or a space")


def key(table: str, **parts: Any) -> str:
    """The dotted key of ``table`` with ``parts``: ``key("table2", cohort="train", model="DLRC",
    metric="auc")`` -> ``"table2.train.DLRC.auc"``."""
    return str(Key(table, **{p: str(v) for p, v in parts.items() if v is not None}))


def row(table: str, value: Any, **parts: Any) -> Row:
    """A :class:`Row` of ``table`` with ``parts`` holding ``value``."""
    return Row(Key(table, **{p: str(v) for p, v in parts.items() if v is not None}), value)


def _pattern(template: str) -> re.Pattern:
    out, pos = "", 0
    for m in _PART.finditer(template):
        out += re.escape(template[pos:m.start()]) + f"(?P<{m.group(1)}>[^.]+?)"
        pos = m.end()
    return re.compile(out + re.escape(template[pos:]))


_PATTERNS = [(table, _pattern(t)) for table, forms in FORMS.items() for t in forms]


def parse(text: str) -> Key:
    """The :class:`Key` of a dotted key; :class:`DlrcError` when it is not one this module builds."""
    found = []
    for table, pat in _PATTERNS:
        m = pat.fullmatch(text)
        if m:
            try:
                found.append(Key(table, **m.groupdict()))
            except DlrcError:
                continue
    if len(found) != 1:
        why = "matches no key form" if not found else "is ambiguous"
        raise DlrcError(f"reproduced value: {text!r} {why}")
    return found[0]


def is_key(text: str) -> bool:
    """Whether ``text`` parses as a reproduced value's key."""
    try:
        parse(text)
    except DlrcError:
        return False
    return True


def values(rows: Iterable[Row]) -> dict[str, Any]:
    """``{key: value}`` of ``rows`` for ``Artifacts.reproduce``, in row order; a key twice is an error."""
    out: dict[str, Any] = {}
    for r in rows:
        k = str(r.key)
        if k in out:
            raise DlrcError(f"reproduced value: {k} given twice")
        out[k] = r.value
    return out


def subgroups(subgroup_mm: float) -> tuple[str, str]:
    """Table 5's two subgroups at ``subgroup_mm`` (``lnsd_below_10mm``, ``lnsd_10mm_or_more``)."""
    g = f"{subgroup_mm:g}"
    return f"lnsd_below_{g}mm", f"lnsd_{g}mm_or_more"


def _table1_keys() -> list[str]:
    out = [key("table1", cohort=c) for c in COHORTS] + [key("table1")]
    for v in CLINICAL_VARIABLES:
        for c in COHORTS:
            if v.kind == "continuous":
                out += [key("table1", variable=v.column, cohort=c, group=g) for g in GROUPS]
            else:
                out.append(key("table1", variable=v.column, cohort=c))
                out += [key("table1", variable=v.column, level=lv, cohort=c) for lv in v.levels]
    return out


def centre_part(name: str) -> str:
    """A centre's name as a key part: its dots (the keys' separator) written as ``_``."""
    return str(name).strip().replace(".", "_")


def reproducible_keys(dl_models: Iterable[str], subgroup_mm: float, centres: Iterable[str]) -> list[str]:
    """Every key a run can record: Tables 1-5, Hosmer-Lemeshow, the selected features and the
    study's counts, for deep-learning models ``dl_models`` (each may be the run's best),
    Table 5 split at ``subgroup_mm`` and a study with ``centres``."""
    dl = list(dl_models)
    out = _table1_keys()
    for c in COHORTS:
        out += [key("table2", cohort=c, model=m, metric=k) for m in (RADIOMICS, *dl, DLRC) for k in METRICS]
        out += [key("table2", cohort=c, model=SRA, metric=k) for k in CALL_METRICS]
        out += [key("table3", cohort=c, model=m, metric=k) for m in dl for k in METRICS]
        pairs = [(DLRC, RADIOMICS)] + [p for m in dl for p in ((DLRC, m), (RADIOMICS, m))]
        out += [key("table4", model=a, other=b, cohort=c) for a, b in pairs]
        out += [key("table5", subgroup=s, cohort=c, model=m, metric=k)
                for s in subgroups(subgroup_mm) for m in (DLRC, SRA) for k in CALL_METRICS]
        out.append(key("calibration_hosmer_lemeshow_p", cohort=c))
    out += [key("selected_features", name=n) for n in ("radiomics_count", "radiomics_top")]
    out += [key("study", name=n) for n in ("included", "scanners", "icc_cases")]
    out += [key("study", centre=centre_part(c)) for c in centres]
    return list(dict.fromkeys(out))
