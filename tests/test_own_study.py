"""One's own study, end to end: a hospital export -> dlrc init -> validate -> run -> predict.

The export is built from a small twin (tests/_hospital.py): per-patient folders, CE-T1WI as a
DICOM series, DWI as NRRD, FS-T2WI as NIfTI, the clinical sheet in its own column order. The
report of such a study must speak about that study: no twin wording, no cohort size graded
against the paper's. The mistakes a new user makes get one line each and a non-zero exit.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from _hospital import hospital_export
from dlrc_lib.core.config import PACKAGE_ROOT, ParamsError, load_params
from dlrc_lib.run.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICK_RADIOMICS = str(ROOT / "params" / "radiomics_quick.yaml")


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip() and "patients:" not in ln]


# ------------------------------------------------------------------ parameters of one's own study
def test_init_writes_a_study_folder_without_twin_keys(tmp_path, capsys):
    assert main(["init", str(tmp_path / "mystudy")]) == 0
    folder = tmp_path / "mystudy"
    assert {p.name for p in folder.iterdir()} == {"params.yaml", "manifest_template.csv", "MANIFEST.md", "README.md"}
    raw = yaml.safe_load((folder / "params.yaml").read_text(encoding="utf-8"))
    assert raw["study"]["source"] == "manifest" and raw["study"]["role"] == "new_cohort"
    assert not {"scale", "signal", "exclusions", "icc_cases", "volume_shape"} & set(raw["study"])
    header = pd.read_csv(folder / "manifest_template.csv").columns
    assert {"patient_id", "lnm", "image_CET1", "mask_T2FS", "mask_r2_DWI"} <= set(header)
    doc = (folder / "MANIFEST.md").read_text(encoding="utf-8")
    assert all(f"`{c}`" in doc for c in header)  # every column of the template is documented
    # a second init refuses to overwrite, in one line
    assert main(["init", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already there" in err[0] and "--force" in err[0]


def test_twin_only_keys_in_a_manifest_study_are_refused_by_name(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("patient_id\n")
    raw = yaml.safe_load((ROOT / "params" / "paper.yaml").read_text(encoding="utf-8"))
    raw["study"].update(source="manifest", manifest=str(manifest))
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(raw))
    assert main(["validate", "--params", str(tmp_path / "mine.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    for key in ("study.scale", "study.signal", "study.exclusions", "study.icc_cases", "study.scanner_effect"):
        assert key in err[0]
    assert "only the synthetic twin" in err[0]


def test_a_params_file_outside_the_checkout_resolves_beside_itself_and_takes_package_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # neither the checkout nor the study folder
    study = tmp_path / "elsewhere" / "study"
    study.mkdir(parents=True)
    (study / "manifest.csv").write_text("patient_id\n")
    (study / "settings.yaml").write_text((ROOT / "params" / "radiomics_quick.yaml").read_text(encoding="utf-8"))
    (study / "p.yaml").write_text("study: {source: manifest, manifest: manifest.csv}\n")
    p = load_params(study / "p.yaml")
    assert p.study.manifest == str(study / "manifest.csv")
    assert p.published_values == str(PACKAGE_ROOT / "params" / "published_values.yaml")
    assert p.radiomics.settings == str(PACKAGE_ROOT / "params" / "radiomics.yaml")
    assert p.cache_dir == str(study / ".dlrc_cache")
    (study / "p2.yaml").write_text("study: {source: manifest, manifest: manifest.csv}\n"
                                   "radiomics: {settings: settings.yaml}\n")
    assert load_params(study / "p2.yaml").radiomics.settings == str(study / "settings.yaml")
    (study / "p3.yaml").write_text("study: {source: manifest, manifest: nowhere.csv}\n")
    with pytest.raises(ParamsError, match=r"key 'study.manifest': file not found: nowhere.csv"):
        load_params(study / "p3.yaml")


def test_the_package_params_keep_resolving_against_the_checkout(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    p = load_params(ROOT / "params" / "quick.yaml")
    assert p.radiomics.settings == str(ROOT / "params" / "radiomics_quick.yaml")
    assert p.cache_dir == str(ROOT / ".dlrc_cache")
    assert str(p.twin_dir) == str(ROOT / "data" / "twin" / "quick")


def test_validate_without_params_writes_nothing_into_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.csv").write_text("patient_id,lnm\nP1,0\n")
    assert main(["validate", "m.csv"]) == 1
    assert not (tmp_path / ".dlrc_cache").exists()
    assert "--params" in capsys.readouterr().out.strip().splitlines()[-1]


# ------------------------------------------------------------------ the hospital export, end to end
@pytest.fixture(scope="module")
def hospital(tmp_path_factory):
    """A 66-patient twin re-laid out as a hospital export, in a study folder made by dlrc init."""
    from dlrc_lib.core.config import Params
    from dlrc_lib.twin import generate_study

    base = tmp_path_factory.mktemp("hospital")
    raw = yaml.safe_load((ROOT / "params" / "quick.yaml").read_text(encoding="utf-8"))
    raw["study"]["scale"] = 0.06
    raw["study"]["exclusions"] = {}
    raw["published_values"] = str(ROOT / "params" / "published_values.yaml")
    raw["radiomics"]["settings"] = QUICK_RADIOMICS
    twin = base / "twin"
    generate_study(Params.model_validate(raw), twin)
    export = hospital_export(twin / "manifest.csv", base / "export")
    study = base / "study"
    assert main(["init", str(study)]) == 0
    for item in export.parent.iterdir():
        shutil.move(str(item), study / item.name)
    (study / "clinical_and_images.csv").rename(study / "manifest.csv")
    params = yaml.safe_load((study / "params.yaml").read_text(encoding="utf-8"))
    params["radiomics"]["settings"] = QUICK_RADIOMICS  # the cheap PyRadiomics settings of the quick run
    params["selection"]["max_features_lasso"] = 2
    params["deep"].update(models=["ResNet50_2D", "ResNet101_2D", "ResNet152_2D"], input_size=64,
                          shape_3d=[4, 32, 32], weights="random")
    params["calibration"] = {"bootstrap": 20}
    params["decision_curve"] = {"bootstrap": 20}
    (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return study


@pytest.fixture(scope="module")
def hospital_cache(tmp_path_factory):
    """One feature cache for the hospital's runs: a second run extracts no radiomics feature again."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def hospital_run(hospital, hospital_cache):
    out = hospital / "reports" / "mine"
    code = main(["run", "--params", str(hospital / "params.yaml"), "--out", str(out),
                 "--cache-dir", str(hospital_cache)])
    return code, out, hospital_cache


def test_hospital_export_validates(hospital, capsys):
    code = main(["validate", "--params", str(hospital / "params.yaml")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 error(s)" in out


def test_hospital_export_runs_and_its_report_speaks_of_that_study(hospital_run):
    code, run_dir, cache = hospital_run
    assert code == 0, (run_dir / "run.json").read_text() if (run_dir / "run.json").exists() else "no run.json"
    assert (cache / "features").is_dir()  # --cache-dir was used
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert run["status"] == "ok"
    page = (run_dir / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"\btwin\b", page, re.I), re.findall(r".{60}\btwin\b.{60}", page, re.I)[:3]
    assert "a new cohort" in page
    claims = pd.read_csv(run_dir / "claims.csv")
    cohort = claims[claims["id"].str.startswith("input.")]
    assert len(cohort) and (cohort["verdict"] == "own cohort").all() and not cohort["counted"].any()
    graded = claims.loc[claims["verdict"].isin(["holds", "fails"]), "id"]
    assert len(graded) and not graded.str.startswith("input.").any()
    comparison = pd.read_csv(run_dir / "tables" / "paper_vs_reproduction.csv", keep_default_na=False)
    sizes = comparison[comparison["key"].str.startswith(("study.", "table1."))] if "key" in comparison else \
        comparison[comparison.iloc[:, 0].astype(str).str.startswith(("study.", "table1."))]
    assert len(sizes) and not sizes["counted"].astype(str).str.lower().eq("true").any()
    # no twin wording on the notebooks' pages either: prose, code and outputs
    for page in sorted((run_dir / "html").glob("*.html")):
        text = re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))
        found = re.findall(r".{40}\btwin\b.{40}", text, re.I)
        assert not found, (page.name, found[:3])


def _auc_cell(text: str) -> list[float]:
    """``0.767 (0.700–0.834)`` -> [0.767, 0.7, 0.834]."""
    return [float(x) for x in re.findall(r"\d+\.\d+", str(text))[:3]]


def test_the_verdict_on_a_small_hospital_cohort_knows_what_it_cannot_tell(hospital_run):
    """~66 patients: an AUC claim whose prediction interval includes 0.5 reads too small to tell,
    with the patients (and events) that would make it testable, and is not counted."""
    from dlrc_lib.stats import replication as R

    _, run_dir, _ = hospital_run
    claims = pd.read_csv(run_dir / "claims.csv").set_index("id")
    aucs = claims[claims.index.str.match(r"auc\.(radiomics|DLRC)\.") & (claims["reproduced"] != "not produced")]
    assert len(aucs) == 6
    small = 0
    for cid, row in aucs.iterrows():
        pub, rep = _auc_cell(row["published"]), _auc_cell(row["reproduced"])
        se = R.se_from_ci(*rep)
        if not se > 0:  # a separating score: the verdict takes Hanley–McNeil's SE (its reason says so)
            assert "Hanley–McNeil" in row["reason"]
            continue
        pi = R.auc_prediction_interval(pub[0], R.se_from_ci(*pub), se, rep[0])
        if pi.lower <= 0.5:
            small += 1
            assert row["verdict"] == "too small to tell" and not row["counted"], (cid, row.to_dict())
            assert re.search(r"about [\d,]+ patients \(~[\d,]+ LNM\) would make it testable", row["reason"]) or \
                "no cohort size would do" in row["reason"], row["reason"]
        else:
            assert row["verdict"] == ("holds" if pi.contains(rep[0]) else "fails"), (cid, row.to_dict())
    assert small >= 1  # validation cohorts of ~10-25 patients cannot tell an AUC from chance
    page = (run_dir / "index.html").read_text(encoding="utf-8")
    assert "too small to tell" in page and "class='outcomes'" in page
    assert "0.542" not in page  # the paper's own inconsistency (Table 4 vs its text) is a twin page's note


def test_predict_scores_one_new_patient_of_the_hospital_export(hospital, hospital_run, tmp_path, capsys):
    code, run_dir, cache = hospital_run
    assert code == 0
    study = pd.read_csv(run_dir / "study_manifest.csv", dtype=str, keep_default_na=False)
    one = study[study["cohort"] == "external"].head(1)
    cols = ["patient_id", "scanner", "lnsd_mm"] + [c for c in study.columns if c.startswith(("image_", "mask_"))
                                                   and not c.startswith(("mask_r2_", "mask_rep_"))]
    one[cols].to_csv(tmp_path / "new.csv", index=False)
    model = next((run_dir / "model").glob("*.json"))
    assert main(["predict", "--model", str(model), "--manifest", str(tmp_path / "new.csv"),
                 "--out", str(tmp_path / "pred.csv"), "--cache-dir", str(cache)]) == 0, capsys.readouterr().err
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 1 and pred["patient_id"].iloc[0] == one["patient_id"].iloc[0]


# ------------------------------------------------------------------ runs that stop say why, in one line
def test_a_lasso_that_keeps_nothing_names_the_parameter_to_change():
    import numpy as np

    from dlrc_lib.core.config import SelectionParams
    from dlrc_lib.scores.selection import select_features

    rng = np.random.default_rng(0)
    n = 30
    y = np.r_[np.zeros(22, int), np.ones(8, int)]
    X = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"f{i}" for i in range(6)],
                     index=[f"P{i}" for i in range(n)])
    X["f0"] += 0.8 * y  # passes Mann-Whitney, too weak for the 1se rule at 8 events
    res = select_features(X, y, SelectionParams(mw_p=0.2, lasso_rule="1se", lasso_folds=5), seed=1)
    assert res.empty_step == "lasso", res.funnel
    assert "set selection.lasso_rule: min" in res.explanation
    # ... and the parameter it names does help here
    res = select_features(X, y, SelectionParams(mw_p=0.2, lasso_rule="min", lasso_folds=5), seed=1)
    assert res.selected == ["f0"]


def test_a_notebook_stopped_by_the_data_is_one_line_without_traceback():
    from dlrc_lib.run.runner import _error_summary

    class Stop(Exception):
        ename, evalue, exec_count = "EmptySelectionError", "LASSO (1se rule) kept no feature; set selection.lasso_rule: min", 10
        traceback = ["Traceback (most recent call last):", "  File ...", "EmptySelectionError: ..."]

    line = _error_summary(Stop(), Path("03_radiomics.ipynb"))
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith("notebook 03_radiomics.ipynb stopped in cell [10]: LASSO") and "lasso_rule: min" in line


def test_validation_knows_what_the_run_needs(tmp_path):
    """One centre, no external cohort, no re-segmented patients, a small training cohort:
    each is found before anything is computed, naming the parameter."""
    from dlrc_lib.core.config import Params
    from dlrc_lib.study.validate import validate_manifest

    rows = []
    for i in range(30):
        rows.append({"patient_id": f"P{i}", "centre": "A", "scanner": f"S{i % 2}", "lnm": int(i % 5 == 0),
                     "cohort": "train" if i < 20 else "internal"})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    params = Params()
    problems = [str(p) for p in validate_manifest(tmp_path / "m.csv", params, check_images=False, cache=False,
                                                  plan=True)]
    assert any("error: deep.best_model_rule: train_and_external_auc needs an external validation cohort" in p
               and "set deep.best_model_rule: train_auc" in p for p in problems), problems
    assert any(p.startswith("warning: icc: no patient has a reader-2 and a repeat mask") and "icc.min_cases=5" in p
               for p in problems), problems
    assert any(p.startswith("warning: selection.lasso_rule:") and "set selection.lasso_rule: min" in p
               for p in problems), problems
    params.deep.best_model_rule = "internal_auc"
    params.selection.lasso_rule = "min"
    problems = [str(p) for p in validate_manifest(tmp_path / "m.csv", params, check_images=False, cache=False,
                                                  plan=True)]
    assert not any("best_model_rule" in p or "lasso_rule" in p for p in problems), problems


def test_a_study_folder_inside_the_checkout_is_still_its_own_folder(tmp_path, monkeypatch):
    from dlrc_lib.core.config import resolve_param_path

    mine = PACKAGE_ROOT / "studies" / "mine"
    assert resolve_param_path(".dlrc_cache", params_dir=mine, written=True, must_exist=False) == \
        str(mine / ".dlrc_cache")
    assert resolve_param_path(".dlrc_cache", params_dir=PACKAGE_ROOT / "params", written=True, must_exist=False) == \
        str(PACKAGE_ROOT / ".dlrc_cache")
    # the study's own manifest is looked for beside the parameter file only, never in the working directory
    monkeypatch.chdir(tmp_path)
    (tmp_path / "manifest.csv").write_text("patient_id\n")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "p.yaml").write_text("study: {source: manifest, manifest: manifest.csv}\n")
    with pytest.raises(ParamsError, match="file not found: manifest.csv"):
        load_params(tmp_path / "elsewhere" / "p.yaml")
    # a path written with Windows backslashes
    (tmp_path / "elsewhere" / "sub").mkdir()
    (tmp_path / "elsewhere" / "sub" / "m.csv").write_text("patient_id\n")
    (tmp_path / "elsewhere" / "q.yaml").write_text("study: {source: manifest, manifest: 'sub\\\\m.csv'}\n")
    assert load_params(tmp_path / "elsewhere" / "q.yaml").study.manifest == str(tmp_path / "elsewhere" / "sub" / "m.csv")


def test_a_sweep_of_a_manifest_study_writes_variant_files_it_can_read(tmp_path):
    from dlrc_lib.run.sweep import _write_params

    (tmp_path / "m.csv").write_text("patient_id\n")
    (tmp_path / "p.yaml").write_text("study: {source: manifest, manifest: m.csv}\n")
    params = load_params(tmp_path / "p.yaml")
    _write_params(tmp_path / "variant.yaml", params)
    again = load_params(tmp_path / "variant.yaml")
    assert again.study.manifest == params.study.manifest and again.study_role == "new_cohort"


# ------------------------------------------------------------------ radiomics + clinical only
LONG_CENTRES = {"A": "Sun Yat-sen University Cancer Center", "B": "The Second Affiliated Hospital of Guangzhou "
                "Medical University", "C": "Guangdong Provincial People's Hospital", "D": "Jiangmen Central Hospital",
                "E": "Affiliated Cancer Hospital of Zhengzhou University"}


def test_without_deep_models_the_dlrc_model_is_radiomics_and_clinical(hospital, hospital_cache, tmp_path, capsys):
    """``deep.models: []``: validation accepts it, notebook 04 records that deep learning is off,
    DLRC has no DL_score term, no table or curve names a deep model, and the model file predicts.
    The same run draws Fig. 1 from the study's flow table, with the hospitals' own long names."""
    manifest = pd.read_csv(hospital / "manifest.csv", dtype=str, keep_default_na=False)
    manifest["centre"] = manifest["centre"].map(lambda c: LONG_CENTRES.get(c, c))
    manifest.to_csv(hospital / "manifest_long_names.csv", index=False)
    (hospital / "exclusions.csv").write_text(f"step,n\nenrolled,{len(manifest) + 9}\nPresurgical treatment "
                                              "(neoadjuvant chemotherapy or radiotherapy),5\nPoor-quality MRI,4\n")
    params = yaml.safe_load((hospital / "params.yaml").read_text(encoding="utf-8"))
    params["deep"] = {"models": []}
    params["study"].update(manifest="manifest_long_names.csv", flow="exclusions.csv")
    (hospital / "no_deep.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert main(["validate", "--params", str(hospital / "no_deep.yaml")]) == 0, capsys.readouterr().out
    out = hospital / "reports" / "no_deep"
    code = main(["run", "--params", str(hospital / "no_deep.yaml"), "--out", str(out),
                 "--cache-dir", str(hospital_cache)])
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert code == 0 and run["status"] == "ok", run.get("failure")
    assert run["params"]["deep"]["models"] == [] and "twin_dir" not in run["params"]["study"]
    flow = json.loads((out / "results" / "01_cohort_table.json").read_text(encoding="utf-8"))["flow"]
    assert flow["enrolled"] == len(manifest) + 9 and flow["n_excluded"] == 9 and LONG_CENTRES["B"] in flow["centres"]
    assert (out / "figures" / "fig1_flow.png").is_file()
    deep = json.loads((out / "results" / "04_deep_learning.json").read_text(encoding="utf-8"))
    assert deep["deep_learning"] == "off" and deep["best_model"] is None
    assert not (out / "data" / "dl_scores.parquet").exists()
    assert not [p.name for p in (out / "tables").glob("*") if p.name.startswith(("table3", "dl_"))]
    assert not [p.name for p in (out / "figures").glob("*") if p.name.startswith(("fig_dl", "figS3", "figS6", "figS7"))]
    dlrc = json.loads((out / "results" / "05_dlrc.json").read_text(encoding="utf-8"))
    assert "DL_score" not in dlrc["dlrc_terms"] and set(dlrc["cutoffs"]) == {"radiomics", "dlrc"}
    predictions = pd.read_parquet(out / "data" / "predictions.parquet")
    assert not {"DL_score", "prob_dl"} & set(predictions.columns)
    table2 = pd.read_csv(out / "tables" / "table2_performance.csv")
    assert set(table2["model"]) == {"radiomics", "DLRC", "SRA"}
    table4 = pd.read_csv(out / "tables" / "table4.csv")
    assert list(table4["Model comparison"]) == ["DLRC vs radiomics"]
    for stem in ("06_calibration", "07_decision_curve"):
        models = json.loads((out / "results" / f"{stem}.json").read_text(encoding="utf-8")).get("models")
        assert models is None or set(models) == {"Radiomics", "DLRC"}, (stem, models)
    model = json.loads((out / "model" / "dlrc_model.json").read_text(encoding="utf-8"))
    assert model["deep"]["model"] is None and "DL_score" not in model["dlrc"]["terms"]
    study = pd.read_csv(out / "study_manifest.csv", dtype=str, keep_default_na=False)
    one = study[study["cohort"] == "external"].head(1)
    cols = ["patient_id", "scanner", "lnsd_mm"] + [c for c in study.columns if c.startswith(("image_", "mask_"))
                                                   and not c.startswith(("mask_r2_", "mask_rep_"))]
    one[cols].to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", "--model", str(out / "model" / "dlrc_model.json"), "--manifest", str(tmp_path / "new.csv"),
                 "--out", str(tmp_path / "pred.csv"), "--cache-dir", str(hospital_cache)]) == 0, capsys.readouterr().err
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 1 and "DL_score" not in pred.columns and pred["prob_dlrc"].between(0, 1).all()
