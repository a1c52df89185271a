"""dlrc sweep: grid parsing (bad keys and values refused with one line), resumption, a failing
variant, the tables of notebook 09, and (slow) real sweeps on the quick twin's cache."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dlrc_lib.core.config import ParamsError
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.run.cli import main
from dlrc_lib.reporting import sensitivity as S
from dlrc_lib.run import executors as EX
from dlrc_lib.run import grid as G
from dlrc_lib.run import sweep as SW

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "params" / "quick.yaml"


def _grid(tmp_path: Path, doc: dict | str, name: str = "grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(autouse=True)
def _cwd(monkeypatch):
    monkeypatch.chdir(ROOT)  # parameter files name paths relative to the checkout


# --------------------------------------------------------------------------- parsing
def test_quick_and_paper_grids_parse():
    quick = G.parse_grid(ROOT / "params" / "sweep_quick.yaml", QUICK)
    assert len(quick.variants) >= 6
    assert quick.variants[0].name == "base" and quick.variants[0].overrides == {}
    paper = G.parse_grid(ROOT / "params" / "sweep_paper.yaml", ROOT / "params" / "paper.yaml")
    # the default grid: every choice it names is swept
    for key in ("harmonisation.mode", "selection.lasso_rule", "selection.mw_p", "selection.spearman_r",
                "deep.best_model_rule", "selection.stepwise_direction", "icc.threshold"):
        assert key in paper.keys
    modes = {v.choices["harmonisation.mode"] for v in paper.variants}
    assert modes == {"all", "train_reference", "none"}
    assert {v.choices["deep.best_model_rule"] for v in paper.variants} == {
        "train_auc", "internal_auc", "train_and_external_auc"}
    names = [v.name for v in paper.variants]
    assert len(names) == len(set(names))


def test_factorial_vary_alone_and_named_variants_dedupe(tmp_path):
    g = _grid(tmp_path, {
        "factors": {"harmonisation.mode": ["train_reference", "all"], "selection.lasso_rule": ["1se", "min"]},
        "vary_alone": {"selection.mw_p": [0.01, 0.05]},  # 0.01 is the base: already in the factorial
        "variants": {"combat_all_min": {"harmonisation.mode": "all", "selection.lasso_rule": "min"},
                     "strict": {"selection.spearman_r": 0.7}},
    })
    grid = G.parse_grid(g, QUICK)
    names = [v.name for v in grid.variants]
    assert names == ["base", "lasso_rule=min", "mode=all", "mode=all__lasso_rule=min", "mw_p=0.05", "strict"]
    strict = grid.variants[-1]
    assert strict.choices == {"harmonisation.mode": "train_reference", "selection.lasso_rule": "1se",
                              "selection.mw_p": 0.01, "selection.spearman_r": 0.7}
    vp = G.variant_params(QUICK, strict)
    assert vp.selection.spearman_r == 0.7 and vp.sweep.grid is None


@pytest.mark.parametrize("doc, expected", [
    ({"factors": {"selection.lasso_rul": ["1se"]}}, "unknown parameter key 'selection.lasso_rul'"),
    ({"factors": {"selection.lasso_rule": ["1se", "max"]}}, "selection.lasso_rule = 'max' is not allowed"),
    ({"factors": {"selection.mw_p": [0.01, 2]}}, "selection.mw_p = 2 is not allowed"),
    ({"factors": {"harmonisation": ["all"]}}, "key 'harmonisation' is a section"),
    ({"factors": {"study.scale": [0.1]}}, "key 'study.scale' cannot be swept"),
    ({"factors": {"run_name": ["x"]}}, "key 'run_name' cannot be swept"),
    ({"factors": {"selection.lasso_rule": "min"}}, "selection.lasso_rule needs a non-empty list"),
    ({"factors": {"selection.lasso_rule": ["min", "min"]}}, "selection.lasso_rule lists a value twice"),
    ({"factor": {"selection.lasso_rule": ["min"]}}, "unknown grid key 'factor'"),
    ({"variants": {"a b": {"selection.lasso_rule": "min"}}}, "name 'a b' may use only"),
    ({"variants": {"v1": {"deep.best_model_rule": "external_auc"}}}, "variants: v1: deep.best_model_rule"),
    ({}, "nothing to sweep"),
    ("factors: [", "not valid YAML"),
])
def test_bad_grids_are_refused_with_one_line(tmp_path, doc, expected):
    g = _grid(tmp_path, doc)
    with pytest.raises(ParamsError) as err:
        G.parse_grid(g, QUICK)
    msg = str(err.value)
    assert expected in msg and str(g) in msg and "\n" not in msg


def test_cli_refuses_a_bad_grid_in_one_line(tmp_path, capsys):
    g = _grid(tmp_path, {"factors": {"selection.lasso_rule": ["1se", "max"]}})
    assert main(["sweep", "--params", str(QUICK), "--grid", str(g), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "selection.lasso_rule = 'max'" in err and err.startswith("dlrc sweep: error:")
    assert not (tmp_path / "s").exists()


def test_missing_grid_file_in_params_is_refused(tmp_path):
    p = yaml.safe_load(QUICK.read_text())
    p["sweep"] = {"grid": "params/no_such_grid.yaml"}
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(p))
    with pytest.raises(ParamsError, match="sweep.grid"):
        from dlrc_lib.core.config import load_params

        load_params(f)


# ---------------------------------------------------------------- orchestration
class FakeNotebooks:
    """Stands in for `dlrc run --only ...` of a variant: writes the files a real run writes
    (Table 2 with AUC and CI, the selected features, the DLRC terms), with AUCs that depend on
    the variant's parameters, or fails for one parameter value."""

    def __init__(self, fail_when=None, interrupt_after=None):
        self.calls: list[str] = []
        self.fail_when = fail_when or {}
        self.interrupt_after = interrupt_after

    def __call__(self, vdir: Path, params_file: Path, only: list[str], root: Path):
        params = yaml.safe_load(params_file.read_text())
        if self.interrupt_after is not None and len(self.calls) >= self.interrupt_after:
            raise KeyboardInterrupt
        self.calls.append(vdir.name)
        for key, value in self.fail_when.items():
            section, k = key.split(".")
            if params[section][k] == value:
                return False, f"notebook 03_radiomics.ipynb failed in cell [7]: EmptySelectionError: {key} = {value}"
        shift = {"train_reference": 0.0, "all": 0.02, "none": -0.05}[params["harmonisation"]["mode"]]
        shift += 0.01 if params["selection"]["lasso_rule"] == "min" else 0.0
        rows = []
        for i, cohort in enumerate(("train", "internal", "external")):
            for j, model in enumerate(("radiomics", "ResNet50_2D", "DLRC")):
                auc = 0.6 + 0.05 * j - 0.02 * i + shift
                rows.append({"cohort": cohort, "model": model, "n": 20, "auc": auc,
                             "auc_lower": auc - 0.1, "auc_upper": auc + 0.1})
        (vdir / "tables").mkdir(exist_ok=True)
        pd.DataFrame(rows).to_csv(vdir / "tables" / "table2_performance.csv", index=False)
        res = vdir / "results"
        res.mkdir(exist_ok=True)
        (res / "03_radiomics.json").write_text(json.dumps({"state": {"features": ["a", "b"]}}))
        (res / "04_deep_learning.json").write_text(json.dumps(
            {"best_model": "ResNet50_2D", "states": {"ResNet50_2D": {"features": ["f1"]}}}))
        (res / "05_dlrc.json").write_text(json.dumps({"best_model": "ResNet50_2D",
                                                      "dlrc_terms": ["Rad_score", "c_lnm"]}))
        return True, None


def _small_grid(tmp_path):
    return _grid(tmp_path, {"factors": {"harmonisation.mode": ["train_reference", "all", "none"],
                                        "selection.lasso_rule": ["1se", "min"]}})


def _run(tmp_path, grid, executor, **kw):
    return SW.run_sweep(QUICK, grid, out=tmp_path / "sweep", jobs=2, executor=executor, quiet=True,
                        extract=False, **kw)


@pytest.fixture
def no_base_notebooks(monkeypatch):
    """The notebooks every variant shares (00-02) are the quick run's; here nothing is shared."""
    def plan(grid, root):
        notebooks = sorted((ROOT / "notebooks").glob("0[3-8]_*.ipynb"))
        return notebooks, 0
    monkeypatch.setattr(SW, "notebook_plan", plan)


def test_sweep_table_resumption_and_a_failing_variant(tmp_path, no_base_notebooks):
    grid = _small_grid(tmp_path)
    fake = FakeNotebooks(fail_when={"harmonisation.mode": "none"})
    res = _run(tmp_path, grid, fake)
    table = pd.read_csv(tmp_path / "sweep" / "sweep.csv")
    assert len(table) == 6 and sorted(fake.calls) == sorted(table["variant"])
    failed = table[table["status"] == "failed"]
    assert sorted(failed["variant"]) == ["mode=none", "mode=none__lasso_rule=min"]
    assert failed["error"].str.contains("EmptySelectionError").all()
    ok = table[table["status"] == "ok"].set_index("variant")
    assert ok.loc["mode=all__lasso_rule=min", "dlrc_external_auc"] == pytest.approx(0.6 + 0.1 - 0.04 + 0.03)
    assert ok.loc["base", "dlrc_external_auc_lo"] == pytest.approx(0.56 + 0.1 - 0.1 - 0.0)
    assert (ok["n_features_radiomics"] == 2).all() and (ok["dlrc_terms"] == "Rad_score; c_lnm").all()
    assert (ok["best_dl_model"] == "ResNet50_2D").all()
    assert set(res.failed) == set(failed["variant"])
    assert (tmp_path / "sweep" / "specification_curve.png").stat().st_size > 1000
    first = (tmp_path / "sweep" / "sweep.csv").read_bytes()

    # a second call recomputes nothing (failed variants are finished too) and writes the same table
    again = FakeNotebooks()
    res2 = _run(tmp_path, grid, again)
    assert again.calls == [] and len(res2.skipped) == 6
    assert (tmp_path / "sweep" / "sweep.csv").read_bytes() == first
    # failed variants run again on request
    retry = FakeNotebooks()
    _run(tmp_path, grid, retry, retry_failed=True)
    assert sorted(retry.calls) == ["mode=none", "mode=none__lasso_rule=min"]
    assert (pd.read_csv(tmp_path / "sweep" / "sweep.csv")["status"] == "ok").all()


def test_interrupted_sweep_resumes_without_rerunning_finished_variants(tmp_path, no_base_notebooks):
    grid = _small_grid(tmp_path)
    stop = FakeNotebooks(interrupt_after=3)
    with pytest.raises(KeyboardInterrupt):
        SW.run_sweep(QUICK, grid, out=tmp_path / "sweep", jobs=1, executor=stop, quiet=True, extract=False)
    done = list(stop.calls)
    assert len(done) == 3
    partial = pd.read_csv(tmp_path / "sweep" / "sweep.csv")
    assert (partial["status"] == "ok").sum() == 3 and (partial["status"] == "pending").sum() == 3
    assert not (tmp_path / "sweep" / ".sweep.pid").exists()
    rest = FakeNotebooks()
    res = _run(tmp_path, grid, rest)
    assert sorted(rest.calls + done) == sorted(v.name for v in G.parse_grid(grid, QUICK).variants)
    assert set(rest.calls).isdisjoint(done) and sorted(res.skipped) == sorted(done)
    assert (pd.read_csv(tmp_path / "sweep" / "sweep.csv")["status"] == "ok").all()


def test_changed_base_parameters_rerun_the_variants(tmp_path, no_base_notebooks):
    grid = _grid(tmp_path, {"factors": {"selection.lasso_rule": ["1se", "min"]}})
    _run(tmp_path, grid, FakeNotebooks())
    p = yaml.safe_load(QUICK.read_text())
    p["selection"]["spearman_r"] = 0.7
    other = tmp_path / "quick2.yaml"
    other.write_text(yaml.safe_dump(p))
    fake = FakeNotebooks()
    SW.run_sweep(other, grid, out=tmp_path / "sweep", jobs=1, executor=fake, quiet=True, extract=False)
    assert sorted(fake.calls) == ["base", "lasso_rule=min"]


def test_execution_settings_do_not_rerun_finished_variants(tmp_path, no_base_notebooks):
    grid = _grid(tmp_path, {"factors": {"selection.lasso_rule": ["1se", "min"]}})
    _run(tmp_path, grid, FakeNotebooks())
    p = yaml.safe_load(QUICK.read_text())
    p["sweep"] = {"grid": str(grid), "jobs": 2}
    p["radiomics"]["n_jobs"] = 1
    p["cache_dir"] = str(tmp_path / "elsewhere")  # the cache is keyed by content
    other = tmp_path / "quick_jobs.yaml"
    other.write_text(yaml.safe_dump(p))
    fake = FakeNotebooks()
    SW.run_sweep(other, grid, out=tmp_path / "sweep", jobs=1, executor=fake, quiet=True, extract=False)
    assert fake.calls == []


def test_a_running_sweep_is_not_started_twice(tmp_path, no_base_notebooks):
    out = tmp_path / "sweep"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (out / ".sweep.pid").write_text(f"{sleeper.pid}\n")
        with pytest.raises(Exception, match="another sweep is running"):
            _run(tmp_path, _small_grid(tmp_path), FakeNotebooks())
    finally:
        sleeper.kill()
        sleeper.wait()


class Timeline(FakeNotebooks):
    """FakeNotebooks that records when each variant started and ended."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.events: list[tuple[str, str]] = []

    def __call__(self, vdir, params_file, only, root):
        self.events.append(("start", vdir.name))
        time.sleep(0.2)
        try:
            return super().__call__(vdir, params_file, only, root)
        finally:
            self.events.append(("end", vdir.name))


def test_variants_sharing_memoised_fits_run_after_the_first_of_their_group():
    grid = G.parse_grid(ROOT / "params" / "sweep_paper.yaml", ROOT / "params" / "paper.yaml")
    deps = SW.shared_work_order(grid.variants)
    # the best-model rule changes no fit: those variants load their group's fits
    assert deps["mode=all__best_model_rule=train_auc"] == {"mode=all"}
    # the lambda rule and stepwise direction share the cross-validated LASSO path
    assert deps["mode=none__lasso_rule=min"] == {"mode=none"}
    assert deps["stepwise_direction=both"] == {"base"}
    assert deps["mode=none__lasso_rule=min__best_model_rule=internal_auc"] == {"mode=none", "mode=none__lasso_rule=min"}
    # different data into the LASSO: nothing shared, nothing to wait for
    for name in ("base", "mode=all", "mode=none", "mw_p=0.05", "spearman_r=0.9", "icc_threshold=0.9"):
        assert deps[name] == set()


def test_a_sweep_never_runs_a_variant_next_to_the_variant_whose_fits_it_reuses(tmp_path, no_base_notebooks):
    grid = _grid(tmp_path, {"factors": {"harmonisation.mode": ["train_reference", "all", "none"],
                                        "selection.lasso_rule": ["1se", "min"]},
                            "vary_alone": {"selection.stepwise_direction": ["both"]}})
    fake = Timeline()
    _run(tmp_path, grid, fake)
    order = {(kind, name): i for i, (kind, name) in enumerate(fake.events)}
    deps = SW.shared_work_order(G.parse_grid(grid, QUICK).variants)
    assert sum(bool(d) for d in deps.values()) == 4
    for name, leads in deps.items():
        for lead in leads:
            assert order[("start", lead)] < order[("start", name)], (name, lead)
    # two at a time all the same: the first two are leaders, which wait for nobody, and the
    # first variant to reuse base's LASSO path starts only when base has ended (the other
    # leaders were ready to take the free core)
    starts = [name for kind, name in fake.events if kind == "start"]
    assert set(starts[:2]) <= {"base", "mode=all", "mode=none"}
    assert order[("end", "base")] < order[("start", "lasso_rule=min")]
    assert len(fake.calls) == 7


def test_a_variant_starts_beside_its_leader_rather_than_leave_a_core_idle(tmp_path, no_base_notebooks):
    grid = _grid(tmp_path, {"factors": {"selection.lasso_rule": ["1se", "min"]}})
    fake = Timeline()
    _run(tmp_path, grid, fake)  # 2 jobs, 2 variants sharing the LASSO path: both at once
    # both started before either ended (the two starts race each other, so no order between them)
    assert [kind for kind, _ in fake.events[:2]] == ["start", "start"]
    assert {name for _, name in fake.events[:2]} == {"base", "lasso_rule=min"}


class WithOnly(FakeNotebooks):
    """FakeNotebooks that records which notebooks each variant was asked to run and what it
    found in its folder before running them."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.only: dict[str, list[str]] = {}
        self.found: dict[str, set[str]] = {}

    def __call__(self, vdir, params_file, only, root):
        self.only[vdir.name] = list(only)
        self.found[vdir.name] = {p.name for p in (vdir / "shared").glob("*")} if (vdir / "shared").exists() else set()
        return super().__call__(vdir, params_file, only, root)


def test_variants_that_change_only_later_notebooks_start_there(tmp_path, no_base_notebooks):
    shared_runs = []

    def fake_run(params_file, only, out, quiet, root):  # the base parameters' shared notebooks
        shared_runs.append((Path(out).name, list(only)))
        (Path(out) / "shared").mkdir(parents=True, exist_ok=True)
        for nb in only:
            (Path(out) / "shared" / f"{nb}.txt").write_text(nb)
        return 0

    grid = _grid(tmp_path, {"factors": {"selection.lasso_rule": ["1se", "min"],
                                        "deep.best_model_rule": ["train_and_external_auc", "train_auc", "internal_auc"]}})
    fake = WithOnly()
    _run(tmp_path, grid, fake, run_notebooks=fake_run)  # what runs the shared notebooks is the caller's
    # notebook 03 (the first of this plan) is where the lambda rule acts; the best-model rule
    # acts from notebook 04, so the two variants that change only it, and the base itself,
    # start at 04, from the base parameters' notebook 03 run once into base_04
    assert shared_runs == [("base_04", ["03"])]
    for name in ("base", "best_model_rule=train_auc", "best_model_rule=internal_auc"):
        assert fake.only[name][0] == "04" and fake.found[name] == {"03.txt"}
    for name in ("lasso_rule=min", "lasso_rule=min__best_model_rule=train_auc"):
        assert fake.only[name][0] == "03" and fake.found[name] == set()
    # a second call reuses everything, the shared folders included
    shared_runs.clear()
    again = WithOnly()
    res = _run(tmp_path, grid, again, run_notebooks=fake_run)
    assert again.only == {} and shared_runs == [] and len(res.skipped) == 6


# ------------------------------------------------------------------------- on Dask
@pytest.fixture
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        yield cluster


class OnWorker(FakeNotebooks):
    """FakeNotebooks that also records on which Dask worker each variant ran."""

    def __call__(self, vdir, params_file, only, root):
        from distributed import get_worker

        (vdir / "worker.txt").write_text(get_worker().address)
        return super().__call__(vdir, params_file, only, root)


def test_a_sweep_with_a_dask_scheduler_runs_its_variants_on_the_cluster(tmp_path, no_base_notebooks, dask_cluster):
    grid = _small_grid(tmp_path)
    p = yaml.safe_load(QUICK.read_text())
    p["radiomics"]["dask_scheduler"] = dask_cluster.scheduler_address
    pfile = tmp_path / "quick_dask.yaml"
    pfile.write_text(yaml.safe_dump(p))
    fake = OnWorker(fail_when={"harmonisation.mode": "none"})
    ex = EX.DaskExecutor(dask_cluster.scheduler_address, run_variant=fake)
    try:
        assert ex.threads == 2
        res = SW.run_sweep(pfile, grid, out=tmp_path / "sweep", executor=ex, quiet=True, extract=False)
    finally:
        ex.close()
    table = pd.read_csv(tmp_path / "sweep" / "sweep.csv")
    assert len(table) == 6 and (table["status"] == "failed").sum() == 2
    assert set(res.failed) == {"mode=none", "mode=none__lasso_rule=min"}
    workers = {(tmp_path / "sweep" / "variants" / v / "worker.txt").read_text() for v in table["variant"]}
    assert workers == set(dask_cluster.scheduler_info["workers"])


def test_an_unreachable_dask_scheduler_is_one_line():
    pytest.importorskip("distributed")
    with pytest.raises(DlrcError, match=r"dask_scheduler tcp://127.0.0.1:9: cannot connect"):
        EX.DaskExecutor("tcp://127.0.0.1:9", timeout_s=1)


_ENV_SCRIPT = """
import json, os, sys, time
vdir = sys.argv[1]
json.dump(dict(os.environ), open(os.path.join(vdir, "env.json"), "w"))
if vdir.endswith("slow"):
    time.sleep(60)
"""


def test_a_variant_on_a_dask_worker_drops_the_nannys_malloc_setting_and_stops_with_the_sweep(
        tmp_path, monkeypatch, dask_cluster):
    monkeypatch.setattr(EX, "_variant_command", lambda vdir, pfile, only: [sys.executable, "-c", _ENV_SCRIPT, str(vdir)])
    ex = EX.DaskExecutor(dask_cluster.scheduler_address)
    # a nanny-spawned worker carries MALLOC_TRIM_THRESHOLD_ (set here after the executor's
    # worker set-up, which removes it: the variant's own environment must leave it out too)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    try:
        fast = tmp_path / "fast"
        fast.mkdir()
        assert ex(fast, tmp_path / "p.yaml", ["03"], ROOT) == (True, None)
        env = json.loads((fast / "env.json").read_text())
        assert "MALLOC_TRIM_THRESHOLD_" not in env
        # one worker with 2 threads on this machine: each variant gets half of its cores
        assert list(ex.threads_by_host().values()) == [max(1, (os.cpu_count() or 1) // 2)]
        assert env["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))
        assert str(ROOT) in env["PYTHONPATH"].split(os.pathsep)
        assert not (fast / ".pid").exists()

        # an interrupted sweep ends the variants running on the workers
        slow = tmp_path / "slow"
        slow.mkdir()
        import threading

        result = {}
        t = threading.Thread(target=lambda: result.update(r=ex(slow, tmp_path / "p.yaml", ["03"], ROOT)))
        t0 = time.time()
        t.start()
        while not (slow / "env.json").exists() and time.time() - t0 < 30:
            time.sleep(0.1)
        pid = int((slow / ".pid").read_text())
        ex.stop()
        t.join(timeout=20)
        assert not t.is_alive() and time.time() - t0 < 40
        ok, error = result["r"]
        assert not ok and "exit status" in error
        assert not EX.process_alive(pid)
    finally:
        ex.close()


# ------------------------------------------------------------------- notebook 09's tables
def _table(rows):
    return pd.DataFrame(rows)


def test_main_effects_compare_variants_that_differ_in_one_choice_only():
    keys = ["a", "b"]
    rows = []
    for a in ("x", "y"):
        for b in ("p", "q", "r"):
            auc = 0.7 + (0.05 if a == "y" else 0) + {"p": 0, "q": -0.1, "r": 0.02}[b]
            rows.append({"variant": f"{a}{b}", "status": "ok", "a": a, "b": b, "dlrc_external_auc": auc})
    rows.append({"variant": "broken", "status": "failed", "a": "y", "b": "q", "dlrc_external_auc": np.nan})
    eff = S.main_effects(_table(rows), keys, {"a": "x", "b": "p"})
    got = {(r.key, r.level): (r.mean_change, r.pairs) for r in eff.itertuples()}
    assert got[("b", "q")][0] == pytest.approx(-0.1) and got[("b", "q")][1] == 2
    assert got[("a", "y")][0] == pytest.approx(0.05) and got[("a", "y")][1] == 3
    assert got[("b", "r")][0] == pytest.approx(0.02)
    assert list(eff["level"])[0] == "q"  # largest absolute change first


def test_claim_frequencies_count_holds_and_fails():
    t = _table([
        {"variant": "v1", "status": "ok", "claims_holding": "c1;c2", "claims_failing": "c3"},
        {"variant": "v2", "status": "ok", "claims_holding": "c1", "claims_failing": "c2;c3"},
        {"variant": "v3", "status": "failed", "claims_holding": None, "claims_failing": None},
    ])
    f = S.claim_frequencies(t).set_index("claim")
    assert f.loc["c1", "holds"] == 2 and f.loc["c1", "share_holding"] == 1.0
    assert f.loc["c2", "tested"] == 2 and f.loc["c2", "share_holding"] == 0.5
    assert f.loc["c3", "fails"] == 2 and f.loc["c3", "share_holding"] == 0.0


def test_runner_skips_notebook_09_without_a_grid(tmp_path):
    from dlrc_lib.core.errors import DlrcError
    from dlrc_lib.run.runner import run

    with pytest.raises(DlrcError, match="sweep.grid"):
        run(QUICK, only=["09"], out=tmp_path / "r", quiet=True)


# ----------------------------------------------------------- real sweeps (quick twin)
# They use params/quick.yaml's twin and feature cache (data/twin/quick, .dlrc_cache: the quick
# run's); on a checkout without them the sweep extracts them first (several minutes).
SWEEP_CMD = [sys.executable, "-m", "dlrc_lib.run.cli", "sweep", "--params", str(QUICK), "--grid",
             str(ROOT / "params" / "sweep_quick.yaml"), "--jobs", "2"]


@pytest.fixture(scope="module")
def quick_sweep(tmp_path_factory):
    """`dlrc sweep` on the quick twin, killed (SIGKILL) once two variants have finished, then
    called again to completion."""
    out = tmp_path_factory.mktemp("sweep") / "sweep"
    cmd = SWEEP_CMD + ["--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 2400
    while time.time() < deadline and proc.poll() is None:
        if len(list(out.glob("variants/*/variant.json"))) >= 2:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(2)
    proc.wait()
    first = {p.parent.name for p in out.glob("variants/*/variant.json")}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    return out, first, done


@pytest.mark.slow
def test_quick_sweep_completes_after_a_kill(quick_sweep):
    out, first, done = quick_sweep
    assert len(first) >= 2
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    assert f"{len(first)} variant(s) already finished" in done.stdout
    table = pd.read_csv(out / "sweep.csv")
    assert len(table) >= 6 and (table["status"] != "pending").all()
    ok = table[table["status"] == "ok"]
    assert len(ok) >= 5
    assert ok["dlrc_external_auc"].between(0, 1).all()
    assert (ok["dlrc_external_auc_lo"] <= ok["dlrc_external_auc"]).all()
    assert ok["dlrc_terms"].notna().all() and ok["n_features_radiomics"].notna().all()
    # the choices change the analysis: not every variant has the same radiomics model
    assert ok["radiomics_train_auc"].round(6).nunique() > 1
    assert (out / "specification_curve.png").stat().st_size > 1000
    for name in ok["variant"]:
        vdir = out / "variants" / name
        assert (vdir / "index.html").exists() and (vdir / "tables" / "table2_performance.csv").exists()
        assert not (vdir / ".pid").exists()


@pytest.mark.slow
def test_second_quick_sweep_recomputes_nothing_and_notebook_09_reads_it(quick_sweep, tmp_path):
    out, _, _ = quick_sweep
    before = (out / "sweep.csv").read_bytes()
    n = len(pd.read_csv(out / "sweep.csv"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    again = subprocess.run(SWEEP_CMD + ["--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=900)
    assert f"{n} variant(s) already finished" in again.stdout, again.stdout + again.stderr
    assert (out / "sweep.csv").read_bytes() == before
    # dlrc run with a sweep grid runs notebook 09 on the finished sweep
    p = yaml.safe_load(QUICK.read_text())
    p["sweep"] = {"grid": "params/sweep_quick.yaml", "out": str(out), "jobs": 2}
    pfile = tmp_path / "quick_sweep.yaml"
    pfile.write_text(yaml.safe_dump(p))
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "dlrc_lib.run.cli", "run", "--params", str(pfile), "--only", "09",
                           "--out", str(run_dir)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (run_dir / "figures" / "sensitivity_specification_curve.png").exists()
    effects = pd.read_csv(run_dir / "tables" / "sensitivity_main_effects.csv")
    assert set(effects["key"]) == {"harmonisation.mode", "selection.lasso_rule", "selection.stepwise_direction"}
    res = json.loads((run_dir / "results" / "09_sensitivity.json").read_text())
    assert res["variants"] == n and res["largest_effect"]["key"] in effects["key"].tolist()
