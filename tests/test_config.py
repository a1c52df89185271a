from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dlrc_lib.core.config import Params, ParamsError, flatten, load_params, section_from_flat

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


def test_shipped_parameter_files_validate(monkeypatch):
    monkeypatch.chdir(ROOT)
    for name in ("paper", "quick", "teach"):
        params = load_params(ROOT / "params" / f"{name}.yaml")
        assert params.run_name == name
    # the class-sized run: half the patients (so ~100 internal-validation patients), the 2D networks
    teach = load_params(ROOT / "params" / "teach.yaml")
    assert teach.study.scale == 0.5 and teach.deep.models == ["ResNet50_2D", "ResNet101_2D", "ResNet152_2D"]
    assert teach.study.exclusions == {k: 222 for k in teach.study.exclusions}


def test_unknown_key_is_named_with_file(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    p = write(tmp_path, "study:\n  scael: 0.1\n")
    with pytest.raises(ParamsError) as err:
        load_params(p)
    msg = str(err.value)
    assert "study.scael" in msg and str(p) in msg and "unknown key" in msg
    assert "\n" not in msg


def test_wrong_type_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    p = write(tmp_path, "seed: many\n")
    with pytest.raises(ParamsError, match=r"key 'seed'"):
        load_params(p)


def test_out_of_range_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ParamsError, match=r"study.scale"):
        load_params(write(tmp_path, "study:\n  scale: 2\n"))


def test_missing_file_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    p = write(tmp_path, "radiomics:\n  settings: nowhere/radiomics.yaml\n")
    with pytest.raises(ParamsError, match=r"radiomics.settings.*nowhere/radiomics.yaml"):
        load_params(p)
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "absent.yaml")


def test_manifest_source_needs_manifest(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ParamsError, match="study.manifest"):
        load_params(write(tmp_path, "study:\n  source: manifest\n"))


def test_flatten_and_rebuild_round_trip():
    params = Params()
    flat = flatten(params)
    assert flat["selection_mw_p"] == params.selection.mw_p
    assert flat["seed"] == params.seed
    rebuilt = section_from_flat("selection", {**flat, "selection_mw_p": 0.05})
    assert rebuilt.mw_p == 0.05 and rebuilt.spearman_r == params.selection.spearman_r


def test_cli_bad_yaml_one_line(monkeypatch):
    proc = subprocess.run(
        [sys.executable, "-m", "dlrc_lib.run.cli", "run", "--params", "params/bad.yaml"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "study.scael" in lines[0] and "params/bad.yaml" in lines[0]


def test_cli_help_lists_verbs():
    proc = subprocess.run([sys.executable, "-m", "dlrc_lib.run.cli", "--help"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0
    for verb in ("run", "synth", "validate", "extract", "predict"):
        assert verb in proc.stdout


def test_with_overrides_validates_like_load_params_without_reading_the_file_again(tmp_path):
    import shutil

    from dlrc_lib.core.config import load_params

    src = tmp_path / "p.yaml"
    shutil.copy(ROOT / "params" / "quick.yaml", src)
    for name in ("radiomics_quick.yaml", "published_values.yaml"):
        if (ROOT / "params" / name).exists():
            shutil.copy(ROOT / "params" / name, tmp_path / name)
    base = load_params(src)
    expected = load_params(src, overrides={"selection.lasso_rule": "min", "seed": 7})
    src.unlink()  # the overrides apply to the mapping read once
    got = base.with_overrides({"selection.lasso_rule": "min", "seed": 7})
    assert got.model_dump() == expected.model_dump() and got.selection.lasso_rule == "min"
    assert base.selection.lasso_rule != "min"  # the base is unchanged
    with pytest.raises(ParamsError, match="selection.lasso_rule"):
        base.with_overrides({"selection.lasso_rule": "sometimes"})
    with pytest.raises(ParamsError, match="not read from a file"):
        Params().with_overrides({"seed": 1})
