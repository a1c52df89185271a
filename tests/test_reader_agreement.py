"""Inter-reader agreement of the node measurements (dlrc_lib.evaluation.reader_agreement)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlrc_lib import stats as S
from dlrc_lib.core.config import Params
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.evaluation import reader_agreement as RA

SRA = Params().sra


def _study():
    # patient: final (= reader 1) reading, reader 2's reading
    rows = [
        # id   cohort      sd1   ld1  n1   sd2   ld2  n2
        ("p1", "train", 4.0, 6.0, 0, 4.4, 6.3, 0),
        ("p2", "train", 11.0, 14.0, 0, 9.6, 13.0, 0),  # c_LNM and SRA differ (9.6/13 < 0.8)
        ("p3", "train", 6.0, 9.0, 1, 6.2, 9.5, 0),  # SRA differs through necrosis only
        ("p4", "internal", 8.5, 10.0, 0, 8.4, 10.0, 0),  # both round borderline: SRA agrees
        ("p5", "internal", 3.0, 5.0, 0, np.nan, np.nan, np.nan),  # not read by reader 2
        ("p6", "external", 12.0, 15.0, 0, 12.5, 15.0, 0),
        ("p7", "external", 5.0, 8.0, 0, 5.5, 8.2, 0),
    ]
    return pd.DataFrame(rows, columns=["patient_id", "cohort", "lnsd_mm", "lnld_mm", "node_necrosis",
                                       "lnsd_mm_r2", "lnld_mm_r2", "node_necrosis_r2"])


def test_calls_and_agreement_by_hand():
    study = _study()
    assert RA.has_second_reader(study)
    calls = RA.reader_calls(study, SRA)
    assert list(calls.index) == ["p1", "p2", "p3", "p4", "p6", "p7"]  # p5 has no reader-2 reading
    assert calls["c_lnm_r1"].tolist() == [0, 1, 0, 0, 1, 0]
    assert calls["c_lnm_r2"].tolist() == [0, 0, 0, 0, 1, 0]
    assert calls["sra_r1"].tolist() == [0, 1, 1, 1, 1, 0]
    assert calls["sra_r2"].tolist() == [0, 0, 0, 1, 1, 0]
    t = RA.agreement_table(calls).set_index("measure")
    r1 = np.array([4.0, 11.0, 6.0, 8.5, 12.0, 5.0])
    r2 = np.array([4.4, 9.6, 6.2, 8.4, 12.5, 5.5])
    icc = S.icc(np.column_stack([r1, r2]))
    assert t.loc["LNSD (mm)", ["estimate", "lower", "upper"]].tolist() == pytest.approx([icc.icc, icc.lower, icc.upper])
    assert t.loc["LNSD (mm)", "mean_difference"] == pytest.approx(np.mean(r2 - r1))
    sd = np.std(r2 - r1, ddof=1)
    assert t.loc["LNSD (mm)", "loa_upper"] == pytest.approx(np.mean(r2 - r1) + 1.96 * sd)
    # SRA: agreement 4/6; kappa from the 2x2 [[2, 0], [2, 2]] (rows reader 1 = 0/1)
    # p_o = 4/6, p_e = (2/6)(4/6) + (4/6)(2/6) = 4/9, kappa = (2/3 - 4/9)/(5/9) = 0.4
    assert t.loc["SRA call", "estimate"] == pytest.approx(0.4)
    assert t.loc["SRA call", "agreement_pct"] == pytest.approx(100 * 4 / 6)
    assert t.loc["SRA call", "discordant"] == 2
    assert t.loc["c_LNM call (LNSD >= 10 mm)", "discordant"] == 1
    assert t.loc["Central necrosis", "n"] == 6
    k = S.cohen_kappa(calls["c_lnm_r1"], calls["c_lnm_r2"])
    assert t.loc["c_LNM call (LNSD >= 10 mm)", "estimate"] == pytest.approx(k.kappa)


def test_consensus_counts():
    calls = RA.reader_calls(_study(), SRA)
    c = RA.consensus_table(calls).set_index("cohort")
    assert c.loc["train", ["read_by_both", "c_lnm_discordant", "sra_discordant", "adjudicated"]].tolist() == [3, 1, 2, 2]
    assert c.loc["internal", "read_by_both"] == 1 and c.loc["internal", "adjudicated"] == 0
    assert c.loc["total", "adjudicated"] == 2
    # final reading = reader 1's: every SRA discordance was settled as reader 1 read it
    assert c.loc["total", ["final_sra_as_reader1", "final_sra_as_reader2"]].tolist() == [2, 0]


def test_reader1_columns_when_the_final_reading_is_a_consensus():
    study = _study()
    # reader 1's own reading of p2 was 9.8 mm (final 11.0 after consensus)
    study["lnsd_mm_r1"], study["lnld_mm_r1"], study["node_necrosis_r1"] = study["lnsd_mm"], study["lnld_mm"], study["node_necrosis"]
    study.loc[1, "lnsd_mm_r1"] = 9.8
    calls = RA.reader_calls(study, SRA)
    assert calls.loc["p2", "c_lnm_r1"] == 0 and calls.loc["p2", "c_lnm_final"] == 1
    c = RA.consensus_table(calls).set_index("cohort")
    assert c.loc["train", "c_lnm_discordant"] == 0  # the readers agreed on p2's c_LNM call
    assert c.loc["train", "sra_discordant"] == 1  # p3 (necrosis)


def test_without_a_second_reader():
    study = _study().drop(columns=["lnsd_mm_r2"])
    assert not RA.has_second_reader(study)
    with pytest.raises(DlrcError, match="lnsd_mm_r2"):
        RA.reader_calls(study, SRA)
    one = _study().iloc[:1]
    with pytest.raises(DlrcError, match="at least 2"):
        RA.agreement_table(RA.reader_calls(one, SRA))
