"""SRA rule, Table 5 / Table 2 SRA values and the McNemar test."""
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pytest
import yaml

from dlrc_lib import stats
from dlrc_lib.core.config import SraParams
from dlrc_lib.study.schema import COHORTS
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.evaluation.sra import (
    diagnostic_table, metrics_row, format_table5, mcnemar_table, mcnemar_test, sra_predict,
    table2_sra_rows, table5_rows,
)
from dlrc_lib.study import keys as K
from tests.eval_data import make_predictions

PUBLISHED = yaml.safe_load(Path("params/published_values.yaml").read_text())


def _nodes(rows):
    return pd.DataFrame(rows, columns=["lnsd_mm", "lnld_mm", "node_necrosis"],
                        index=[f"P{i:03d}" for i in range(len(rows))])


def test_rule_edge_cases():
    df = _nodes([
        (10.0, 20.0, 0),   # short axis exactly 10 mm -> positive
        (9.9, 20.0, 0),    # just below, elongated -> negative
        (4.0, 9.0, 1),     # small but central necrosis -> positive
        (8.0, 10.0, 0),    # ratio exactly 0.8 (not > 0.8) -> negative
        (8.8, 11.0, 0),    # 8.8/11 is 0.8 up to float noise -> negative
        (8.0, 9.9, 0),     # ratio 0.808 and >= 8 mm -> positive
        (7.9, 8.0, 0),     # round but below 8 mm -> negative
        (9.0, 9.0, 0),     # perfectly round, 9 mm -> positive
        (0.0, 0.0, 0),     # no measurable node -> negative
    ])
    assert sra_predict(df, SraParams()).tolist() == [1, 0, 1, 0, 0, 1, 0, 1, 0]
    assert sra_predict(df, SraParams()).index.equals(df.index)
    # thresholds come from the parameters
    strict = SraParams(short_axis_mm=12.0, borderline_mm=9.5, ratio=0.9)
    assert sra_predict(df, strict).tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("rows, message", [
    ([(np.nan, 10.0, 0)], "lnsd_mm: missing or non-numeric value for patient(s) P000"),
    ([(8.0, 10.0, 0), (9.0, 7.0, 0)], "long axis shorter than the short axis (lnsd_mm) for patient(s) P001"),
    ([(8.0, 10.0, 2)], "node_necrosis: not 0/1 for patient(s) P000"),
    ([(-1.0, 10.0, 0)], "lnsd_mm: negative diameter for patient(s) P000"),
])
def test_rule_refuses_bad_input(rows, message):
    with pytest.raises(DlrcError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sra_predict(_nodes(rows), SraParams())


def test_rule_missing_column():
    with pytest.raises(DlrcError, match="missing column"):
        sra_predict(pd.DataFrame({"lnsd_mm": [1.0]}), SraParams())


def counts_table(  # the published counts as the long table of diagnostic_table
        implied: dict, models: Iterable[str] = ("DLRC", "SRA")) -> pd.DataFrame:
    """The long table of :func:`diagnostic_table` from ``[TP, FN, TN, FP]`` counts.

    ``implied`` is shaped like ``published_values.yaml``'s ``implied_confusion`` block:
    ``{model: {cohort: {subgroup: [TP, FN, TN, FP]}}}``.
    """
    rows = []
    for model in models:
        for coh in COHORTS:
            for sub, vals in implied[model][coh].items():
                m = stats.metrics_from_counts(*vals)
                rows.append({"subgroup": sub, "cohort": coh, "model": model, "n": int(sum(vals)),
                             **metrics_row(m)})
    return pd.DataFrame(rows)


def test_table5_from_published_counts_gives_printed_values():
    implied = PUBLISHED["implied_confusion"]
    long = counts_table({m: {c: {s: v for s, v in implied[m][c].items() if s != "all"} for c in implied[m]}
                         for m in implied})
    rep = K.values(table5_rows(long))
    expected = {f"table5.{sub}.{coh}.{model}.{k}": v
                for sub, cohs in PUBLISHED["table5"].items() for coh, models in cohs.items()
                for model, vals in models.items() for k, v in vals.items()}
    assert rep == expected  # every percentage to the printed decimal; 0/0 -> null
    shown = format_table5(long)
    assert list(shown.columns) == ["Subcohort", "Cohort", "Model/SRA", "ACC", "SEN", "SPE", "PPV", "NPV"]
    ge10 = shown[shown["Subcohort"] == "LNSD \u2265 10 mm"]
    # the paper prints 0/0 for the NPV of every all-positive subgroup but DLRC external
    assert ge10["NPV"].tolist() == ["0/0", "0/0", "0/0", "0/0", "100.0%", "0/0"]
    row = shown[(shown["Subcohort"] == "LNSD < 10 mm") & (shown["Cohort"] == "External validation")
                & (shown["Model/SRA"] == "DLRC")].iloc[0]
    assert row[["ACC", "SEN", "SPE", "PPV", "NPV"]].tolist() == ["78.1%", "43.3%", "89.5%", "57.4%", "82.8%"]


def test_table2_sra_from_published_counts():
    implied = PUBLISHED["implied_confusion"]
    long = counts_table({"SRA": {c: {"all": implied["SRA"][c]["all"]} for c in implied["SRA"]}}, models=["SRA"])
    expected = {f"table2.{c}.SRA.{k}": v for c in ("train", "internal", "external")
                for k, v in PUBLISHED["table2"][c]["SRA"].items()}
    assert K.values(table2_sra_rows(long)) == expected


def test_diagnostic_table_subgroups_partition_patients():
    df = make_predictions(scale=0.3, seed=3)
    df["SRA"] = sra_predict(df, SraParams())
    df["DLRC"] = (df["prob_dlrc"] >= 0.35).astype(int)
    allrows = diagnostic_table(df, {"DLRC": "DLRC", "SRA": "SRA"})
    sub = diagnostic_table(df, {"DLRC": "DLRC", "SRA": "SRA"}, subgroup_mm=10.0)
    assert set(sub["subgroup"]) == {"lnsd_below_10mm", "lnsd_10mm_or_more"}
    summed = sub.groupby(["cohort", "model"])[["TP", "FN", "TN", "FP"]].sum()
    pd.testing.assert_frame_equal(summed, allrows.set_index(["cohort", "model"])[["TP", "FN", "TN", "FP"]]
                                  .loc[summed.index])
    # SRA calls every node >= 10 mm positive: its specificity there is 0 (or 0/0)
    ge = sub[(sub["subgroup"] == "lnsd_10mm_or_more") & (sub["model"] == "SRA")]
    assert (ge["TN"] == 0).all()


def test_mcnemar_matches_r():
    # R: mcnemar.test(matrix(c(30, 12, 3, 10), 2))  -> X2 = 4.266667, p = 0.0388671
    first = np.array([1] * 30 + [0] * 12 + [1] * 3 + [0] * 10, bool)
    second = np.array([1] * 30 + [1] * 12 + [0] * 3 + [0] * 10, bool)
    res = mcnemar_test(first, second, method="chisq")
    assert (res.b, res.c) == (3, 12)
    assert res.statistic == pytest.approx(4.266667, abs=1e-6)
    assert res.pvalue == pytest.approx(0.0388671, abs=1e-7)
    # R: binom.test(12, 15, 0.5)$p.value (= exact2x2::mcnemar.exact) -> 0.03515625
    ex = mcnemar_test(first, second, method="auto", exact_below=25)
    assert ex.method == "exact binomial" and ex.pvalue == pytest.approx(0.03515625, abs=1e-12)
    # R: mcnemar.test(matrix(c(100, 40, 25, 50), 2)) -> X2 = 3.015385, p = 0.08247789
    f2 = np.array([1] * 100 + [0] * 40 + [1] * 25 + [0] * 50, bool)
    s2 = np.array([1] * 100 + [1] * 40 + [0] * 25 + [0] * 50, bool)
    big = mcnemar_test(f2, s2)
    assert big.method.startswith("chi-square")
    assert big.statistic == pytest.approx(3.015385, abs=1e-6) and big.pvalue == pytest.approx(0.08247789, abs=1e-8)
    # R: binom.test(7, 7)$p.value -> 0.015625; binom.test(3, 6)$p.value -> 1
    assert mcnemar_test([1] * 7, [0] * 7).pvalue == pytest.approx(0.015625)
    assert mcnemar_test([1] * 3 + [0] * 3, [0] * 3 + [1] * 3).pvalue == 1.0
    none = mcnemar_test([1, 0], [1, 0])
    assert np.isnan(none.pvalue) and none.method == "no discordant pairs"


def test_mcnemar_table_per_cohort():
    df = make_predictions(scale=0.3, seed=3)
    df["SRA"] = sra_predict(df, SraParams())
    df["DLRC"] = (df["prob_dlrc"] >= 0.35).astype(int)
    tab = mcnemar_table(df, "DLRC", "SRA")
    assert len(tab) == 6 and set(tab["measure"]) == {"sensitivity", "specificity"}
    pos = df[(df.cohort == "train") & (df.lnm == 1)]
    row = tab[(tab.cohort == "train") & (tab.measure == "sensitivity")].iloc[0]
    assert row["DLRC"] == pytest.approx(100 * pos["DLRC"].mean())
    assert row["DLRC only correct"] == int(((pos.DLRC == 1) & (pos.SRA == 0)).sum())



def test_sra_on_clinical_twin_equals_paper():
    """The twin's node columns give the paper's SRA rows of Tables 2 and 5 exactly (what
    ``dlrc synth --clinical-only`` writes, at paper scale)."""
    from dlrc_lib.core.config import Params
    from dlrc_lib.twin import build_clinical_table

    params = Params()
    df = build_clinical_table(params).set_index("patient_id")
    df["SRA"] = sra_predict(df, params.sra)
    assert (df["c_lnm"] == (df["lnsd_mm"] >= params.sra.subgroup_mm)).all()
    rep = K.values(table2_sra_rows(diagnostic_table(df, {"SRA": "SRA"})))
    rep.update(K.values(table5_rows(diagnostic_table(df, {"SRA": "SRA"}, subgroup_mm=params.sra.subgroup_mm))))
    expected = {f"table2.{c}.SRA.{k}": v for c in ("train", "internal", "external")
                for k, v in PUBLISHED["table2"][c]["SRA"].items()}
    expected.update({f"table5.{sub}.{coh}.SRA.{k}": v for sub, cohs in PUBLISHED["table5"].items()
                     for coh, models in cohs.items() for k, v in models["SRA"].items()})
    assert rep == expected
