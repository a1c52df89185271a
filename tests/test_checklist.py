"""The reporting checklist (CLEAR, METRICS, RQS) filled from a run folder: what the run did
changes the answers, and nothing is claimed without the run's own evidence."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from dlrc_lib.core.config import Params
from dlrc_lib.core.io import dumps
from dlrc_lib.reporting import checklist as C

REPO = Path(__file__).resolve().parents[1]
SOURCE = (REPO / "dlrc_lib" / "reporting" / "checklist.py").read_text()
ARTIFACTS = sorted(set(re.findall(r'"((?:tables|figures)/[A-Za-z0-9_]+)"', SOURCE)))


def make_run(tmp_path: Path, *, harmonisation: str = "all", external: bool = True, icc: str = "on",
             source: str = "twin", random_weights: bool = False, missing: tuple[str, ...] = ()) -> Path:
    """A run folder as the runner leaves it, with the facts the checklist reads."""
    run = tmp_path / "run"
    params = Params.model_validate({
        "run_name": "t", "seed": 7,
        "radiomics": {"settings": str(REPO / "params" / "radiomics_quick.yaml")},
        "harmonisation": {"mode": harmonisation},
        "icc": {"threshold": 0.0 if icc == "zero" else 0.75},
        "study": {"source": source, "manifest": "m.csv" if source == "manifest" else None},
    })
    rows = []
    for i in range(40):
        cohort = "train" if i < 20 else ("internal" if i < 28 else "external")
        if cohort == "external" and not external:
            cohort = "internal"
        centre = "A" if cohort != "external" else "BCD"[i % 3]
        rows.append(dict(patient_id=f"P{i:03d}", centre=centre, scanner=f"S{i % 4}", cohort=cohort, lnm=int(i % 3 == 0),
                         mask_r2_CET1=f"r2/{i}.nii.gz" if i < 6 else None))
    (run / "results").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(run / "study_manifest.csv", index=False)
    (run / "run.json").write_text(dumps({
        "params": params.model_dump(mode="json"), "git_commit": "0123456789abcdef", "git_dirty": False,
        "packages": {"pyradiomics": "3.0.1", "torchvision": "0.29.1", "scikit-learn": "1.7", "statsmodels": "0.14",
                     "scipy": "1.16"},
        "study_manifest": str(run / "no_such_manifest.csv"),
    }))
    results = {
        "02_icc": dict(icc_cases=6, icc_subset=6, n_features=900, n_kept=610, form="ICC(2,1)",
                       threshold=params.icc.threshold, median_icc_inter=0.81, median_icc_intra=0.9),
        "03_radiomics": dict(funnel=[{"step": "ICC", "n_features": 610}, {"step": "LASSO", "n_features": 4}],
                             selected=[{"feature": "a"}, {"feature": "b"}]),
        "04_deep_learning": dict(weights={"ResNet50_2D": {"source": "random" if random_weights else "imagenet",
                                                          "random_fallback": random_weights}},
                                 best_model_rule_text="highest training AUC"),
        "05_dlrc": dict(dlrc_terms=["Rad_score", "DL_score", "ca125"], cutoffs={"DLRC": 0.3},
                        clinical_candidates=["ca125"], lost_patients=[]),
        "06_calibration": dict(hosmer_lemeshow=[{"model": "DLRC", "p": 0.4}], optimism_corrected={"B": 50}),
    }
    if icc == "absent":
        del results["02_icc"]
    for stem, data in results.items():
        (run / "results" / f"{stem}.json").write_text(dumps(data))
    for name in ARTIFACTS:
        if name in missing:
            continue
        path = run / (name + (".png" if name.startswith("figures/") else ".csv"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    for extra in ("model/dlrc_model.json", "notebooks/00_study.ipynb"):
        (run / extra).parent.mkdir(parents=True, exist_ok=True)
        (run / extra).write_text("{}")
    return run


def items(run: Path) -> dict[tuple[str, str], dict]:
    df = C.fill(run)
    return {(r["checklist"], r["number"]): r for r in df.to_dict("records")}


def test_checklist_files_are_complete():
    clear = C.load_checklist("CLEAR")
    assert [i["number"] for i in clear["items"]] == list(range(1, 59))
    assert clear["items"][30]["item"] == "Details of segmentation reliability analysis"
    assert clear["items"][35]["item"] == "Handling of confounders"
    assert {i["number"] for i in clear["items"] if i.get("essential") is False} == {53, 58}
    metrics = C.load_checklist("METRICS")
    assert [i["number"] for i in metrics["items"]] == list(range(1, 31)) and len(metrics["conditions"]) == 5
    rqs = C.load_checklist("RQS")
    assert [i["number"] for i in rqs["items"]] == list(range(1, 17))
    best = sum(sum(p for p, _ in i["points"]) if i["number"] in (1, 9, 10, 16) else max(p for p, _ in i["points"])
               for i in rqs["items"])
    assert best == 36
    for name, spec in (("CLEAR", clear), ("METRICS", metrics), ("RQS", rqs)):
        answered = [item.number for item in C.ITEMS[name]]
        assert len(answered) == len(set(answered)), name
        assert {i["number"] for i in spec["items"] if i["who"] == "run"} == set(answered), name
    assert [c.number for c in C.CONDITIONS] == [c["number"] for c in metrics["conditions"]]


def test_full_run_answers_with_existing_evidence(tmp_path):
    run = make_run(tmp_path)
    got = items(run)
    assert sum(1 for k in got if k[0] == "CLEAR") == 58
    for row in got.values():
        if row["status"] in ("yes", "partly"):
            assert row["evidence"], row
        for ev in filter(None, row["evidence"].split("; ")):
            assert (run / ev).exists(), (row["checklist"], row["number"], ev)
        if row["who"] == "authors":
            assert row["status"] == "authors"
    assert got[("CLEAR", "1")]["status"] == "authors" and got[("CLEAR", "49")]["status"] == "authors"
    assert got[("CLEAR", "31")]["status"] == "yes" and "ICC(2,1)" in got[("CLEAR", "31")]["answer"]
    assert "6 re-segmented patients (train 6)" in got[("CLEAR", "31")]["answer"]
    assert got[("CLEAR", "38")]["status"] == "yes" and "centre(s) B, C, D" in got[("CLEAR", "38")]["answer"]
    assert got[("CLEAR", "23")]["answer"].startswith("fixed bin width 10")  # from radiomics_quick.yaml
    assert got[("CLEAR", "13")]["status"] == "yes"  # the twin is synthetic: its source is known
    assert got[("CLEAR", "56")]["status"] == "yes" and "0123456789ab" in got[("CLEAR", "56")]["answer"]
    assert got[("METRICS", "18")]["status"] == "partly"  # ComBat fitted on every cohort
    assert got[("METRICS", "27")]["status"] == "yes" and got[("METRICS", "4")]["status"] == "yes"
    assert got[("RQS", "2")]["points"] == 1 and got[("RQS", "12")]["points"] == 5
    assert got[("RQS", "6")]["points"] == 1 and "ca125" in got[("RQS", "6")]["answer"]
    assert got[("RQS", "9")]["points"] == 2 and got[("RQS", "10")]["points"] == 2


def test_flipped_parameters_change_the_affected_items(tmp_path):
    base = items(make_run(tmp_path / "base"))

    no_icc = items(make_run(tmp_path / "a", icc="absent"))
    for key in (("CLEAR", "31"), ("METRICS", "14"), ("RQS", "2")):
        assert no_icc[key]["status"] == "no", key
    assert no_icc[("RQS", "2")]["points"] == 0
    zero = items(make_run(tmp_path / "z", icc="zero"))
    assert zero[("CLEAR", "31")]["status"] == "partly" and "threshold is 0" in zero[("CLEAR", "31")]["answer"]

    internal_only = items(make_run(tmp_path / "b", external=False))
    assert internal_only[("CLEAR", "38")]["status"] == "partly"
    assert "no external cohort" in internal_only[("CLEAR", "38")]["answer"]
    assert internal_only[("METRICS", "27")]["status"] == "no" and internal_only[("METRICS", "26")]["status"] == "yes"
    assert internal_only[("RQS", "12")]["points"] == 2
    assert internal_only[("METRICS", "4")]["status"] == "no"  # one centre left

    none = items(make_run(tmp_path / "c", harmonisation="none"))
    assert "no ComBat" in none[("CLEAR", "32")]["answer"] and "ComBat (parametric" in base[("CLEAR", "32")]["answer"]
    assert none[("METRICS", "18")]["status"] == "yes"
    train_ref = items(make_run(tmp_path / "d", harmonisation="train_reference"))
    assert "fitted on the training cohort only" in train_ref[("CLEAR", "32")]["answer"]

    random = items(make_run(tmp_path / "e", random_weights=True))
    assert "WARNING: ResNet50_2D used randomly initialised weights" in random[("CLEAR", "25")]["answer"]
    assert "WARNING" not in base[("CLEAR", "25")]["answer"]

    manifest = items(make_run(tmp_path / "f", source="manifest"))
    assert manifest[("CLEAR", "13")]["status"] == "authors" and manifest[("CLEAR", "53")]["status"] == "authors"
    assert manifest[("RQS", "16")]["points"] == 1


def test_missing_evidence_is_never_claimed(tmp_path):
    run = make_run(tmp_path, missing=("tables/table2", "tables/table2_performance", "tables/table3",
                                      "figures/fig4_roc", "figures/fig5_calibration"))
    got = items(run)
    assert got[("CLEAR", "47")]["status"] == "no"
    assert got[("CLEAR", "47")]["answer"].startswith("its evidence was not produced by this run")
    assert got[("CLEAR", "38")]["status"] == "no" and got[("RQS", "12")]["points"] == 0
    # an empty run folder: nothing is claimed, and the pages are still written
    empty = tmp_path / "empty"
    empty.mkdir()
    df = C.fill(empty, Params())
    claimed = df[df["status"].isin(["yes", "partly"])]
    assert claimed.empty, claimed[["checklist", "number", "answer"]]


def test_pages_are_written_deterministically_and_linked(tmp_path):
    from dlrc_lib.reporting.index_page import write_index

    run = make_run(tmp_path)
    page = C.write_checklist(run, Params(run_name="t"))
    first = ((run / "checklist.csv").read_bytes(), page.read_bytes())
    C.write_checklist(run, Params(run_name="t"))
    assert first == ((run / "checklist.csv").read_bytes(), page.read_bytes())
    csv = pd.read_csv(run / "checklist.csv")
    assert list(csv.columns) == ["checklist", "number", "section", "item", "who", "status", "answer", "evidence", "points"]
    assert len(csv[csv.checklist == "CLEAR"]) == 58
    html = page.read_text()
    assert "Details of segmentation reliability analysis" in html and "href='tables/icc_kept_counts.csv'" in html
    assert "points the run evidences: <b>" in html
    (run / "tables").mkdir(exist_ok=True)
    write_index(run, Params(run_name="t"))
    assert "href='checklist.html'" in (run / "index.html").read_text()
