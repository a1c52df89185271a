"""Supplementary Table S1 (dlrc_lib.evaluation.scanner_table): from the twin's scanner table
through the manifest, ranges, absent columns "not given", and the parsers' refusals."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dlrc_lib.core.config import Params
from dlrc_lib.evaluation.scanner_table import NOT_GIVEN, scanner_table
from dlrc_lib.study.manifest import load_study
from dlrc_lib.study.schema import ACQUISITION_COLUMNS, parse_b_values, parse_inplane
from dlrc_lib.twin import generate_study
from dlrc_lib.twin.anatomy import scanner_grid
from dlrc_lib.twin.scanners import SCANNER_BY_NAME, SCANNERS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clinical_twin(tmp_path_factory) -> pd.DataFrame:
    params = Params.model_validate({"published_values": str(ROOT / "params" / "published_values.yaml"),
                                    "study": {"scale": 1.0, "volume_shape": (64, 64, 12)}})
    out = tmp_path_factory.mktemp("twin_clinical")
    return load_study(generate_study(params, out, clinical_only=True, progress=False))


def test_twin_table_s1_is_the_scanner_table(clinical_twin):
    t = scanner_table(clinical_twin)
    assert len(t) == 3 * len(SCANNERS) == 36
    assert list(t["Scanner"].unique()) == sorted(s.name for s in SCANNERS)
    assert t.groupby("Scanner")["Patients"].first().sum() == len(clinical_twin) == 1095
    assert not (t == NOT_GIVEN).to_numpy().any()
    for seq_i, (seq, label) in enumerate((("CET1", "CE-T1WI"), ("DWI", "DWI"), ("T2FS", "FS-T2WI"))):
        for sc in SCANNERS:
            row = t[(t["Scanner"] == sc.name) & (t["Sequence"] == label)].iloc[0]
            assert (row["Vendor"], row["Model"], row["Centre"]) == (sc.vendor, sc.model, sc.centre)
            assert float(row["Field strength (T)"]) == sc.field_t
            assert float(row["TR (ms)"]) == sc.tr_ms[seq_i] and float(row["TE (ms)"]) == sc.te_ms[seq_i]
            sx, sy, sz = scanner_grid(sc, seq, (64, 64, 12)).spacing
            assert float(row["Slice thickness (mm)"]) == pytest.approx(sz, abs=0.005)
            assert row["In-plane resolution (mm)"] == f"{round(sx, 2):g} × {round(sy, 2):g}"
            assert row["b-values (s/mm²)"] == (f"0, {sc.b_value}" if seq == "DWI" else "—")
    # DWI on a coarser grid than CE-T1WI, for every scanner
    for sc in SCANNERS:
        assert scanner_grid(sc, "DWI", (64, 64, 12)).spacing[0] > scanner_grid(sc, "CET1", (64, 64, 12)).spacing[0]


def test_absent_columns_read_not_given_and_varying_values_a_range():
    study = pd.DataFrame({
        "patient_id": ["a", "b", "c"], "centre": ["A", "A", "B"], "scanner": ["S1", "S1", "S2"],
        "scanner_vendor": ["GE", "GE", None], "tr_ms_T2FS": [3000.0, 4200.0, None],
        "inplane_mm_CET1": ["0.7x0.7", "0.7 x 0.7", ""], "dwi_b_values": ["0, 800", "0;800", None],
    })
    t = scanner_table(study).set_index(["Scanner", "Sequence"])
    assert t.loc[("S1", "FS-T2WI"), "TR (ms)"] == "3000–4200"
    assert t.loc[("S1", "CE-T1WI"), "In-plane resolution (mm)"] == "0.7 × 0.7"
    assert t.loc[("S1", "DWI"), "b-values (s/mm²)"] == "0, 800"
    assert t.loc[("S1", "CE-T1WI"), "Vendor"] == "GE"
    for col in ("Vendor", "Model", "Field strength (T)", "TR (ms)", "In-plane resolution (mm)"):
        assert t.loc[("S2", "CE-T1WI"), col] == NOT_GIVEN  # no value for that scanner
    assert t.loc[("S1", "CE-T1WI"), "Model"] == NOT_GIVEN  # column absent from the manifest
    assert t.loc[("S2", "DWI"), "b-values (s/mm²)"] == NOT_GIVEN
    assert (t.xs("CE-T1WI", level="Sequence")["b-values (s/mm²)"] == "—").all()


def test_parsers():
    assert parse_inplane("0.94x0.94") == (0.94, 0.94)
    assert parse_inplane("0.5 × 0.6") == (0.5, 0.6)
    assert parse_inplane(0.8) == (0.8, 0.8)
    assert parse_b_values("0, 800") == (0, 800)
    assert parse_b_values("1000;0 50") == (0, 50, 1000)
    for bad in ("0.9x", "axb", "-1x1", "1x2x3"):
        with pytest.raises(ValueError):
            parse_inplane(bad)
    for bad in ("", "800.5", "-50", "b800"):
        with pytest.raises(ValueError):
            parse_b_values(bad)


def test_acquisition_columns_are_in_the_twin_manifest(clinical_twin):
    assert set(ACQUISITION_COLUMNS) <= set(clinical_twin.columns)
    for _, row in clinical_twin.sample(20, random_state=0).iterrows():
        sc = SCANNER_BY_NAME[row["scanner"]]
        assert row["field_strength_t"] == sc.field_t and row["scanner_model"] == sc.model
