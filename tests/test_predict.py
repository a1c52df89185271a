"""The exported model and `dlrc predict`: document checks, scanner policy, scoring, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


from dlrc_lib.model import dlrc as M
from dlrc_lib.core.io import dumps
from dlrc_lib.run.cli import main as cli_main
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.model.export import build_model_document, known_batches, load_model, write_model
from dlrc_lib.model.predict import read_new_patients, scanner_status, score_from_scores
from model_synthetic import make_study

SEQS = ("CET1", "DWI", "T2FS")


@pytest.fixture(scope="module")
def fitted():
    study = make_study()
    fit = M.fit_dlrc(study[["cohort", "lnm", "Rad_score", "DL_score"]], study)
    pred = M.predictions_frame(study, study["Rad_score"], study["DL_score"], fit.prob)
    nom = M.nomogram_for(fit, study)
    doc = build_model_document(
        run_name="t", seed=1, sequences=SEQS, radiomics_settings_file="radiomics.yaml",
        radiomics_settings_text="setting:\n  binWidth: 25\n",
        radiomics_state={"combat": {"batches": ["S1", "S2"]}}, deep_model="ResNet152_2D",
        deep_preprocessing={"input_size": 224}, deep_weights={"source": "random", "identity": "x"},
        deep_state={"combat": {"batches": ["S1", "S2"]}}, best_model_rule="train_auc",
        harmonisation={"mode": "all", "batch": "scanner", "scanner_policy": "refuse"},
        dlrc=fit.model.to_dict(), clinical=fit.clinical, cutoffs=M.youden_cutoffs(pred),
        nomogram=nom.to_dict())
    doc = json.loads(dumps(doc))  # exactly what the JSON file holds
    return study, fit, pred, doc


def test_document_is_plain_json(fitted, tmp_path):
    _, _, _, doc = fitted
    assert doc["harmonisation"]["known_batches"] == ["S1", "S2"]
    assert doc["clinical"] == {"c_lnm": "lnsd_mm >= 10 (largest pelvic node short axis on CE-T1WI, mm)"}
    path = write_model(doc, tmp_path / "m.json")
    loaded = load_model(path)
    assert loaded.pop("integrity")["sha256"] == json.loads(path.read_text())["integrity"]["sha256"]
    assert loaded == doc
    assert known_batches({"a": {"batches": ["X", "Y"]}, "b": [{"batches": ["Z"]}]}) == ["X", "Y", "Z"]
    # a batch is known only when both scores hold its estimates
    one_sided = build_model_document(**{**_doc_args(doc), "radiomics_state": {"combat": {"batches": ["S1"]}}})
    assert one_sided["harmonisation"]["known_batches"] == ["S1"]


def _doc_args(doc: dict) -> dict:
    """build_model_document's arguments that give ``doc`` back."""
    return dict(run_name="t", seed=1, sequences=doc["sequences"], radiomics_settings_file="radiomics.yaml",
                radiomics_settings_text=doc["radiomics"]["settings_text"], radiomics_state=doc["radiomics"]["state"],
                deep_model=doc["deep"]["model"], deep_preprocessing=doc["deep"]["preprocessing"],
                deep_weights=doc["deep"]["weights"], deep_state=doc["deep"]["state"],
                best_model_rule=doc["deep"]["best_model_rule"],
                harmonisation={k: v for k, v in doc["harmonisation"].items()
                               if k not in ("known_batches", "own_data_batches")},
                dlrc=doc["dlrc"], clinical=list(doc["clinical"]), cutoffs=doc["cutoffs"], nomogram=doc["nomogram"])


@pytest.mark.parametrize("content, message", [
    (None, "model file not found"),
    ("{not json", "not a JSON model file"),
    ('{"format": "other"}', "not a DLRC model file"),
    ('{"format": "dlrc-model", "format_version": 99}', "format version 99 is not supported"),
    ('{"format": "dlrc-model", "format_version": 1}', "format version 1 is not supported"),
    ('{"format": "dlrc-model", "format_version": 2}', "version 2 is not supported .*re-run the run's notebooks 03-05"),
    ('{"format": "dlrc-model", "format_version": 3}', "model file lacks sequences"),
])
def test_load_model_refuses(tmp_path, content, message):
    path = tmp_path / "model.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DlrcError, match=message):
        load_model(path)


def test_scores_to_risk_points_and_decision(fitted):
    study, fit, pred, doc = fitted
    out = score_from_scores(doc, study, study["Rad_score"], study["DL_score"])
    assert np.allclose(out["prob_dlrc"], pred["prob_dlrc"], rtol=0, atol=1e-12)
    assert np.allclose(out["prob_radiomics"], pred["prob_radiomics"], rtol=0, atol=1e-15)
    assert (out["lnm_predicted"] == (out["prob_dlrc"] >= doc["cutoffs"]["dlrc"]).astype(int)).all()
    total = out[[f"points_{t}" for t in fit.model.terms_]].sum(axis=1)
    assert np.allclose(total, out["total_points"])
    # validation patients beyond the training range are flagged, training ones never
    train = out[study["cohort"] == "train"]
    assert (train["outside_nomogram_range"] == "").all()
    assert list(out["c_LNM"]) == list(study["c_lnm"].astype(float))


def _manifest(tmp_path: Path, scanners: list[str], files: bool = True) -> Path:
    rows = []
    for i, sc in enumerate(scanners):
        row = {"patient_id": f"N{i}", "scanner": sc, "lnsd_mm": 6.0 + 4 * i}
        for s in SEQS:
            for kind in ("image", "mask"):
                f = tmp_path / f"N{i}_{kind}_{s}.nii.gz"
                if files:
                    f.write_bytes(b"x")
                row[f"{kind}_{s}"] = f.name
        rows.append(row)
    path = tmp_path / "new.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_read_new_patients(fitted, tmp_path):
    *_, doc = fitted
    new = read_new_patients(_manifest(tmp_path, ["S1", "S2"]), doc)
    assert list(new.index) == ["N0", "N1"] and list(new["c_lnm"]) == [0, 1]
    assert Path(new.loc["N0", "image_CET1"]).is_absolute()
    (tmp_path / "N1_mask_DWI.nii.gz").unlink()
    with pytest.raises(DlrcError, match=r"patient N1, file N1_mask_DWI.nii.gz: not found \(mask_DWI\)"):
        read_new_patients(tmp_path / "new.csv", doc)


def test_scanner_policy(fitted, tmp_path):
    *_, doc = fitted
    new = read_new_patients(_manifest(tmp_path, ["S1", "S9", "S9"]), doc)
    with pytest.raises(DlrcError, match=r"scanner 'S9' \(patients N1, N2\): not seen when the model was fitted"):
        scanner_status(doc, new, "refuse")
    status = scanner_status(doc, new, "harmonise")
    assert list(status) == ["seen", "harmonised from own data", "harmonised from own data"]
    lone = new.iloc[:2]
    with pytest.raises(DlrcError, match="needs at least 2 patients"):
        scanner_status(doc, lone, "harmonise")


def test_cli_refuses_unseen_scanner_in_one_line(fitted, tmp_path, capsys):
    *_, doc = fitted
    model = write_model(doc, tmp_path / "model.json")
    manifest = _manifest(tmp_path, ["S1", "S7"])
    out = tmp_path / "pred.csv"
    rc = cli_main(["predict", "--model", str(model), "--manifest", str(manifest), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert err.count("\n") == 1 and "scanner 'S7' (patient N1)" in err and "--scanner-policy harmonise" in err
    assert "the model knows scanners S1, S2" in err


def test_deep_settings_restored_from_document(fitted):
    *_, doc = fitted
    d = json.loads(json.dumps(doc))
    d["deep"]["preprocessing"] = {"input_size": 64, "margin": 0.2, "weights": "random", "unknown_key": 1}
    from dlrc_lib.model.predict import deep_params_of

    p = deep_params_of(d)
    assert p.models == ["ResNet152_2D"] and p.input_size == 64 and p.margin == 0.2 and p.weights == "random"


def _features(study: pd.DataFrame, signal: str, seed: int) -> pd.DataFrame:
    """Patients x 12 features: three follow ``signal``, scanner S2 shifts and scales them all."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(len(study), 12))
    X[:, :3] += np.outer(study[signal].to_numpy(), [1.0, -0.8, 0.6])
    s2 = (study["scanner"].to_numpy() == "S2")[:, None]
    X = np.where(s2, 1.3 * X + 0.7, X)
    return pd.DataFrame(X, index=study.index, columns=[f"CET1_{signal[:2]}{i}" for i in range(12)])


def _model_document(study, fits, harmonisation: dict):
    """Scores, predictions and the model document (as JSON) of a DLRC fitted on ``fits``."""
    scores = study[["cohort", "lnm"]].assign(Rad_score=fits["Rad_score"].score_.loc[study.index],
                                             DL_score=fits["DL_score"].score_.loc[study.index])
    fit = M.fit_dlrc(scores, study)
    pred = M.predictions_frame(study, scores["Rad_score"], scores["DL_score"], fit.prob)
    doc = build_model_document(
        run_name="t", seed=1, sequences=SEQS, radiomics_settings_file="radiomics.yaml",
        radiomics_settings_text="", radiomics_state=fits["Rad_score"].to_dict(), deep_model="ResNet152_2D",
        deep_preprocessing={}, deep_weights=None, deep_state=fits["DL_score"].to_dict(),
        best_model_rule="train_auc", harmonisation=harmonisation,
        dlrc=fit.model.to_dict(), clinical=fit.clinical, cutoffs=M.youden_cutoffs(pred),
        nomogram=M.nomogram_for(fit, scores).to_dict())
    return scores, pred, json.loads(dumps(doc))


def test_scoring_from_features_reproduces_the_fit(fitted):
    """Features -> stored ComBat, standardisation and coefficients -> the fitted scores and
    DLRC probabilities again (the image-free half of the round trip); an unseen scanner is
    refused or harmonised from its own data, per the policy."""
    import dlrc_lib.scores.pipeline as pipeline
    from dlrc_lib.core.config import HarmonisationParams, SelectionParams
    from dlrc_lib.model.predict import score_patients

    study, *_ = fitted
    table = study.reset_index()
    sel = SelectionParams(mw_p=0.05, lasso_folds=5)
    fits = {name: pipeline.FeatureScore(HarmonisationParams(mode="all"), sel, seed=1).fit(
                _features(study, name, seed), table)
            for name, seed in (("Rad_score", 11), ("DL_score", 12))}
    scores, pred, doc = _model_document(study, fits, {"mode": "all", "batch": "scanner"})
    assert doc["harmonisation"]["known_batches"] == ["S1", "S2"]
    rad_all, dl_all = _features(study, "Rad_score", 11), _features(study, "DL_score", 12)
    train = study[study["cohort"] == "train"]
    out = score_patients(doc, train, rad_all.loc[train.index], dl_all.loc[train.index])
    assert np.abs(out["Rad_score"] - scores.loc[train.index, "Rad_score"]).max() < 1e-9
    assert np.abs(out["prob_dlrc"] - pred.loc[train.index, "prob_dlrc"]).max() < 1e-9
    # patients of a new scanner: refused by default, harmonised on request
    new = study.iloc[:6].assign(scanner="S9")
    rad_new, dl_new = rad_all.iloc[:6], dl_all.iloc[:6]
    with pytest.raises(DlrcError, match="scanner 'S9'"):
        score_patients(doc, new, rad_new, dl_new)
    out_new = score_patients(doc, new, rad_new, dl_new, policy="harmonise")
    assert (out_new["scanner_status"] == "harmonised from own data").all()
    assert np.isfinite(out_new["prob_dlrc"]).all()


def test_deep_weights_as_fitted(fitted):
    *_, doc = fitted
    from dlrc_lib.model.predict import _deep_seed, deep_params_of

    d = json.loads(json.dumps(doc))
    d["deep"]["preprocessing"] = {"weights": "auto"}
    d["deep"]["weights"] = {"spec": "auto", "source": "random", "identity": "random:seed=5", "seed": 5}
    assert deep_params_of(d).weights == "random" and _deep_seed(d) == 5
    d["deep"]["weights"] = {"spec": "auto", "source": "file", "path": "/w/resnet.pth", "identity": "sha"}
    assert deep_params_of(d).weights == "/w/resnet.pth"


@pytest.mark.parametrize("damage, message", [
    ("coefficient", "changed after export"),
    ("cutoff", "changed after export"),
    ("drop_key", "model file lacks nomogram"),
    ("drop_seal", "lacks its integrity digest"),
    ("resealed_string_coef", "dlrc.coef has no finite number for Rad_score"),
    ("resealed_code", "dlrc.coef has no finite number for"),
])
def test_tampered_model_is_refused(fitted, tmp_path, damage, message, capsys):
    """A model file edited after export is refused with one line; nothing in it is executed."""
    from dlrc_lib.model.export import document_digest
    from dlrc_lib.run.cli import main

    _, _, _, doc = fitted
    path = write_model(doc, tmp_path / "m.json")
    d = json.loads(path.read_text())
    if damage == "coefficient":
        d["dlrc"]["coef"]["Rad_score"] += 0.5
    elif damage == "cutoff":
        d["cutoffs"]["dlrc"] = 0.01
    elif damage == "drop_key":
        del d["nomogram"]
    elif damage == "drop_seal":
        del d["integrity"]
    else:  # a forged file with a matching digest: still checked for what it holds
        d["dlrc"]["coef"]["Rad_score"] = ("__import__('os').system('touch pwned')" if damage == "resealed_code"
                                          else "1.5")
        if damage == "resealed_code":
            d["dlrc"]["coef"]["(Intercept)"] = "exec"
        d["integrity"]["sha256"] = document_digest(d)
    path.write_text(json.dumps(d))
    with pytest.raises(DlrcError, match=message):
        load_model(path)
    manifest = tmp_path / "new.csv"
    manifest.write_text("patient_id,scanner\nP1,S1\n")
    rc = main(["predict", "--model", str(path), "--manifest", str(manifest), "--out", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message.split(" for")[0] in err
    assert not (tmp_path / "o.csv").exists() and not Path("pwned").exists()


def _run_with_validation_only_scanners(mode: str):
    """A small run: training and internal patients on scanners S1/S3, the external cohort on
    S2 (no training patient) and one external patient alone on S4; both scores fitted with
    ComBat in ``mode``, the DLRC model on top, exported as the run exports it."""
    import dlrc_lib.scores.pipeline as pipeline
    from dlrc_lib.core.config import HarmonisationParams, SelectionParams

    study = make_study()
    ext = study.index[study["cohort"] == "external"]
    study["scanner"] = np.where(np.arange(len(study)) % 2 == 0, "S1", "S3")
    study.loc[ext, "scanner"] = "S2"
    study.loc[ext[0], "scanner"] = "S4"
    table = study.reset_index()
    harm = HarmonisationParams(mode=mode, small_batch="skip")
    sel = SelectionParams(mw_p=0.05, lasso_folds=5)
    feats = {"Rad_score": _features(study, "Rad_score", 11), "DL_score": _features(study, "DL_score", 12)}
    fits = {name: pipeline.FeatureScore(harm, sel, seed=1).fit(feats[name], table) for name in feats}
    scores, pred, doc = _model_document(study, fits, {"mode": mode, "batch": "scanner", "scanner_policy": "refuse"})
    return study, feats, scores, pred, doc


@pytest.fixture(scope="module", params=["train_reference", "all"])
def harmonised_run(request):
    return request.param, _run_with_validation_only_scanners(request.param)


def _predict_cli(doc, tmp_path, monkeypatch, study, feats, ids, scanner=None, policy=None):
    """``dlrc predict`` on a manifest of ``ids`` (their stored features stand in for extraction)."""
    import dlrc_lib.model.predict as P

    model = write_model(doc, tmp_path / "model.json")
    rows = []
    for pid in ids:
        row = {"patient_id": pid, "scanner": scanner or study.loc[pid, "scanner"], "lnsd_mm": study.loc[pid, "lnsd_mm"]}
        for s in SEQS:
            for kind in ("image", "mask"):
                (tmp_path / f"{pid}_{kind}_{s}.nii.gz").write_bytes(b"x")
                row[f"{kind}_{s}"] = f"{pid}_{kind}_{s}.nii.gz"
        rows.append(row)
    manifest = tmp_path / "new.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    monkeypatch.setattr(P, "extract_features", lambda d, st, cache, n_jobs=0: (
        feats["Rad_score"].loc[st.index], feats["DL_score"].loc[st.index]))
    out = tmp_path / "pred.csv"
    argv = ["predict", "--model", str(model), "--manifest", str(manifest), "--out", str(out),
            "--cache-dir", str(tmp_path / "cache")] + (["--scanner-policy", policy] if policy else [])
    rc = cli_main(argv)
    return rc, (pd.read_csv(out, index_col="patient_id") if out.exists() else None)


def test_one_patient_of_a_validation_only_scanner_is_scored_as_in_the_run(harmonised_run, tmp_path, monkeypatch):
    """The model carries the ComBat estimates of every scanner the run harmonised, so one
    external patient alone (scanner S2: no training patient; S4: one patient, left as it was)
    gets the run's own Rad_score, DL_score and DLRC probability."""
    mode, (study, feats, scores, pred, doc) = harmonised_run
    harm = doc["harmonisation"]
    assert harm["known_batches"] == ["S1", "S2", "S3", "S4"]
    assert harm["own_data_batches"] == (["S2", "S4"] if mode == "train_reference" else [])
    ext = study.index[study["cohort"] == "external"]
    for i, pid in enumerate([ext[0], ext[1], ext[-1]]):
        rc, out = _predict_cli(doc, tmp_path / str(i), monkeypatch, study, feats, [pid])
        assert rc == 0 and list(out.index) == [pid] and out.loc[pid, "scanner_status"] == "seen"
        assert abs(out.loc[pid, "Rad_score"] - scores.loc[pid, "Rad_score"]) < 1e-9
        assert abs(out.loc[pid, "DL_score"] - scores.loc[pid, "DL_score"]) < 1e-9
        assert abs(out.loc[pid, "prob_dlrc"] - pred.loc[pid, "prob_dlrc"]) < 1e-9


def test_truly_new_scanner_refused_in_one_line_or_harmonised(harmonised_run, tmp_path, monkeypatch, capsys):
    mode, (study, feats, scores, pred, doc) = harmonised_run
    ext = list(study.index[study["cohort"] == "external"][1:4])
    rc, out = _predict_cli(doc, tmp_path / "r", monkeypatch, study, feats, ext[:2], scanner="S9")
    err = capsys.readouterr().err
    assert rc == 2 and out is None and err.count("\n") == 1
    assert f"scanner 'S9' (patients {ext[0]}, {ext[1]}): not seen when the model was fitted" in err
    assert "the model knows scanners S1, S2, S3, S4" in err and "--scanner-policy harmonise" in err
    rc, out = _predict_cli(doc, tmp_path / "h", monkeypatch, study, feats, ext, scanner="S9", policy="harmonise")
    assert rc == 0 and (out["scanner_status"] == "harmonised from own data").all()
    assert np.isfinite(out["prob_dlrc"]).all() and out["lnm_predicted"].isin([0, 1]).all()
    rc, out = _predict_cli(doc, tmp_path / "1", monkeypatch, study, feats, ext[:1], scanner="S9", policy="harmonise")
    err = capsys.readouterr().err
    assert rc == 2 and out is None and err.count("\n") == 1
    assert "needs at least 2 patients" in err and "the model knows scanners S1, S2, S3, S4" in err


def test_old_format_model_is_refused_in_one_line(fitted, tmp_path, capsys):
    """A model exported before the states carried every harmonised scanner (format 2) is
    refused with one line saying to re-run the run's notebooks 03-05."""
    from dlrc_lib.model.export import FORMAT_VERSION, document_digest

    *_, doc = fitted
    path = write_model(doc, tmp_path / "old.json")
    d = json.loads(path.read_text())
    assert d["format_version"] == FORMAT_VERSION == 3
    d["format_version"] = 2
    d["integrity"]["sha256"] = document_digest(d)
    path.write_text(json.dumps(d))
    manifest = tmp_path / "new.csv"
    manifest.write_text("patient_id,scanner\nP1,S1\n")
    rc = cli_main(["predict", "--model", str(path), "--manifest", str(manifest), "--out", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and not (tmp_path / "o.csv").exists()
    assert "model format version 2 is not supported" in err and "re-run the run's notebooks 03-05" in err
