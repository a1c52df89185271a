"""``kill -9`` of ``dlrc run`` at six moments (twin generation, radiomics extraction, deep
extraction, notebook 03, notebook 06, the last notebook and report), each followed by a
rerun on the same cache, ends with tables byte-identical to an uninterrupted run.

Slow (two quick runs and six partial ones): ``make test-all``. The normal suite has the
short kill-and-resume of the extraction (tests/test_radiomics.py) and the damaged-cache
test (tests/test_cache_integrity.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _params(base: Path, name: str) -> Path:
    params = yaml.safe_load((ROOT / "params" / "quick.yaml").read_text())
    params["cache_dir"] = str(base / f"cache_{name}")
    params["radiomics"]["settings"] = str(ROOT / params["radiomics"]["settings"])
    params["study"]["twin_dir"] = str(base / f"twin_{name}")
    path = base / f"{name}.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _cmd(params: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "dlrc_lib.run.cli", "run", "--params", str(params), "--out", str(out)]


def _count(folder: Path, pattern: str) -> int:
    return len(list(folder.glob(pattern))) if folder.exists() else 0


def test_kill_at_six_moments_then_rerun_is_byte_identical(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ref_out = tmp_path / "reference"
    ref = subprocess.run(_cmd(_params(tmp_path, "ref"), ref_out), cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=3600)
    assert ref.returncode == 0, ref.stderr[-4000:]

    params = _params(tmp_path, "killed")
    out = tmp_path / "killed"
    cache = tmp_path / "cache_killed"
    twin = tmp_path / "twin_killed"
    moments = {
        "twin generation": lambda: _count(twin / "patients", "*/.done") >= 5,
        "radiomics extraction": lambda: _count(cache / "features" / "radiomics" / "shards", "*/*.parquet") >= 10,
        "deep extraction": lambda: _count(cache / "features", "deep-*/shards/*/*.parquet") >= 3,
        "notebook 03": lambda: (out / "html" / "02_icc.html").exists(),
        "notebook 06": lambda: (out / "html" / "05_dlrc.html").exists(),
        "last notebook and report": lambda: (out / "html" / "07_decision_curve.html").exists(),
    }
    killed = []
    for name, reached in moments.items():
        proc = subprocess.Popen(_cmd(params, out), cwd=ROOT, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 1800
        while time.time() < deadline and proc.poll() is None and not reached():
            time.sleep(0.05)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed.append(name)
        proc.communicate(timeout=120)
        # the earlier moments' outputs are removed so that the next moment is reached again
        for stale in (out / "html").glob("*.html") if out.exists() else []:
            stale.unlink()
    assert len(killed) >= 5, killed
    final = subprocess.run(_cmd(params, out), cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert final.returncode == 0, final.stderr[-4000:]
    assert "damaged" not in final.stderr
    tables = sorted((ref_out / "tables").glob("*.csv")) + sorted((ref_out / "tables").glob("*.md"))
    assert len(tables) > 20
    for table in tables:
        assert (out / "tables" / table.name).read_bytes() == table.read_bytes(), table.name
    for res in sorted((ref_out / "results").glob("*.json")):
        first, second = (json.loads(p.read_text()) for p in (res, out / "results" / res.name))
        first.pop("provenance", None), second.pop("provenance", None)
        assert first == second, res.name
    # nothing half-written under a real name: what a kill interrupted is only a hidden
    # temporary file (removed by a later run once it is an hour old)
    leftovers = [p for root in (out, cache) for p in root.rglob("*.tmp")]
    assert all(p.name.startswith(".") for p in leftovers), leftovers[:5]
