"""A manifest as a hospital's spreadsheet program writes it: each mistake is one clear line
(never a flood or a traceback), and what dlrc normalises comes out with the right values."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from _tinystudy import SEQS, write_case
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.run.cli import main
from dlrc_lib.study.manifest import load_study, read_manifest, read_manifest_csv
from dlrc_lib.study.validate import validate_manifest

N = 6  # patients of the small study on disk: train, internal, external x LNM 0/1
DIGEST = "389e230351498937e7f006f9dad42686f8829091a1e0a5a3b08d3ae9b765b746"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A valid study of N patients with images and masks (paths relative to the manifest)."""
    root = tmp_path_factory.mktemp("manifest_input")
    rows = []
    for i in range(N):
        pid = f"P{i:03d}"
        row = {"patient_id": pid, "centre": "A", "scanner": "A1", "cohort": ("train", "internal", "external")[i // 2],
               "lnm": i % 2, "age": 41.5 + i, "parity": i % 3, "menopause": ("No", "Yes")[i % 2],
               "age_at_menopause": 50 if i % 2 else np.nan, "family_history": "No", "figo_stage": "IB1",
               "histology": "SCC", "lnsd_mm": 12.5 if i == 0 else 6.0 + i, "lnld_mm": 20.0,
               "node_necrosis": int(i == 3)}
        for k, seq in enumerate(SEQS):
            write_case(root / pid, seq, seed=i * 10 + k)
            row[f"image_{seq}"] = f"{pid}/{seq}.nii.gz"
            row[f"mask_{seq}"] = f"{pid}/{seq}_mask.nii.gz"
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


@pytest.fixture()
def clean(folder) -> pd.DataFrame:
    """The valid manifest, every cell as written."""
    return pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)


def _write(folder: Path, name: str, df: pd.DataFrame, **kwargs) -> Path:
    path = folder / name
    df.to_csv(path, index=False, **kwargs)
    return path


def _cli(path: Path, capsys) -> tuple[int, list[str]]:
    """Exit status and the problem lines of ``dlrc validate PATH`` (the summary line and the
    cohort-size lines left out)."""
    rc = main(["validate", str(path)])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    lines = out.out.splitlines()
    assert lines[-1].startswith("dlrc validate: ")
    return rc, [ln for ln in lines[:-1] if not ln.startswith("cohort size: ")]


def _many(clean: pd.DataFrame, n: int) -> pd.DataFrame:
    """n patients made of copies of the valid rows (for checks that do not read files)."""
    df = pd.concat([clean] * (n // len(clean) + 1), ignore_index=True).iloc[:n].copy()
    df["patient_id"] = [f"Q{i:04d}" for i in range(n)]
    return df


def test_the_small_study_is_valid(folder, capsys):
    assert _cli(folder / "manifest.csv", capsys) == (0, [])


# ------------------------------------------------------------------ column names
def test_misnamed_columns_get_did_you_mean(folder, clean, capsys):
    df = clean.rename(columns={"patient_id": "PatientID", "figo_stage": "FIGO Stage", "cohort": "Cohort",
                               "node_necrosis": "necrosis"})
    df["remarks"] = "none"  # not close to any manifest column: no line
    rc, lines = _cli(_write(folder, "names.csv", df), capsys)
    assert rc == 1
    assert ("error: column patient_id: required column missing from the manifest (did you mean 'PatientID'? "
            "rename it to patient_id)") in lines
    assert ("error: column figo_stage: required column missing from the manifest (did you mean 'FIGO Stage'? "
            "rename it to figo_stage)") in lines
    assert ("error: column node_necrosis: required column missing from the manifest (did you mean 'necrosis'? "
            "rename it to node_necrosis)") in lines
    assert "warning: column Cohort: not a manifest column, not used (did you mean cohort? rename it to cohort)" in lines
    assert not [ln for ln in lines if "remarks" in ln]
    assert len([ln for ln in lines if ln.startswith("error")]) == 3


# ------------------------------------------------------------- 0/1 and categorical codings
def test_lnm_written_yes_no_is_one_line_with_the_mapping(folder, clean, capsys):
    df = clean.copy()
    df["lnm"] = df["lnm"].map({"0": "no", "1": "Yes"})
    df["node_necrosis"] = df["node_necrosis"].map({"0": "false", "1": "true"})
    rc, lines = _cli(_write(folder, "yes_no.csv", df), capsys)
    assert rc == 1
    assert lines == ["error: column lnm: must be 0/1; found 'no' (3), 'Yes' (3): write no -> 0, Yes -> 1",
                     "error: column node_necrosis: must be 0/1; found 'false' (5), 'true' (1): "
                     "write false -> 0, true -> 1"]


def test_lnm_yes_no_at_hospital_scale_is_still_one_line(folder, clean):
    df = _many(clean, 163)
    df["lnm"] = ["yes"] * 80 + ["no"] * 83
    lines = [str(p) for p in validate_manifest(_write(folder, "yes_no_163.csv", df), check_images=False)]
    assert lines == ["error: column lnm: must be 0/1; found 'no' (83), 'yes' (80): write no -> 0, yes -> 1"]


def test_a_single_odd_value_stays_per_patient(folder, clean, capsys):
    df = clean.copy()
    df.loc[4, "lnm"] = "2"
    df.loc[1, "histology"] = "Sarcoma"
    rc, lines = _cli(_write(folder, "odd.csv", df), capsys)
    assert rc == 1
    assert lines == ["error: patient P001, histology: unknown level 'Sarcoma' (expected one of SCC, AC, ASC, Other)",
                     "error: patient P004, lnm: LNM must be 0 or 1, got '2'"]


def test_level_case_is_normalised_with_one_warning_per_column(folder, clean, capsys):
    df = clean.copy()
    df["menopause"] = df["menopause"].str.lower()
    df["histology"] = " scc"
    df["cohort"] = df["cohort"].str.title()
    path = _write(folder, "case.csv", df)
    rc, lines = _cli(path, capsys)
    assert rc == 0
    assert lines == [
        "warning: column menopause: 6 value(s) differing from the levels (No, Yes) only in case or spaces, read as "
        "those levels: 'no' -> 'No' (3), 'yes' -> 'Yes' (3)",
        "warning: column histology: 6 value(s) differing from the levels (SCC, AC, ASC, Other) only in case or "
        "spaces, read as those levels: ' scc' -> 'SCC' (6)",
        "warning: column cohort: 6 value(s) differing from the levels (train, internal, external) only in case or "
        "spaces, read as those levels: 'Train' -> 'train' (2), 'Internal' -> 'internal' (2), "
        "'External' -> 'external' (2)",
    ]
    study = load_study(path)
    assert study["menopause"].tolist() == ["No", "Yes"] * 3
    assert set(study["histology"]) == {"SCC"} and set(study["cohort"]) == {"train", "internal", "external"}


def test_a_level_coded_otherwise_is_one_line_per_value(folder, clean):
    df = _many(clean, 60)
    df["family_history"] = ["1"] * 25 + ["0"] * 30 + ["No"] * 5
    lines = [str(p) for p in validate_manifest(_write(folder, "coded.csv", df), check_images=False)]
    assert len(lines) == 2
    assert lines[0].startswith("error: column family_history: unknown level '0' in 30 patient(s) (Q0025, Q0026, ")
    assert lines[0].endswith("; did you mean 'No'? (expected one of No, Yes)")
    assert lines[1].startswith("error: column family_history: unknown level '1' in 25 patient(s) (Q0000, ")
    assert "did you mean 'Yes'?" in lines[1]


def test_per_patient_lines_are_capped(folder, clean):
    df = _many(clean, 163)
    df["age"] = [str(40 + i % 30) for i in range(163)]
    df.loc[5:, "age"] = "unknown"  # a valid age for 5 patients, none for 158: per patient, capped
    df.loc[0, "lnld_mm"] = "3,5"
    lines = [str(p) for p in validate_manifest(_write(folder, "flood.csv", df), check_images=False)]
    age = [ln for ln in lines if "age" in ln]
    assert len(age) == 21, lines
    assert age[0] == "error: patient Q0005, age: not a number: 'unknown'"
    assert age[-1] == ("error: column age: and 138 more patients with this problem "
                       "(Q0025, Q0026, Q0027, Q0028, Q0029, ...)")
    assert "error: patient Q0000, lnld_mm: not a number: '3,5' (a decimal comma? write 3.5)" in lines


# ---------------------------------------------------------------------- file formats
def test_semicolon_and_decimal_comma_are_read(folder, clean, capsys):
    df = clean.copy()
    for col in ("age", "lnsd_mm", "lnld_mm"):
        df[col] = df[col].str.replace(".", ",", regex=False)
    path = _write(folder, "excel_eu.csv", df, sep=";")
    rc, lines = _cli(path, capsys)
    assert (rc, len(lines)) == (0, 1)
    assert lines[0] == (f"warning: {path}: read as a semicolon-separated file, with decimal commas "
                        "(18 value(s) such as age '41,5' read as 41.5)")
    eu, ref = read_manifest(path, notes=[]), read_manifest(folder / "manifest.csv")
    assert eu.loc[0, "lnsd_mm"] == 12.5 and eu["lnsd_mm"].dtype == float
    pd.testing.assert_frame_equal(eu, ref)
    pd.testing.assert_frame_equal(load_study(path), load_study(folder / "manifest.csv"))


def test_tab_separated_windows_1252_is_read(folder, clean, capsys):
    df = clean.copy()
    df["remarks"] = "Überweisung aus Zürich"
    path = folder / "latin.tsv"
    path.write_bytes(df.to_csv(sep="\t", index=False).encode("cp1252"))
    rc, lines = _cli(path, capsys)
    assert (rc, lines) == (0, [f"warning: {path}: read as a tab-separated file, in Windows-1252 (not UTF-8)"])
    assert read_manifest(path, notes=[])["remarks"].iloc[0] == "Überweisung aus Zürich"


def test_xlsx_reads_like_the_csv(folder, clean, capsys):
    csv_path = folder / "manifest.csv"
    ref = read_manifest(csv_path)
    typed = ref.copy()
    typed["sha256_mask_CET1"] = DIGEST  # stays text, as in a CSV
    typed.loc[0, "patient_id"] = "007"
    xlsx = folder / "manifest.xlsx"
    typed.to_excel(xlsx, index=False)
    rc, lines = _cli(xlsx, capsys)
    assert (rc, lines) == (0, [])
    got = read_manifest(xlsx)
    assert got.loc[0, "patient_id"] == "007" and got["sha256_mask_CET1"].eq(DIGEST).all()
    pd.testing.assert_frame_equal(got.drop(columns=["sha256_mask_CET1"]).iloc[1:], ref.iloc[1:], check_dtype=False)
    assert Path(load_study(xlsx).loc[1, "image_DWI"]).is_file()


def _ods(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")


@pytest.mark.parametrize("name, content, expect", [
    ("empty.csv", b"", "the file is empty"),
    ("blank.csv", b"\n  \n\n", "the file is empty"),
    ("garbage.csv", bytes(range(256)) * 8, "binary data, not a text CSV file"),
    ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, "an Excel 97-2003 workbook (.xls)"),
    ("sheet.ods", None, "an OpenDocument spreadsheet"),
    ("broken.xlsx", b"PK\x03\x04 not really a workbook", "a damaged zip or .xlsx file"),
    ("ragged.csv", b"patient_id,centre,age\nP1,A,50\nP2,A,50,5\n", "line 3 has 4 fields where the header has 3"),
    ("header_only.csv", b"patient_id,centre,scanner,lnm\n", "manifest has no patients"),
])
def test_a_file_that_is_no_manifest_is_one_line(folder, capsys, name, content, expect):
    path = folder / name
    if content is None:
        _ods(path)
    else:
        path.write_bytes(content)
    rc, lines = _cli(path, capsys)
    assert rc == 1
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: {expect}"), lines
    if name != "header_only.csv":
        with pytest.raises(DlrcError, match="^" + str(path).replace(".", r"\.") + ": "):
            read_manifest(path)


# -------------------------------------------------------------------------- paths
def test_backslash_paths_are_read_as_slashes(folder, clean, capsys):
    df = clean.copy()
    for col in [c for c in df if c.startswith(("image_", "mask_"))]:
        df[col] = df[col].str.replace("/", "\\", regex=False)
    path = _write(folder, "windows.csv", df)
    rc, lines = _cli(path, capsys)
    assert (rc, lines) == (0, ["warning: image and mask paths: 36 path(s) written with Windows backslashes read "
                               "with '/' (e.g. P000\\CET1.nii.gz -> P000/CET1.nii.gz)"])
    study = load_study(path)
    assert all(Path(p).is_file() for col in study if col.startswith(("image_", "mask_")) for p in study[col])
    with pytest.warns(UserWarning, match="36 path"):
        assert read_manifest_csv(path)["image_CET1"].iloc[0] == "P000/CET1.nii.gz"


def test_absolute_windows_paths_are_one_line(folder, clean, capsys):
    df = clean.copy()
    for col in [c for c in df if c.startswith(("image_", "mask_"))]:
        df[col] = "C:\\Users\\rad\\study\\" + df[col].str.replace("/", "\\", regex=False)
    rc, lines = _cli(_write(folder, "drive.csv", df), capsys)
    assert rc == 1 and len(lines) == 2, lines
    assert lines[1] == ("error: image and mask paths: 36 path(s) are absolute Windows paths, not found on this "
                        "machine (e.g. C:/Users/rad/study/P000/CET1.nii.gz): write the paths relative to the "
                        "manifest's folder")


def test_new_patients_for_predict_are_read_the_same_way(folder, clean, capsys):
    from dlrc_lib.model.predict import read_new_patients

    df = clean.copy()
    df["lnsd_mm"] = df["lnsd_mm"].str.replace(".", ",", regex=False)
    df["image_CET1"] = df["image_CET1"].str.replace("/", "\\", regex=False)
    path = _write(folder, "new_patients.csv", df, sep=";")
    doc = {"harmonisation": {"batch": "scanner"}, "sequences": ["CET1"], "clinical": {"c_lnm": {}}}
    new = read_new_patients(path, doc)
    said = capsys.readouterr().err.strip().splitlines()  # one line per normalisation, no warning traceback
    assert all(line.startswith("dlrc predict: note: ") for line in said), said
    assert any("semicolon-separated" in m for m in said) and any("6 path(s) written with Windows" in m for m in said)
    assert new.loc["P000", "lnsd_mm"] == 12.5 and new.loc["P000", "c_lnm"] == 1
    assert Path(new.loc["P000", "image_CET1"]).is_file()


# ------------------------------------------------------------- the radiologist's c_LNM
def test_c_lnm_words_are_read_by_the_documented_spellings(folder, clean, capsys):
    df = clean.copy()
    df["c_lnm"] = [" Yes", "neg", "+", "FALSE", "pos", "n"]
    path = _write(folder, "c_lnm_words.csv", df)
    rc, lines = _cli(path, capsys)
    assert rc == 0 and len(lines) == 1, lines
    assert lines[0].startswith("warning: column c_lnm: 6 radiologist's call(s) written as words read as 1/0: "
                               "'Yes' -> 1 (1), 'neg' -> 0 (1), '+' -> 1 (1)")
    study = load_study(path)
    assert study["c_lnm"].tolist() == [1, 0, 1, 0, 1, 0]  # not lnsd_mm >= 10 (which gives 1, 0, 0, 0, 0, 0)
    for word, value in (("Positive", 1), ("y", 1), ("true", 1), ("1", 1), ("Negative", 0), ("NO", 0), ("-", 0),
                        ("0", 0), ("no ", 0)):
        df["c_lnm"] = word
        assert load_study(_write(folder, "c_lnm_one.csv", df))["c_lnm"].tolist() == [value] * N, word


def test_a_c_lnm_that_is_no_call_is_refused_in_one_line(folder, clean, capsys):
    df = clean.copy()
    df["c_lnm"] = ["1", "0", "maybe", "0", "2", "1"]
    path = _write(folder, "c_lnm_bad.csv", df)
    rc, lines = _cli(path, capsys)
    spellings = "1/0, yes/no, y/n, pos/neg, positive/negative, true/false, +/-"
    assert rc == 1 and lines == [
        f"error: patient P002, c_lnm: 'maybe' in {path} is no c_LNM call (write one of {spellings}, in any case; "
        "or leave the cell empty to use lnsd_mm >= 10)",
        f"error: patient P004, c_lnm: '2' in {path} is no c_LNM call (write one of {spellings}, in any case; "
        "or leave the cell empty to use lnsd_mm >= 10)"]
    with pytest.raises(DlrcError, match=r"^patient P002, column c_lnm: 'maybe' in .*c_lnm_bad\.csv is no c_LNM call"):
        load_study(path)  # never silently the size rule


def test_blank_c_lnm_cells_take_the_size_rule_with_a_warning(folder, clean, capsys):
    df = clean.copy()
    df["c_lnm"] = ["", "1", "", "1", "0", "1"]
    path = _write(folder, "c_lnm_blank.csv", df)
    rc, lines = _cli(path, capsys)
    assert (rc, lines) == (0, ["warning: column c_lnm: empty for 2 patient(s) (P000, P002) while given for the "
                               "others: their c_LNM is lnsd_mm >= 10"])
    assert load_study(path)["c_lnm"].tolist() == [1, 1, 0, 1, 0, 1]  # P000: lnsd 12.5 mm; P002: 8 mm


def test_c_lnm_words_reach_predict(folder, clean, capsys):
    from dlrc_lib.model.predict import read_new_patients

    df = clean.copy()
    df["c_lnm"] = ["no", "YES", "-", "+", "negative", "pos"]
    doc = {"harmonisation": {"batch": "scanner"}, "sequences": ["CET1"], "clinical": {"c_lnm": {}}}
    new = read_new_patients(_write(folder, "c_lnm_predict.csv", df), doc)
    assert new["c_lnm"].tolist() == [0, 1, 0, 1, 0, 1]
    df["c_lnm"] = ["no", "YES", "-", "+", "negative", "unclear"]
    with pytest.raises(DlrcError, match=r"patient P005, column c_lnm: 'unclear' in .* is no c_LNM call"):
        read_new_patients(_write(folder, "c_lnm_predict.csv", df), doc)


# ------------------------------------------------------ IDs that Excel stored as numbers
def _workbook(path: Path, df: pd.DataFrame, numbers: dict[int, tuple[int, str]]) -> Path:
    """``df`` as an .xlsx whose patient_id cells in ``numbers`` (row -> (value, number format))
    are numbers, as Excel stores what was typed as 00012 without a Text format."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(list(df.columns))
    for i, rec in enumerate(df.itertuples(index=False)):
        ws.append(list(rec))
        if i in numbers:
            cell = ws.cell(row=i + 2, column=list(df.columns).index("patient_id") + 1)
            cell.value, cell.number_format = numbers[i]
    wb.save(path)
    return path


def test_xlsx_ids_that_lost_their_zeros_are_named(folder, clean):
    df = clean.copy()
    df["patient_id"] = [f"{12 + i:05d}" for i in range(N)]
    for col in [c for c in df if c.startswith(("image_", "mask_"))]:
        df[col] = [f"{pid}/{Path(p).name}" for pid, p in zip(df["patient_id"], clean[col])]
    path = _workbook(folder / "numeric_ids.xlsx", df, {0: (12, "General"), 1: (13, "General")})
    notes: list = []
    got = read_manifest(path, notes=notes)
    assert got["patient_id"].tolist()[:3] == ["12", "13", "00014"]  # read as the sheet has them
    assert notes == [(str(path), "column patient_id: 2 ID(s) are numbers in the workbook and seem to have lost "
                                 "leading zeros (e.g. 12 (paths: 00012), 13 (paths: 00013)); they are read as the "
                                 "sheet has them: format the column as Text in Excel and type the IDs again, or give "
                                 "the cells a zero-padded number format such as 00000")]
    lines = [str(p) for p in validate_manifest(path, check_images=False)]
    assert f"warning: {path}: column patient_id: 2 ID(s) are numbers in the workbook" in lines[0]


def test_xlsx_ids_of_mixed_widths_are_named_without_paths(folder, clean):
    df = clean.copy()
    df["patient_id"] = ["0101", "0102", "0103", "0104", "0105", "0106"]
    path = _workbook(folder / "mixed_ids.xlsx", df, {4: (105, "General"), 5: (106, "General")})
    notes: list = []
    read_manifest(path, notes=notes)
    assert len(notes) == 1 and "2 ID(s) are numbers in the workbook and seem to have lost leading zeros " \
                               "(e.g. 105 (other IDs: 0101), 106 (other IDs: 0101))" in notes[0][1]


def test_xlsx_ids_with_a_zero_padded_format_are_read_as_shown(folder, clean):
    df = clean.copy()
    df["patient_id"] = [f"{12 + i:05d}" for i in range(N)]
    path = _workbook(folder / "formatted_ids.xlsx", df, {i: (12 + i, "00000") for i in range(N)})
    notes: list = []
    assert read_manifest(path, notes=notes)["patient_id"].tolist() == list(df["patient_id"])
    assert notes == [(str(path), "column patient_id: 6 ID(s) stored as numbers with a zero-padded format read as "
                                 "Excel shows them (e.g. 12 -> 00012, 13 -> 00013, 14 -> 00014)")]


def test_plain_numeric_xlsx_ids_are_no_warning(folder, clean):
    df = clean.copy()
    df["patient_id"] = [str(7 + i) for i in range(N)]  # 7 ... 12: numbers of mixed widths, no zeros anywhere
    path = _workbook(folder / "plain_ids.xlsx", df, {i: (7 + i, "General") for i in range(N)})
    notes: list = []
    assert read_manifest(path, notes=notes)["patient_id"].tolist() == [str(7 + i) for i in range(N)]
    assert notes == []


def test_spaces_around_ids_are_removed_and_inner_spaces_kept(folder, clean, capsys):
    df = clean.copy()
    df["patient_id"] = ["  P000", "P 001", "P002 ", "P003", "P004", "P005"]
    path = _write(folder, "spaced_ids.csv", df)
    assert _cli(path, capsys) == (0, [])
    assert load_study(path)["patient_id"].tolist() == ["P000", "P 001", "P002", "P003", "P004", "P005"]
    df.loc[3, "patient_id"] = " P002"
    rc, lines = _cli(_write(folder, "spaced_ids.csv", df), capsys)
    assert rc == 1 and "error: patient P002, patient_id: duplicate patient ID (2 rows)" in lines
