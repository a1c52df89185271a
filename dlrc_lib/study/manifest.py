"""The study table: one row per patient, from the synthetic twin or a user's manifest.

A study is a CSV (or .xlsx) manifest (one row per patient; image and mask paths relative to the
manifest; NIfTI, NRRD or a DICOM series folder). :func:`load_study` reads it into the
study table every notebook uses; :func:`validate_manifest` lists every problem with it
before anything is extracted; :func:`prepare_study` gives the run its manifest (generating
the twin when needed) after validation.

Columns of the study table: ``patient_id, centre, scanner, cohort (train|internal|external),
lnm, age, parity, menopause, age_at_menopause, family_history, figo_stage, histology,
lnsd_mm, lnld_mm, node_necrosis, c_lnm`` (the radiologist's call where the manifest has
one, else ``lnsd_mm >= 10``: :func:`c_lnm_calls`), and absolute paths
``image_<SEQ>``, ``mask_<SEQ>`` (reader 1), ``mask_r2_<SEQ>`` (reader 2) and
``mask_rep_<SEQ>`` (reader 1 repeat; the last two only for the re-segmented subset).
Optional: reader 2's (and reader 1's own) node reading (``READER2_COLUMNS``,
``READER1_COLUMNS``) and the acquisition columns of Table S1 (``ACQUISITION_COLUMNS``), all
in :mod:`dlrc_lib.study.schema` and described in ``docs/manifest.md``.
"""
from __future__ import annotations

import csv
import io
import os
import re
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import openpyxl
import pandas as pd

from dlrc_lib.core.config import Params
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.study.schema import (
    ACQUISITION_NUMERIC,
    C_LNM_SPELLINGS,
    COHORTS,
    MANIFEST_LEVELS,
    NODE_OPTIONAL_DIAMETERS,
    NODE_OPTIONAL_FLAGS,
    PATH_PREFIXES,
    c_lnm_from_short_axis,
    c_lnm_reading,
)


def split_cohorts(df: pd.DataFrame, *, internal_centres: Iterable[str] = ("A",),
                  train_fraction: float = 0.7, seed: int = 0) -> pd.Series:
    """Cohort of each patient when the manifest has none: patients of ``internal_centres``
    are split train/internal at ``train_fraction``, stratified by LNM (seeded); the others
    form the external cohort."""
    rng = np.random.default_rng([seed, 7])
    cohort = pd.Series("external", index=df.index, dtype=object)
    internal = df["centre"].astype(str).isin([str(c) for c in internal_centres])
    for lnm in sorted(df.loc[internal, "lnm"].dropna().unique()):
        idx = df.index[internal & (df["lnm"] == lnm)].to_numpy()
        idx = idx[rng.permutation(len(idx))]
        n_train = int(np.floor(len(idx) * train_fraction + 0.5))
        cohort.loc[idx[:n_train]] = "train"
        cohort.loc[idx[n_train:]] = "internal"
    return cohort


# Identifier, path and digest columns are read as text, never type-guessed. Besides keeping
# "007" and "E1" as written, this keeps pandas' C float parser away from SHA-256 digests: one
# such as "389e2303514989370e7f0..." reads to it as a number with a 16-digit exponent, and
# pandas 2.3 crashes the whole process on it (a segmentation fault in its parser, not an
# exception), which 1 in a few thousand random digests triggers.
TEXT_COLUMNS = ("patient_id", "centre", "scanner")
TEXT_PREFIXES = ("image_", "mask_", "sha256_")

#: Column delimiters recognised from a manifest's header line; on a tie the comma wins.
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
# A number written with a decimal comma ("12,5"), and an in-plane resolution so written.
_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d+,\d+\s*$")
_INPLANE_COMMA = re.compile(r"^\s*\d+(,\d+)?\s*[xX×]\s*\d+(,\d+)?\s*$")
# Columns whose commas are no decimal commas: "0,800" lists two b-values.
_LIST_COLUMNS = ("dwi_b_values",)
# 0/1 columns, read as text and then as numbers when every value is one, so that a word
# such as "true" is kept as written (pandas would make it a boolean) for validation to show.
_FLAG_COLUMNS = ("lnm", "node_necrosis", "c_lnm") + NODE_OPTIONAL_FLAGS

#: A manifest problem that is no error: ``(where, message)``; see :func:`read_manifest_csv`.
Note = tuple[str, str]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text or exc.__class__.__name__)[:300]


def _is_text_column(name: Any) -> bool:
    return str(name).strip() in TEXT_COLUMNS or str(name).strip().startswith(TEXT_PREFIXES)


def _read_as_text(name: Any) -> bool:
    """Text columns, categorical columns and 0/1 columns are read as written."""
    name = str(name).strip()
    return _is_text_column(name) or name in _FLAG_COLUMNS or name in MANIFEST_LEVELS or name == "cohort"


@dataclass(frozen=True)
class _Source:
    """A manifest file as found on disk: an xlsx workbook, or decoded text and its delimiter."""

    kind: str  # "text" | "xlsx"
    text: str = ""
    encoding: str = "UTF-8"
    delimiter: str = ","


def _zip_kind(path: Path) -> str:
    """``xlsx``, ``ods`` or ``zip`` for a zip container; ``damaged`` when it cannot be opened."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "xl/workbook.xml" in names:
                return "xlsx"
            if "mimetype" in names and b"opendocument" in zf.read("mimetype")[:200]:
                return "ods"
    except (zipfile.BadZipFile, OSError, ValueError):
        return "damaged"
    return "zip"


def _decode(data: bytes) -> tuple[str, str]:
    """The text of a manifest and its encoding: UTF-8 (with or without a byte-order mark),
    UTF-16 with a byte-order mark (Excel's "Unicode text"), else Windows-1252 or Latin-1."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "UTF-16"
    try:
        return data.decode("utf-8-sig"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "Latin-1"


def _header_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


def _source(path: Path) -> _Source:
    """What the manifest file is; a file that is no manifest is refused in one line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DlrcError(f"{path}: unreadable file ({exc.strerror or exc})") from None
    if not data.strip():
        raise DlrcError(f"{path}: the file is empty (expected a header line and one row per patient)")
    if data[:4] == b"PK\x03\x04":
        kind = _zip_kind(path)
        if kind == "xlsx":
            return _Source("xlsx")
        raise DlrcError(f"{path}: " + {
            "ods": "an OpenDocument spreadsheet: save it as .xlsx or as CSV (UTF-8)",
            "damaged": "a damaged zip or .xlsx file: save the manifest again as .xlsx or as CSV (UTF-8)",
        }.get(kind, "a zip archive, not a manifest: expected a CSV or .xlsx file"))
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise DlrcError(f"{path}: an Excel 97-2003 workbook (.xls), which dlrc does not read: "
                        "save it as .xlsx or as CSV (UTF-8)")
    try:
        text, encoding = _decode(data)
    except UnicodeDecodeError:
        text, encoding = "\x00", ""
    head = text[:65536]
    control = sum(1 for ch in head if (ord(ch) < 32 and ch not in "\t\r\n") or ch == "\x7f")
    if "\x00" in head or control > max(2, len(head) // 100):
        raise DlrcError(f"{path}: binary data, not a text CSV file (expected a CSV or .xlsx manifest)")
    if not text.strip():
        raise DlrcError(f"{path}: the file is empty (expected a header line and one row per patient)")
    first = _header_line(text)
    fields = {d: len(next(csv.reader([first], delimiter=d), [])) for d in DELIMITERS}
    delimiter = max(DELIMITERS, key=lambda d: fields[d])
    return _Source("text", text, encoding, delimiter)


def manifest_header(path: str | Path) -> list[str]:
    """The manifest's column names as written in its header (stripped; duplicates kept)."""
    path = Path(path)
    src = _source(path)
    if src.kind == "xlsx":
        row = pd.read_excel(path, sheet_name=0, header=None, nrows=1, dtype=str, engine="openpyxl")
        return ["" if pd.isna(v) else str(v).strip() for v in (row.iloc[0] if len(row) else [])]
    return [h.strip() for h in next(csv.reader([_header_line(src.text)], delimiter=src.delimiter), [])]


# A number format that pads with zeros ("00000"): Excel shows 12 as 00012.
_ZERO_FORMAT = re.compile(r"^0+$")


def _id_cells(path: Path, sheet: str, n_rows: int) -> list[tuple[Any, str]]:
    """``(value, number format)`` of the ``patient_id`` cells of an .xlsx sheet's first
    ``n_rows`` data rows, as Excel stored them (numbers as numbers); [] without that column."""
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - pandas read the sheet; this look at its cells is optional
        return []
    try:
        rows = book[sheet].iter_rows(max_row=n_rows + 1)
        header = [str(c.value).strip() if c.value is not None else "" for c in next(rows, ())]
        if "patient_id" not in header:
            return []
        j = header.index("patient_id")
        return [(row[j].value, getattr(row[j], "number_format", "General") or "General") if j < len(row) else
                (None, "General") for row in rows]
    finally:
        book.close()


def _lost_zeros(ids: pd.Series, numeric: list[int], df: pd.DataFrame) -> list[str]:
    """``"12 (paths: 00012)"`` for each ID stored as a number that most likely lost its leading
    zeros: an image or mask path of its row names it with zeros, or the column's IDs typed as
    text have leading zeros and more digits."""
    paths = [c for c in df.columns if str(c).strip().startswith(PATH_PREFIXES)]
    as_number = set(numeric)
    texts = [v for i, v in ids.items() if i not in as_number and isinstance(v, str) and re.fullmatch(r"0\d+", v)]
    width = max((len(v) for v in texts), default=0)
    out = []
    for i in numeric:
        pid = ids[i]
        hit = next((m.group(0) for c in paths if isinstance(df.at[i, c], str)
                    for m in [re.search(rf"(?<![0-9])0+{re.escape(pid)}(?![0-9])", df.at[i, c])] if m), None)
        if hit:
            out.append(f"{pid} (paths: {hit})")
        elif len(pid) < width:
            out.append(f"{pid} (other IDs: {texts[0]})")
    return out


def _xlsx_ids(path: Path, sheet: str, df: pd.DataFrame, notes: list[Note]) -> None:
    """IDs that Excel stored as numbers: one shown with a zero-padded format (``00000``) is read
    as shown (``00012``); one that seems to have lost its leading zeros otherwise (see
    :func:`_lost_zeros`) gets one note naming the file, the column and examples."""
    col = next((c for c in df.columns if str(c).strip() == "patient_id"), None)
    if col is None or not len(df):
        return
    cells = _id_cells(path, sheet, len(df))
    ids = df[col].copy()
    shown, numeric = [], []
    for i, (value, fmt) in zip(df.index, cells):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if _ZERO_FORMAT.match(fmt) and float(value).is_integer():
            ids[i] = str(int(value)).zfill(len(fmt))
            shown.append(f"{_num(value)} -> {ids[i]}")
        else:
            numeric.append(i)
    df[col] = ids
    if shown:
        notes.append((str(path), f"column patient_id: {len(shown)} ID(s) stored as numbers with a zero-padded "
                                 f"format read as Excel shows them (e.g. {', '.join(shown[:3])})"))
    lost = _lost_zeros(ids, numeric, df)
    if lost:
        notes.append((str(path), f"column patient_id: {len(lost)} ID(s) are numbers in the workbook and seem to have "
                                 f"lost leading zeros (e.g. {', '.join(lost[:3])}); they are read as the sheet has "
                                 "them: format the column as Text in Excel and type the IDs again, or give the "
                                 "cells a zero-padded number format such as 00000"))


def _num(value: Any) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _parser_error(path: Path, exc: Exception, delimiter: str) -> DlrcError:
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if m:
        want, line, saw = m.groups()
        return DlrcError(f"{path}: line {line} has {saw} fields where the header has {want} (a value holding "
                         f"the delimiter {DELIMITERS[delimiter]} {delimiter!r} without quotes?)")
    return DlrcError(f"{path}: not a readable CSV manifest ({exc.__class__.__name__}: {_one_line(exc)})")


def _read_table(path: Path, src: _Source, notes: list[Note], kwargs: dict) -> pd.DataFrame:
    if src.kind == "xlsx":
        try:
            book = pd.ExcelFile(path, engine="openpyxl")
        except ImportError:
            raise DlrcError(f"{path}: an .xlsx manifest needs the openpyxl package (pip install openpyxl); "
                            "or save it as CSV (UTF-8)") from None
        except Exception as exc:  # noqa: BLE001 - any failure to open is the user's file
            raise DlrcError(f"{path}: an unreadable .xlsx workbook ({_one_line(exc)})") from None
        with book:
            sheets = book.sheet_names
            if not sheets:
                raise DlrcError(f"{path}: an .xlsx workbook without sheets")
            header = book.parse(sheets[0], nrows=0).columns
            text = {c: str for c in header if _read_as_text(c)}
            df = book.parse(sheets[0], dtype=text, **kwargs)
        _xlsx_ids(path, sheets[0], df, notes)
        if len(sheets) > 1:
            notes.append((str(path), f"an Excel workbook of {len(sheets)} sheets: read its first sheet "
                                     f"{sheets[0]!r} only"))
        return df
    try:
        header = pd.read_csv(io.StringIO(src.text), sep=src.delimiter, nrows=0, index_col=False).columns
        text = {c: str for c in header if _read_as_text(c)}
        return pd.read_csv(io.StringIO(src.text), sep=src.delimiter, dtype=text, index_col=False, **kwargs)
    except pd.errors.EmptyDataError:
        raise DlrcError(f"{path}: the file is empty (expected a header line and one row per patient)") from None
    except pd.errors.ParserError as exc:
        raise _parser_error(path, exc, src.delimiter) from None


def _decimal_commas(df: pd.DataFrame) -> tuple[int, str]:
    """Numbers written with a decimal comma read as numbers ("12,5" -> 12.5), in every
    column but the text and list columns; how many, and one example."""
    n, example, whole = 0, "", True
    for col in df.columns:
        if _is_text_column(col) or col in _LIST_COLUMNS or df[col].dtype != object:
            continue
        s = df[col]
        inplane = str(col).startswith("inplane_mm_")
        pattern = _INPLANE_COMMA if inplane else _DECIMAL_COMMA
        hit = s.map(lambda v: isinstance(v, str) and "," in v and bool(pattern.match(v))).astype(bool)
        if not hit.any():
            continue
        new = s.copy()
        new[hit] = s[hit].str.strip().str.replace(",", ".", regex=False)
        if not inplane:
            num = pd.to_numeric(new, errors="coerce")
            if (num.notna() | new.isna()).all():
                new = num
            else:
                new[hit] = num[hit]
        shown = s[hit].str.strip()
        fractional = shown[~shown.str.fullmatch(r"[+-]?\d+,0+")]
        if not example or (whole and len(fractional)):  # an example such as 12,5 rather than 46,0
            at = (fractional if len(fractional) else shown).index[0]
            example, whole = f"{col} {shown[at]!r} read as {new[at]}", not len(fractional)
        n += int(hit.sum())
        df[col] = new
    return n, example


def _level_case(df: pd.DataFrame, notes: list[Note]) -> None:
    """Categorical values that differ from a level only in case or surrounding spaces
    ("yes", " Yes") read as that level, with one note per column."""
    for col, levels in {**MANIFEST_LEVELS, "cohort": COHORTS}.items():
        if col not in df or df[col].dtype != object:
            continue
        by_fold = {lv.casefold(): lv for lv in levels}
        changed: Counter = Counter()

        def fix(v: Any) -> Any:
            if not isinstance(v, str):
                return v
            level = by_fold.get(v.strip().casefold())
            if level is None or level == v:
                return v
            changed[(v, level)] += 1
            return level

        df[col] = df[col].map(fix)
        if changed:
            shown = ", ".join(f"{v!r} -> {lv!r} ({n})" for (v, lv), n in changed.most_common(6))
            more = ", ..." if len(changed) > 6 else ""
            notes.append((f"column {col}", f"{sum(changed.values())} value(s) differing from the levels "
                                           f"({', '.join(levels)}) only in case or spaces, read as those levels: "
                                           f"{shown}{more}"))


def _c_lnm_words(df: pd.DataFrame, notes: list[Note]) -> None:
    """The radiologist's c_LNM calls written as words (``yes``, ``Pos``, ``+`` ...: the
    spellings of :data:`dlrc_lib.study.schema.C_LNM_WORDS`) read as 1/0, with one note; any
    other value is kept as written (validation refuses it)."""
    if "c_lnm" not in df or df["c_lnm"].dtype != object:
        return
    changed: Counter = Counter()

    def read(v: Any) -> Any:
        if not isinstance(v, str) or v.strip() in ("0", "1"):
            return v
        reading = c_lnm_reading(v)
        if reading is None:
            return v
        changed[(v.strip(), reading)] += 1
        return str(reading)

    df["c_lnm"] = df["c_lnm"].map(read)
    if changed:
        shown = ", ".join(f"{v!r} -> {r} ({n})" for (v, r), n in changed.most_common(6))
        notes.append(("column c_lnm", f"{sum(changed.values())} radiologist's call(s) written as words read as 1/0: "
                                      f"{shown}{', ...' if len(changed) > 6 else ''}"))


def c_lnm_calls(df: pd.DataFrame, where: str | Path) -> tuple[pd.Series, list[tuple[str, str]]]:
    """Each patient's c_LNM (0/1): the radiologist's call where the manifest's ``c_lnm`` has
    one (:func:`dlrc_lib.study.schema.c_lnm_reading`), else the paper's size rule
    (``lnsd_mm >= 10``); and ``(patient, message)`` for each value that is no call
    (``where``: the manifest)."""
    sd = pd.to_numeric(df["lnsd_mm"], errors="coerce") if "lnsd_mm" in df else pd.Series(np.nan, index=df.index)
    by_size = c_lnm_from_short_axis(sd).astype("Int64").where(sd.notna(), pd.NA)
    if "c_lnm" not in df:
        return by_size, []
    given = df["c_lnm"].map(lambda v: not (v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))
                                           or (isinstance(v, str) and not v.strip()))).astype(bool)
    read = df["c_lnm"].map(c_lnm_reading)
    ids = df["patient_id"].astype(str).str.strip() if "patient_id" in df else pd.Series(
        [f"row {i + 2}" for i in range(len(df))], index=df.index)
    problems = [(pid, c_lnm_problem(v, where)) for pid, v, ok in zip(ids, df["c_lnm"], read.notna() | ~given)
                if not ok]
    calls = pd.to_numeric(read.where(given & read.notna()), errors="coerce").astype("Int64")
    return calls.fillna(by_size), problems


def c_lnm_problem(value: Any, where: str | Path) -> str:
    """What is wrong with a c_lnm value that is no radiologist's call (``where``: the manifest)."""
    shown = str(value).strip() if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)
    return (f"{shown!r} in {where} is no c_LNM call (write one of {C_LNM_SPELLINGS}, in any case; or leave "
            "the cell empty to use lnsd_mm >= 10)")


def _backslash_paths(df: pd.DataFrame, notes: list[Note]) -> None:
    """Windows paths in the image and mask columns (``images\\P001\\t2.nii.gz``) read with
    ``/``, on systems whose separator is ``/``; one note for all of them."""
    if os.sep != "/":
        return
    n, example = 0, ""
    for col in df.columns:
        if not str(col).startswith(PATH_PREFIXES):
            continue
        s = df[col]
        hit = s.map(lambda v: isinstance(v, str) and "\\" in v).astype(bool)
        if not hit.any():
            continue
        fixed = s[hit].str.replace("\\", "/", regex=False)
        example = example or f"{s[hit].iloc[0].strip()} -> {fixed.iloc[0].strip()}"
        df.loc[hit, col] = fixed
        n += int(hit.sum())
    if n:
        notes.append(("image and mask paths", f"{n} path(s) written with Windows backslashes read with '/' "
                                              f"(e.g. {example})"))


def read_manifest_csv(path: str | Path, *, notes: list[Note] | None = None, **kwargs: Any) -> pd.DataFrame:
    """A manifest-like patient table, with :data:`TEXT_COLUMNS` and every column named
    ``image_*``, ``mask_*`` or ``sha256_*`` read as text (header names stripped of spaces).
    Other columns are parsed as pandas would; ``kwargs`` go to ``read_csv`` (``read_excel``).

    What a hospital's spreadsheet program writes is accepted (``docs/manifest.md``, "What
    dlrc accepts and normalises"): a comma-, semicolon- or tab-separated file (the delimiter
    found in the header line), decimal commas in a file that is not comma-separated, UTF-8,
    UTF-16, Windows-1252 or Latin-1 text, or the first sheet of an ``.xlsx`` workbook;
    categorical levels differing only in case or spaces are read as the level, the
    radiologist's ``c_lnm`` calls written as words (``yes``, ``neg``, ``+``) as 1/0, IDs that
    Excel stored as numbers with a zero-padded format as Excel shows them (IDs that seem to
    have lost their leading zeros are noted), and backslashes in image and mask paths as
    ``/``. Each such reading adds one ``(where, message)`` to ``notes`` (issued as a warning when ``notes`` is None). Entirely empty
    rows, and entirely empty columns without a name, are dropped. A file that is no
    manifest (empty, binary, an ``.xls``/``.ods`` workbook, rows longer than the header) is
    refused with a :class:`DlrcError` of one line.
    """
    path = Path(path)
    issued: list[Note] = [] if notes is None else notes
    src = _source(path)
    df = _read_table(path, src, issued, kwargs)
    df.columns = [str(c).strip() for c in df.columns]
    empty_cols = [c for c in df.columns if c.startswith("Unnamed: ") and df[c].isna().all()]
    df = df.drop(columns=empty_cols).dropna(how="all").reset_index(drop=True)
    if src.kind == "text":
        said = []
        if src.delimiter != ",":
            said.append(f"as a {DELIMITERS[src.delimiter]}-separated file")
        if src.encoding != "UTF-8":
            said.append(f"in {src.encoding} (not UTF-8)")
        n, example = _decimal_commas(df) if src.delimiter != "," else (0, "")
        if n:
            said.append(f"with decimal commas ({n} value(s) such as {example})")
        if said:
            issued.append((str(path), "read " + ", ".join(said)))
    _c_lnm_words(df, issued)
    for col in _FLAG_COLUMNS:
        if col in df and df[col].dtype == object:
            number = pd.to_numeric(df[col].str.strip(), errors="coerce")
            if (number.notna() | df[col].isna()).all():
                df[col] = number
    _level_case(df, issued)
    _backslash_paths(df, issued)
    if notes is None:
        for where, message in issued:
            warnings.warn(f"{where}: {message}", stacklevel=2)
    return df


def read_manifest(manifest_path: str | Path, notes: list[Note] | None = None) -> pd.DataFrame:
    """The manifest as written (strings kept as strings; no checks), read and normalised by
    :func:`read_manifest_csv` (its notes go to ``notes``); any file that cannot be read is
    refused with a :class:`DlrcError` of one line."""
    path = Path(manifest_path)
    if not path.is_file():
        raise DlrcError(f"{path}: manifest not found")
    try:
        return read_manifest_csv(path, notes=notes, keep_default_na=True)
    except DlrcError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
        raise DlrcError(f"{path}: not a readable manifest ({exc.__class__.__name__}: {_one_line(exc)})") from None


def _abs_path(base: Path, value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
        return np.nan
    p = Path(str(value).strip())
    return str(p if p.is_absolute() else (base / p).resolve())


def load_study(manifest_path: str | Path, params=None) -> pd.DataFrame:
    """The study table of a manifest (see the module docstring); paths made absolute.

    ``params`` (a :class:`dlrc_lib.core.config.Params`) is needed only when the manifest has no
    ``cohort`` column: the cohorts are then drawn by :func:`split_cohorts` from
    ``study.internal_centres``, ``study.train_fraction`` and ``seed``.
    """
    path = Path(manifest_path)
    df = read_manifest(path, notes=[])  # what was normalised is reported by validation
    base = path.resolve().parent
    if "patient_id" in df:
        df["patient_id"] = df["patient_id"].astype(str).str.strip()
    for col in ("lnm", "parity", "node_necrosis"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    for col in ("age", "age_at_menopause", "lnsd_mm", "lnld_mm", *NODE_OPTIONAL_DIAMETERS, *ACQUISITION_NUMERIC):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    for col in NODE_OPTIONAL_FLAGS:
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    if "cohort" not in df or df["cohort"].isna().all():
        if params is None:
            params = Params()
        df["cohort"] = split_cohorts(df, internal_centres=params.study.internal_centres,
                                     train_fraction=params.study.train_fraction, seed=params.seed)
    if "lnsd_mm" in df or "c_lnm" in df:
        # MRI-reported node status: the radiologist's own call where the manifest brings one,
        # else short axis >= 10 mm (the paper's rule)
        calls, problems = c_lnm_calls(df, path)
        if problems:
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise DlrcError("; ".join(f"patient {pid}, column c_lnm: {msg}" for pid, msg in problems[:5]) + more)
        df["c_lnm"] = calls.astype(int) if not calls.isna().any() else calls
    for col in ("lnm", "parity", "node_necrosis"):
        if col in df and not df[col].isna().any():
            df[col] = df[col].astype(int)
    for col in df.columns:
        if col.startswith(PATH_PREFIXES):
            df[col] = [_abs_path(base, v) for v in df[col]]
    front = ["patient_id", "centre", "scanner", "cohort", "lnm", "age", "parity", "menopause",
             "age_at_menopause", "family_history", "figo_stage", "histology", "lnsd_mm", "lnld_mm",
             "node_necrosis", "c_lnm"]
    cols = [c for c in front if c in df] + [c for c in df.columns if c not in front]
    return df[cols].reset_index(drop=True)


def by_patient(study: pd.DataFrame) -> pd.DataFrame:
    """The study indexed by ``patient_id`` as text (a copy; an existing index is kept)."""
    if "patient_id" in study.columns:
        study = study.set_index("patient_id")
    else:
        study = study.copy()
    study.index = study.index.astype(str)
    return study
