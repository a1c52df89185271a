"""The reproduction verdict on fabricated run folders: every rule's holds / fails path, the
not-testable paths (missing values, random network weights), inputs and calibrated values
never counted as reproduced, HTML escaping, and mistakes in the claims file."""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from claimsdata import decision_curves, make_run

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.reporting.report import compare_with_paper, flatten_published, load_published
from dlrc_lib.stats import replication as R
from dlrc_lib.reporting import claims as C
from dlrc_lib.reporting.index_page import render_index, write_index

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "params" / "published_values.yaml"
CLAIMS = ROOT / "params" / "claims.yaml"


def by_id(df: pd.DataFrame) -> pd.DataFrame:
    return df.set_index("id")


def test_claims_file_expands_to_enough_claims():
    settings, claims = C.load_claims(CLAIMS)
    ids = [c["id"] for c in claims]
    assert len(ids) == len(set(ids)) >= 15
    assert {"auc.radiomics.train", "auc.ResNet152_3D.external", "dlrc_highest.internal", "delong.dlrc_vs_dl.external",
            "dl.best_is_2d", "dl.2d_vs_3d.101", "calibration.hl.external", "dca.treat.train", "sra.small_nodes.external",
            "features.radiomics_mix", "dlrc.terms_clnm_rad", "input.table1_lnm_train"} <= set(ids)
    assert settings["alpha"] == 0.05


#: claims that even the paper's own cohort sizes cannot decide when the run repeats the paper's
#: numbers: two 3D networks' external AUCs (0.589 and 0.554: their prediction intervals reach 0.5)
#: and the internal cohort's specificity margin (+9.2 points, SE 3.5 on 141 LNM-negative patients:
#: the interval -0.6 to +19.0 includes no difference)
PAPER_TOO_SMALL = {"auc.ResNet101_3D.external", "auc.ResNet152_3D.external", "sra.specificity.internal"}


def test_every_rule_holds_when_the_run_reproduces_the_paper(tmp_path):
    """A (non-twin) run with the published numbers: every claim holds, through every rule, except
    those the paper's own sample cannot decide, which are too small to tell."""
    df = C.evaluate_claims(make_run(tmp_path))
    assert set(df.columns) >= {"id", "claim", "source", "published", "reproduced", "verdict", "reason"}
    bad = df[df["verdict"] != C.HOLDS]
    assert set(bad["id"]) == PAPER_TOO_SMALL, bad[["id", "verdict", "reason"]].to_string()
    assert (bad["verdict"] == C.TOO_SMALL).all() and not bad["counted"].any()
    assert df[df["verdict"] == C.HOLDS]["counted"].all()
    assert set(df["rule"]) == set(C.RULES)
    # the reason of an AUC that cannot be told says how many patients would do, or that none would
    reasons = df.set_index("id")["reason"]
    assert "includes 0.5" in reasons["auc.ResNet101_3D.external"]
    assert "about 450 patients (~139 LNM) would make it testable" in reasons["auc.ResNet101_3D.external"]
    assert "no cohort size would do" in reasons["auc.ResNet152_3D.external"]


def test_fails_paths(tmp_path):
    change = {
        "table2.train.radiomics.auc": [0.60, 0.55, 0.65],          # outside the paper's CI
        "calibration_hosmer_lemeshow_p.internal": 0.01,           # poorly calibrated
        "table4.DLRC_vs_radiomics.internal": 0.002,               # paper: 0.312 (not significant)
        "table2.external.DLRC.auc": [0.70, 0.65, 0.75],           # DLRC no longer the highest
        "table3.internal.ResNet101_2D.auc": [0.80, 0.75, 0.85],   # order of 2D vs 3D flips
        "table5.lnsd_below_10mm.train.DLRC.sen": 30.0,            # +20.8 points only
        "table2.train.DLRC.spe": 60.0,                            # 37 points below SRA: far from 11.2
        "table2.internal.DLRC.sen": 30.0,                         # below SRA's 33.3
        "selected_features.radiomics_count": 12,
        "selected_features.radiomics_top": "DWI_original_firstorder_Mean",
    }
    run = make_run(tmp_path, change=change, selected=["CET1_original_x_y", "DWI_original_x_y", "CET1_wavelet-HLH_x_y"],
                   terms=("DL_score", "Rad_score"), curves=decision_curves({"external": 0.5}))
    df = by_id(C.evaluate_claims(run))
    for cid in ("auc.radiomics.train", "calibration.hl.internal", "delong.dlrc_vs_radiomics.internal",
                "dlrc_highest.external", "auc.DLRC.external", "dl.2d_vs_3d.101", "sra.small_nodes.train",
                "sra.specificity.train", "sra.sensitivity.internal", "features.radiomics_count",
                "features.radiomics_mix", "features.radiomics_top_sequence", "dlrc.terms_clnm_rad",
                "dca.treat.external", "dca.radiomics.external", "dca.dl.external"):
        assert df.loc[cid, "verdict"] == C.FAILS, (cid, df.loc[cid].to_dict())
        assert df.loc[cid, "counted"]
    assert "outside the 95 % prediction interval 0.668–0.792" in df.loc["auc.radiomics.train", "reason"]
    assert "not kept: c_LNM" in df.loc["dlrc.terms_clnm_rad", "reason"]
    assert "not above at 0.50–0.60" == df.loc["dca.treat.external", "reproduced"]
    assert "above Treat all at" in df.loc["dca.treat.external", "reason"]
    # what was not changed still holds
    for cid in ("auc.radiomics.internal", "calibration.hl.train", "dca.treat.train", "dl.2d_vs_3d.50"):
        assert df.loc[cid, "verdict"] == C.HOLDS


def test_missing_values_are_not_testable_with_the_reason(tmp_path):
    run = make_run(tmp_path, drop=("table2.internal.DLRC.auc",), change={"calibration_hosmer_lemeshow_p.external": None})
    (run / "data" / "decision_curves.parquet").unlink()
    df = by_id(C.evaluate_claims(run))
    row = df.loc["auc.DLRC.internal"]
    assert row["verdict"] == C.NOT_TESTABLE and "table2.internal.DLRC.auc" in row["reason"]
    assert row["published"] == "0.789 (0.721–0.857)" and row["reproduced"] == "not produced"
    assert df.loc["calibration.hl.external", "verdict"] == C.NOT_TESTABLE
    assert "decision_curves" in df.loc["dca.treat.train", "reason"]
    assert not df.loc["auc.DLRC.internal", "counted"]


@pytest.mark.parametrize("weights,fallback,words", [("random", True, "ImageNet weights not available"),
                                                     ("random", False, "deep.weights asked for them")])
def test_random_weights_make_every_deep_claim_not_testable(tmp_path, weights, fallback, words):
    df = by_id(C.evaluate_claims(make_run(tmp_path, weights=weights, fallback=fallback)))
    _, claims = C.load_claims(CLAIMS)
    deep = {c["id"] for c in claims if c.get("deep")}
    assert len(deep) >= 25
    for cid in deep:
        assert df.loc[cid, "verdict"] == C.NOT_TESTABLE, cid
        assert "random network weights" in df.loc[cid, "reason"] and words in df.loc[cid, "reason"]
    others = df.drop(index=list(deep))
    assert (others.drop(index=list(PAPER_TOO_SMALL - deep))["verdict"] == C.HOLDS).all()
    assert "random-weight networks" in df.loc["auc.DLRC.train", "reason"]
    assert "random-weight networks" not in df.loc["auc.radiomics.train", "reason"]


def test_random_weights_found_in_the_warnings_when_results_lack_them(tmp_path):
    run = make_run(tmp_path, warnings={"04_deep_learning": ["RANDOM WEIGHTS: ImageNet weights of ResNet50 ..."]})
    data = json.loads((run / "results" / "04_deep_learning.json").read_text())
    data.pop("weights")
    (run / "results" / "04_deep_learning.json").write_text(json.dumps(data))
    df = by_id(C.evaluate_claims(run))
    assert df.loc["dl.best_network", "verdict"] == C.NOT_TESTABLE


def test_twin_inputs_are_never_counted_as_reproduced(tmp_path):
    run = make_run(tmp_path, source="twin")
    df = C.evaluate_claims(run)
    inputs = df[df["id"].str.startswith("input.")]
    assert len(inputs) >= 8
    assert (inputs["verdict"] == C.INPUT).all() and not inputs["counted"].any()
    assert inputs["reason"].str.contains("built from").all()
    assert not df[df["verdict"] == C.INPUT]["counted"].any()
    # findings are still decided on a twin
    findings = df[~df["id"].str.startswith("input.") & ~df["id"].isin(PAPER_TOO_SMALL)]
    assert (findings["verdict"] == C.HOLDS).all()

    # the long comparison: every twin input is marked and not counted, although it "matches"
    view = C.run_view(run)
    published = load_published(PUBLISHED)
    table = compare_with_paper(published, view.reproduced, roles=C.published_roles(view, published)).set_index("quantity")
    for key in ("table1.n.train", "table1.categorical.parity.levels.0.train", "table2.external.SRA.sen",
                "table5.lnsd_below_10mm.internal.SRA.spe"):
        assert table.loc[key, "role"] == C.INPUT and not table.loc[key, "counted"]
    assert table.loc["table2.train.DLRC.auc", "counted"] and table.loc["table2.train.DLRC.auc", "role"] == ""
    # on the paper's own patients re-analysed nothing is an input; on a new cohort the same numbers
    # describe that cohort (shown, not counted)
    view.study_source = "manifest"
    view.run["params"]["study"]["role"] = "same_patients"
    assert not any(C.published_roles(view, published).values())
    view.run["params"]["study"]["role"] = "new_cohort"
    roles = C.published_roles(view, published)
    assert roles["table1.n.train"] == C.COHORT and roles["table2.train.DLRC.auc"] == ""


def test_calibrated_targets_from_the_twin_record(tmp_path):
    run = make_run(tmp_path, source="twin")
    (run / "study.json").write_text(json.dumps({"calibrated_towards": ["auc.radiomics.*", "table2.*.radiomics.auc"]}))
    df = by_id(C.evaluate_claims(run))
    for coh in ("train", "internal", "external"):
        assert df.loc[f"auc.radiomics.{coh}", "verdict"] == C.CALIBRATED
        assert not df.loc[f"auc.radiomics.{coh}", "counted"]
    assert df.loc["auc.DLRC.train", "verdict"] == C.HOLDS
    view = C.run_view(run)
    roles = C.published_roles(view, ["table2.train.radiomics.auc", "table2.train.DLRC.auc"])
    assert roles == {"table2.train.radiomics.auc": C.CALIBRATED, "table2.train.DLRC.auc": ""}


def test_claims_file_mistakes_are_one_line(tmp_path):
    run = make_run(tmp_path / "run")
    bad = tmp_path / "claims.yaml"
    bad.write_text(yaml.safe_dump({"claims": [{"id": "x", "claim": "c", "rule": "nonsense"}]}))
    with pytest.raises(DlrcError, match="claim x: unknown rule 'nonsense'"):
        C.evaluate_claims(run, claims_file=bad)
    bad.write_text(yaml.safe_dump({"claims": [{"id": "x", "claim": "c", "rule": "equals",
                                               "published": "table9.nothing", "reproduced": "table9.nothing"}]}))
    with pytest.raises(DlrcError, match="claim x: table9.nothing is not a key of the published values"):
        C.evaluate_claims(run, claims_file=bad)
    with pytest.raises(DlrcError, match="run.json: not found"):
        C.evaluate_claims(tmp_path / "nowhere")


def test_page_opens_with_warnings_then_verdict_and_escapes_text(tmp_path):
    hostile = "<img src=x onerror=alert(1)>"
    run = make_run(tmp_path / "run", warnings={"04_deep_learning": [f"RANDOM WEIGHTS {hostile}"]})
    claims_file = tmp_path / "claims.yaml"
    doc = yaml.safe_load(CLAIMS.read_text())
    doc["claims"][0]["claim"] = f"{hostile} enrolled"
    claims_file.write_text(yaml.safe_dump(doc, allow_unicode=True))
    view = C.run_view(run, claims_file=claims_file)
    df = C.evaluate_claims(run, claims_file=claims_file)
    page = render_index(run, df, view)
    assert hostile not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    order = [page.index(s) for s in ("class='warn'", "Verdict", "class='claims'", "Table 1.", "Table 2.",
                                     "Table 3.", "Table 4.", "Table 5.", "Fig. 5.", "Fig. 6.")]
    assert order == sorted(order)
    assert "v-not" in page  # the deep claims, coloured as not testable


def test_write_index_writes_claims_and_comparison(tmp_path, monkeypatch):
    from dlrc_lib.core.config import Params

    monkeypatch.chdir(ROOT)
    run = make_run(tmp_path, source="twin", change={"table2.train.radiomics.auc": [0.60, 0.55, 0.65]})
    page = write_index(run, Params()).read_text()
    claims = pd.read_csv(run / "claims.csv")
    assert len(claims) >= 15 and claims["verdict"].isin(C.VERDICTS).all()
    assert not claims[claims["verdict"] == C.INPUT]["counted"].any()
    cmp = pd.read_csv(run / "tables" / "paper_vs_reproduction.csv", keep_default_na=False)
    assert not cmp[cmp["role"] == C.INPUT]["counted"].any() and (cmp["role"] == C.INPUT).sum() > 100
    n_inputs = int((cmp["role"] == C.INPUT).sum())
    assert f"{n_inputs} are inputs of the twin and 0 calibrated (not counted)" in page
    # the out-of-CI AUC is marked in the side-by-side Table 2
    assert "<td class='rep out' title='outside the paper&#x27;s 95 % CI'>0.600 (0.550–0.650)</td>" in page


def test_a_new_cohort_is_never_graded_on_the_papers_cohort_numbers(tmp_path):
    """study.role: new_cohort (a manifest study's default): Table 1 counts, cohort sizes and SRA
    counts describe the study's own cohort: shown, verdict 'own cohort', never counted; the
    paper's findings are still graded."""
    from dlrc_lib.reporting.index_page import render_index, verdict_summary

    run = make_run(tmp_path, role=None)
    df = by_id(C.evaluate_claims(run))
    cohort = df[df.index.str.startswith("input.")]
    assert len(cohort) == 10 and (cohort["verdict"] == C.COHORT).all() and not cohort["counted"].any()
    assert df.loc["auc.radiomics.train", "verdict"] == C.HOLDS
    view = C.run_view(run)
    roles = C.published_roles(view, ["table1.n.train", "study.included", "table2.train.DLRC.auc"])
    assert roles == {"table1.n.train": C.COHORT, "study.included": C.COHORT, "table2.train.DLRC.auc": ""}
    page = render_index(run, df.reset_index(), view)
    assert "twin" not in page.lower() and "a new cohort" in page
    assert "10 describe this study's own cohort" in verdict_summary(df.reset_index())


def test_a_study_without_an_external_cohort_renders_and_says_why(tmp_path):
    """No external cohort: the page is written (values the run could not estimate show as a
    dash, never a traceback), and the external claims say the study has no such cohort."""
    from dlrc_lib.reporting.index_page import render_index

    keys = ["table2.external.DLRC.auc", "table2.external.radiomics.auc", "calibration_hosmer_lemeshow_p.external"]
    run = make_run(tmp_path, role=None, drop=tuple(keys),
                   change={"table1.age.external.neg": None, "table1.age.external.pos": [None, None, None]})
    pd.DataFrame({"patient_id": ["P1", "P2"], "cohort": ["train", "internal"]}).to_csv(run / "study_manifest.csv",
                                                                                        index=False)
    df = by_id(C.evaluate_claims(run))
    for cid in ("auc.DLRC.external", "auc.radiomics.external", "calibration.hl.external"):
        assert df.loc[cid, "verdict"] == C.NOT_TESTABLE
        assert df.loc[cid, "reason"] == "the study has no external validation cohort"
    page = render_index(run, df.reset_index(), C.run_view(run))
    assert "Age, median" in page and "—" in page


# ------------------------------------------------------------------ what a cohort's size can tell
def _predictions(sizes: dict[str, tuple[int, int]], seed: int = 11) -> pd.DataFrame:
    """Per-patient predictions of three models with a moderate signal, ``sizes``: cohort -> (n, events)."""
    rng = np.random.default_rng(seed)
    frames = []
    for coh, (n, events) in sizes.items():
        y = np.r_[np.ones(events), np.zeros(n - events)].astype(int)
        base = 1.0 * y + rng.normal(0, 1, n)
        frames.append(pd.DataFrame({
            "cohort": coh, "lnm": y,
            "prob_radiomics": 1 / (1 + np.exp(-(base - 1 + rng.normal(0, 0.5, n)))),
            "prob_dl": 1 / (1 + np.exp(-(base - 1 + rng.normal(0, 0.8, n)))),
            "prob_dlrc": 1 / (1 + np.exp(-(base - 1))),
        }, index=[f"{coh}{i:03d}" for i in range(n)]))
    return pd.concat(frames)


def test_a_small_new_cohort_reads_too_small_to_tell_with_the_patients_it_would_need(tmp_path):
    """24 / 10 / 20 patients: the AUCs' prediction intervals include 0.5, a non-significant DeLong
    test has little power, Hosmer–Lemeshow has under 5 expected per group: too small to tell, each
    with how many patients would do; none of it counts as tested."""
    change = {"table2.train.radiomics.auc": [0.80, 0.62, 0.98], "table2.internal.radiomics.auc": [0.595, 0.225, 0.966],
              "table2.external.radiomics.auc": [0.62, 0.35, 0.89], "table4.DLRC_vs_radiomics.external": 0.41,
              "table1.n.train": [17, 7], "table1.n.internal": [7, 3], "table1.n.external": [14, 6]}
    run = make_run(tmp_path, role="new_cohort", change=change)
    _predictions({"train": (24, 7), "internal": (10, 3), "external": (20, 6)}).to_parquet(run / "data" / "predictions.parquet")
    df = by_id(C.evaluate_claims(run))
    for coh, n, events in (("train", 24, 7), ("internal", 10, 3), ("external", 20, 6)):
        row = df.loc[f"auc.radiomics.{coh}"]
        assert row["verdict"] == C.TOO_SMALL and not row["counted"], row.to_dict()
        assert f"{n} patients ({events} LNM)" in row["reason"] and "includes 0.5" in row["reason"]
        assert re.search(r"about [\d,]+ patients \(~[\d,]+ LNM\) would make it testable", row["reason"])
        hl = df.loc[f"calibration.hl.{coh}"]
        assert hl["verdict"] == C.TOO_SMALL and "expects only" in hl["reason"] and "slope" in hl["reason"]
    delong = df.loc["delong.dlrc_vs_radiomics.external"]
    assert delong["verdict"] == C.TOO_SMALL and "power" in delong["reason"] and "give power 0.8" in delong["reason"]
    # a significant result is decided whatever the size: the paper's non-significant internal one here
    assert df.loc["delong.dlrc_vs_radiomics.internal", "verdict"] == C.HOLDS
    page = render_index(run, df.reset_index(), C.run_view(run))
    assert "too small to tell" in page and "v-small" in page
    for text in C.OUTCOMES.values():  # the three outcomes explained, one line each
        assert html.escape(text) in page


def test_the_paper_scale_twin_decides_its_auc_claims_by_the_prediction_interval(tmp_path):
    """At the paper's cohort sizes (Table 1) with the reference run's AUCs, every radiomics and DLRC
    AUC claim is decided, holds exactly when the reproduced AUC lies in the paper's prediction interval."""
    reference = {  # docs/reference-run/claims.csv (make reproduce at paper scale)
        "table2.train.radiomics.auc": [0.783, 0.739, 0.827], "table2.internal.radiomics.auc": [0.733, 0.660, 0.806],
        "table2.external.radiomics.auc": [0.690, 0.634, 0.746], "table2.train.DLRC.auc": [0.852, 0.814, 0.890],
        "table2.internal.DLRC.auc": [0.773, 0.706, 0.841], "table2.external.DLRC.auc": [0.771, 0.719, 0.824]}
    run = make_run(tmp_path, source="twin", change=reference)
    df = by_id(C.evaluate_claims(run))
    published = flatten_published(yaml.safe_load(PUBLISHED.read_text(encoding="utf-8")))
    for key, rep in reference.items():
        _, coh, model, _ = key.split(".")
        row = df.loc[f"auc.{model}.{coh}"]
        assert row["verdict"] in (C.HOLDS, C.FAILS) and row["counted"], row.to_dict()
        pub = published[key]
        pi = R.auc_prediction_interval(pub[0], R.se_from_ci(*pub), R.se_from_ci(*rep), rep[0])
        assert pi.lower > 0.5
        assert (row["verdict"] == C.HOLDS) == pi.contains(rep[0])
        assert f"prediction interval {pi.lower:.3f}–{pi.upper:.3f}" in row["reason"]


def test_switched_off_deep_learning_and_missing_cohorts_are_not_testable(tmp_path):
    run = make_run(tmp_path, role="new_cohort")
    doc = json.loads((run / "run.json").read_text())
    doc["params"]["deep"] = {"models": []}
    (run / "run.json").write_text(json.dumps(doc))
    pd.DataFrame({"patient_id": ["P1", "P2"], "cohort": ["train", "internal"]}).to_csv(run / "study_manifest.csv",
                                                                                        index=False)
    df = by_id(C.evaluate_claims(run))
    _, claims = C.load_claims(CLAIMS)
    for c in claims:
        if c.get("deep"):
            assert df.loc[c["id"], "verdict"] == C.NOT_TESTABLE
            assert df.loc[c["id"], "reason"].startswith("deep learning switched off")
    row = df.loc["input.table1_lnm_rate"]  # a number of the own cohort: shown, not graded
    assert row["verdict"] == C.COHORT
    doc["params"]["study"]["role"] = "same_patients"
    (run / "run.json").write_text(json.dumps(doc))
    df = by_id(C.evaluate_claims(run))
    assert df.loc["input.table1_lnm_rate", "verdict"] == C.NOT_TESTABLE
    assert df.loc["input.table1_lnm_rate", "reason"] == ("the claim compares all three cohorts; this study has "
                                                          "no external validation cohort")
