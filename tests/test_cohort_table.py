"""Table 1 and Fig. 1 builders (dlrc_lib.evaluation.cohort_table)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from dlrc_lib.evaluation import cohort_table as CT
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.reporting.report import flatten_published
from dlrc_lib.study import keys as K

PUBLISHED = yaml.safe_load(open("params/published_values.yaml"))
PARITY_VALUE = {"0": (0,), "1-2": (1, 2), "3-4": (3, 4), ">=5": (5, 6, 7)}


def study_from_published(seed: int = 0) -> pd.DataFrame:
    """A study table (contract of dlrc_lib.study.manifest) whose categorical counts per cohort and
    LNM status are exactly the published Table 1 counts; ages are random."""
    rng = np.random.default_rng(seed)
    t1 = PUBLISHED["table1"]
    rows = []
    for cohort in CT.COHORTS:
        for g in (0, 1):
            n = t1["n"][cohort][g]
            cols = {}
            for var, block in t1["categorical"].items():
                vals = []
                for level, per in block["levels"].items():
                    vals += [level] * per[cohort][g]
                assert len(vals) == n
                cols[var] = vals
            for i in range(n):
                rows.append({
                    "patient_id": f"{cohort[:2].upper()}{g}{i:03d}",
                    "centre": "A" if cohort != "external" else "BCDE"[i % 4],
                    "scanner": "S1", "cohort": cohort, "lnm": g,
                    "age": float(rng.integers(30, 70)),
                    "parity": PARITY_VALUE[cols["parity"][i]][i % len(PARITY_VALUE[cols["parity"][i]])],
                    "menopause": cols["menopause"][i],
                    "age_at_menopause": float(rng.integers(44, 56)) if cols["menopause"][i] == "Yes" else np.nan,
                    "family_history": cols["family_history"][i],
                    "figo_stage": cols["figo_stage"][i],
                    "histology": cols["histology"][i],
                    "lnsd_mm": 12.0 if cols["c_lnm"][i] == "Yes" else 5.0,
                    "lnld_mm": 14.0, "node_necrosis": 0,
                    "c_lnm": 1 if cols["c_lnm"][i] == "Yes" else 0,
                })
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def paper_study():
    return study_from_published()


@pytest.fixture(scope="module")
def paper_t1(paper_study):
    return CT.compute_table1(paper_study)


def test_reproduces_every_published_categorical_number(paper_t1):
    rep = K.values(CT.table1_rows(paper_t1))
    pub = flatten_published(PUBLISHED)
    cat_keys = [k for k in pub if k.startswith("table1.categorical.") or k.startswith("table1.n.")] + ["table1.lnm_rate_p"]
    assert len(cat_keys) == 3 + 1 + 18 + 3 * sum(len(b["levels"]) for b in PUBLISHED["table1"]["categorical"].values())
    for key in cat_keys:
        assert rep[key] == pub[key], key
    # every reproduced key is a published path
    assert set(rep) <= set(pub)
    assert {k for k in pub if k.startswith("table1.")} == set(rep)


def test_table_layout_matches_paper(paper_study, paper_t1):
    tab = CT.build_table1(paper_study, paper_t1)
    feats = tab["Clinical feature"].str.strip().tolist()
    assert feats[:3] == ["N", "Age", "Parity"]
    assert feats.index("Age at menopause") == feats.index("Menopause") + 3
    assert feats[-5:] == ["Histological subtype", "SCC", "AC", "ASC", "Other"]
    row = tab[tab["Clinical feature"].str.strip() == "0"].iloc[0]
    assert row["Training LNM(−)"] == "12 (3.6%)" and row["Training LNM(+)"] == "8 (5.4%)"
    assert tab.iloc[0]["Training LNM(−)"] == "N = 332"
    figo = tab[tab["Clinical feature"] == "FIGO stage"].iloc[0]
    assert figo["Training p-value"] == "< 0.001" and figo["Internal validation p-value"] == "0.002"
    parity = tab[tab["Clinical feature"] == "Parity"].iloc[0]
    assert parity["Internal validation p-value"] == "0.019" and parity["Internal validation test"] == "Fisher's exact test"
    # the empty level stays in the table (0 (0.0%)) but not in the test
    other = tab[tab["Clinical feature"].str.strip() == "Other"].iloc[0]
    assert other["Internal validation LNM(−)"] == "0 (0.0%)"
    hist = tab[tab["Clinical feature"] == "Histological subtype"].iloc[0]
    assert hist["Internal validation test"] == "Chi-squared test" and hist["Internal validation p-value"] == "0.028"


def test_lnm_rate_table(paper_study, paper_t1):
    rates = CT.lnm_rate_table(paper_study, paper_t1)
    assert rates["N"].tolist() == [481, 204, 410]
    assert rates.loc[0, "p-value"] == "1.000" and rates.loc[0, "test"] == "Chi-squared test"


def _ages_frame(ages):
    rows = []
    for i, (age, lnm) in enumerate(ages):
        rows.append({"patient_id": f"P{i}", "centre": "A", "scanner": "S", "cohort": "train", "lnm": lnm,
                     "age": age, "parity": 1, "menopause": "No", "age_at_menopause": np.nan,
                     "family_history": "No", "figo_stage": "IB1", "histology": "SCC", "lnsd_mm": 3.0,
                     "lnld_mm": 4.0, "node_necrosis": 0, "c_lnm": 0})
    return pd.DataFrame(rows)


def test_normal_variable_is_mean_sd_and_student_t():
    """compareGroups, method = NA: shapiro.test(c(50,49,52,53,55,48,51,52.5,60,61,40)) p = 0.568
    -> normal: mean (SD) and t.test(age ~ lnm, var.equal = TRUE) p = 0.57240838672."""
    neg = [50, 49, 52, 53, 55, 48, 51, 52.5]
    df = _ages_frame([(a, 0) for a in neg] + [(60, 1), (61, 1), (40, 1)])
    t = CT.compute_table1(df)
    test = t.tests.set_index(["variable", "cohort"]).loc[("age", "train")]
    assert test["method"] == "t-test" and test["p"] == pytest.approx(0.57240838672, rel=1e-9)
    age = CT.build_table1(df, t).query("`Clinical feature` == 'Age'").iloc[0]
    assert age["Training LNM(−)"] == "51.3 (2.3)"  # mean 51.3125, sd 2.282503


def test_continuous_summary_uses_r_quantiles():
    rows = []
    # 95: shapiro.test p = 5.2e-05 -> non-normal, median [Q1; Q3] and Kruskal-Wallis
    for i, (age, lnm) in enumerate([(50, 0), (49, 0), (52, 0), (53, 0), (55, 0), (48, 0), (51, 0), (52.5, 0),
                                    (60, 1), (61, 1), (95, 1)]):
        rows.append({"patient_id": f"P{i}", "centre": "A", "scanner": "S", "cohort": "train", "lnm": lnm,
                     "age": age, "parity": 1, "menopause": "No", "age_at_menopause": np.nan,
                     "family_history": "No", "figo_stage": "IB1", "histology": "SCC", "lnsd_mm": 3.0,
                     "lnld_mm": 4.0, "node_necrosis": 0, "c_lnm": 0})
    df = pd.DataFrame(rows)
    t = CT.compute_table1(df)
    tab = CT.build_table1(df, t)
    # quantile(c(50,49,52,53,55,48,51,52.5), c(.5,.25,.75)) = 51.5 49.75 52.625
    age = tab[tab["Clinical feature"] == "Age"].iloc[0]
    assert age["Training LNM(−)"] == "51.5 [49.8; 52.6]"
    # cohorts without patients get no columns (and no errors)
    assert not [c for c in tab.columns if c.startswith(("Internal", "External"))]
    rep = K.values(CT.table1_rows(t))
    assert rep["table1.age.train.neg"] == [51.5, 49.8, 52.6]


def test_bad_study_names_patient_and_column(paper_study):
    bad = paper_study.copy()
    bad.loc[5, "cohort"] = "validation"
    with pytest.raises(DlrcError, match=r"patient .*column cohort"):
        CT.compute_table1(bad)
    bad = paper_study.copy()
    bad.loc[7, "figo_stage"] = "IIIC"
    with pytest.raises(DlrcError, match=r"column figo_stage: 'IIIC'"):
        CT.compute_table1(bad)
    with pytest.raises(DlrcError, match="column"):
        CT.compute_table1(paper_study.drop(columns=["histology"]))


def test_flow_counts_and_diagram(paper_study):
    excl = {"Reason one": 400, "Reason two": 44}
    f = CT.flow_counts(paper_study, excl)
    assert f["enrolled"] == 1539 and f["included"] == 1095 and f["n_excluded"] == 444
    assert f["cohorts"] == {c: PUBLISHED["table1"]["n"][c] for c in CT.COHORTS}
    assert f["centre_to_cohort"][("A", "train")] == 481 and f["centre_to_cohort"][("A", "internal")] == 204
    fig = CT.flow_diagram(paper_study, excl)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "n = 1539" in texts and "Excluded (n = 444)" in texts and "LNM(+) n = 149" in texts
    with pytest.raises(DlrcError, match="negative"):
        CT.flow_counts(paper_study, {"x": -1})


def test_styled_html(paper_study, paper_t1):
    html = CT.styled_table1_html(CT.build_table1(paper_study, paper_t1), caption="Table 1")
    assert 'colspan="4">Training<' in html and 'class="sig"' in html and "<caption>Table 1</caption>" in html


def test_deterministic(paper_study):
    a = CT.build_table1(paper_study)
    b = CT.build_table1(paper_study.sample(frac=1.0, random_state=3))
    pd.testing.assert_frame_equal(a, b)


def test_twin_study_reproduces_every_categorical_number(tmp_path):
    """The paper-scale twin (clinical columns only, generated in well under a second) gives
    every published Table 1 count, categorical p-value and the LNM-rate p-value."""
    from dlrc_lib.core.config import Params
    from dlrc_lib.study.manifest import load_study
    from dlrc_lib.twin.writer import generate_study

    params = Params(run_name="paper")
    manifest = generate_study(params, tmp_path / "twin", clinical_only=True, progress=False)
    t = CT.compute_table1(load_study(manifest))
    rep = K.values(CT.table1_rows(t))
    pub = flatten_published(PUBLISHED)
    keys = [k for k in pub if k.startswith(("table1.categorical.", "table1.n."))] + ["table1.lnm_rate_p"]
    assert {k: rep[k] for k in keys} == {k: pub[k] for k in keys}
