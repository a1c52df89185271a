"""Property test of validation: manifests with random damage (missing or duplicated columns
and IDs, wrong types, out-of-range values, damaged or swapped files). ``dlrc validate``
never raises, exits non-zero exactly when an error-level problem exists, and names every
damaged patient."""
from __future__ import annotations

import contextlib
import io
import itertools
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from dlrc_lib.core.config import Params
from dlrc_lib.run.cli import main
from dlrc_lib.study.validate import validate_manifest

ROOT = Path(__file__).resolve().parents[1]

# value damages: (column, bad value, words of the expected error)
VALUES = [
    ("age", "abc", "not a number"),
    ("age", "-4", "non-negative"),
    ("age", "", "missing required value"),
    ("lnm", "2", "LNM must be 0 or 1"),
    ("lnm", "yes", "LNM must be 0 or 1"),
    ("parity", "1.5", "non-negative integer"),
    ("figo_stage", "IB9", "unknown level"),
    ("histology", "", "missing required value"),
    ("lnsd_mm", "99", "exceeds long axis"),
    ("node_necrosis", "3", "must be 0 or 1"),
    ("cohort", "test", "unknown level"),
]
FILES = ["truncate", "flip", "delete", "swap_image_mask", "nan", "empty_mask", "wrong_label"]
SEQS = ("CET1", "DWI", "T2FS")
COLUMN_DAMAGE = ["drop", "duplicate"]
DROPPABLE = ["menopause", "family_history", "scanner", "mask_T2FS"]

_counter = itertools.count()


def _params(tmp: Path) -> Params:
    return Params.model_validate({
        "published_values": str(ROOT / "params" / "published_values.yaml"),
        "study": {"scale": 0.02, "volume_shape": (24, 24, 6), "icc_cases": 2, "n_jobs": 1},
        "cache_dir": str(tmp / "cache")})


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    from dlrc_lib.twin import generate_study

    root = tmp_path_factory.mktemp("prop")
    p = _params(root)
    manifest = generate_study(p, root / "twin", progress=False)
    df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    for c in df.columns:  # absolute paths: examples' manifests live elsewhere
        if c.startswith(("image_", "mask_")):
            df[c] = [str((manifest.parent / v).resolve()) if v else "" for v in df[c]]
    assert not [x for x in validate_manifest(manifest, p) if x.severity == "error"]
    params_file = root / "params.yaml"
    params_file.write_text(f"cache_dir: {root / 'cache'}\npublished_values: {ROOT / 'params' / 'published_values.yaml'}\n"
                           f"radiomics:\n  settings: {ROOT / 'params' / 'radiomics_quick.yaml'}\nstudy:\n  n_jobs: 1\n")
    return root, df, p, params_file


def _damage_file(src: Path, dst: Path, how: str) -> None:
    if how in ("truncate", "flip"):
        data = bytearray(src.read_bytes())
        if how == "truncate":
            data = data[: len(data) * 3 // 4]
        else:
            data[len(data) // 2] ^= 0xA5
        dst.write_bytes(bytes(data))
        return
    img = sitk.ReadImage(str(src))
    arr = sitk.GetArrayFromImage(img)
    if how == "nan":
        arr = arr.astype(np.float32)
        arr.flat[arr.size // 3] = np.nan
    elif how == "empty_mask":
        arr[:] = 0
    elif how == "wrong_label":
        arr[arr > 0] = 7
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    sitk.WriteImage(out, str(dst), True)


@st.composite
def damages(draw, n_patients: int):
    rows = draw(st.lists(st.integers(0, n_patients - 1), min_size=0, max_size=4, unique=True))
    out = []
    for r in rows:
        kind = draw(st.sampled_from(["value", "file", "dup_id"]))
        if kind == "value":
            out.append(("value", r, draw(st.sampled_from(VALUES))))
        elif kind == "file":
            out.append(("file", r, (draw(st.sampled_from(FILES)), draw(st.sampled_from(SEQS)))))
        else:
            out.append(("dup_id", r, None))
    col = draw(st.one_of(st.none(), st.tuples(st.sampled_from(COLUMN_DAMAGE), st.sampled_from(DROPPABLE))))
    return out, col


@settings(max_examples=20, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_random_damage_is_always_reported(pristine, data):
    root, clean, params, params_file = pristine
    plan, col_damage = data.draw(damages(len(clean)))
    ex = root / f"ex{next(_counter)}"
    ex.mkdir()
    df = clean.copy()
    expect: list[tuple[int, str]] = []  # (row, words) that must appear in an error line naming its patient
    for kind, r, what in plan:
        pid = r
        if kind == "value":
            col, bad, words = what
            if col_damage and col_damage[1] == col:
                continue
            if col == "lnsd_mm":
                df.at[r, "lnld_mm"] = "20"
            df.at[r, col] = bad
            expect.append((pid, words))
        elif kind == "dup_id":
            other = (r + 1) % len(df)
            df.at[r, "patient_id"] = df.at[other, "patient_id"]
        else:
            how, seq = what
            img_col, mask_col = f"image_{seq}", f"mask_{seq}"
            if col_damage and col_damage[1] in (img_col, mask_col):
                continue
            if how == "delete":
                df.at[r, img_col] = str(ex / f"gone_{r}.nii.gz")
                expect.append((pid, "file not found"))
            elif how == "swap_image_mask":
                df.at[r, img_col], df.at[r, mask_col] = df.at[r, mask_col], df.at[r, img_col]
                expect.append((pid, ""))
            else:
                target = img_col if how in ("truncate", "flip", "nan") else mask_col
                dst = ex / f"{r}_{target}.nii.gz"
                _damage_file(Path(df.at[r, target]), dst, how)
                df.at[r, target] = str(dst)
                expect.append((pid, {"truncate": "corrupt compressed file", "flip": "corrupt compressed file",
                                     "nan": "non-finite voxel", "empty_mask": "empty mask",
                                     "wrong_label": "labels other than 0/1"}[how]))
    study_wide = []
    if col_damage:
        how, col = col_damage
        if how == "drop":
            df = df.drop(columns=[col])
            study_wide.append(f"column {col}: required column missing")
        else:
            df.insert(len(df.columns), col + "__dup", df[col])
            study_wide.append(f"column {col}: appears 2 times")
    manifest = ex / "manifest.csv"
    text = df.to_csv(index=False)
    if col_damage and col_damage[0] == "duplicate":
        text = text.replace(col_damage[1] + "__dup", col_damage[1], 1)
    manifest.write_text(text)

    problems = validate_manifest(manifest, params)  # never raises
    lines = [str(p) for p in problems]
    errors = [ln for ln in lines if ln.startswith("error")]
    final = df["patient_id"]
    named = [(final.iloc[r], words) for r, words in expect]
    named += [(pid, "duplicate patient ID") for pid in final[final.duplicated()].unique()]
    expect = named
    for pid, words in expect:
        assert any(ln.startswith(f"error: patient {pid}, ") and words in ln for ln in errors), (pid, words, lines)
    for words in study_wide:
        assert any(words in ln for ln in errors), (words, lines)

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        rc = main(["validate", str(manifest), "--params", str(params_file)])
    printed = [ln for ln in buf.getvalue().splitlines() if ln.startswith("error")]
    assert rc == (1 if printed else 0)
    assert bool(printed) == bool(errors)
    assert bool(expect or study_wide) <= bool(errors)  # damage always fails
    shutil.rmtree(ex, ignore_errors=True)
