"""The notebooks as a student uses them: JupyterLab started from this environment, driven in
headless Chromium (Debian's chromium + chromium-driver, selenium at /usr/bin/chromedriver).

Notebooks 05, 06 and 07 are opened against a finished quick run, run with Run > Run All
Cells, must show no error, and one slider of each widget is moved with the keyboard; the
numbers the widget then shows must be those the library computes for the new input.

Needs the finished quick run of ``tests/conftest.py`` (shared with test_quick_run.py).
Without chromium, chromedriver or selenium the test is skipped, except where
``DLRC_REQUIRE_BROWSER=1`` (CI: ``.ci/run`` installs them), where it fails. Screenshots go
to ``$DLRC_SCREENSHOTS`` when set (else the test's temporary folder).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
NOTEBOOKS = ("05_dlrc", "06_calibration", "07_decision_curve")
TOKEN = "dlrc-browser-test"


def _need_browser():
    missing = [p for p in (CHROMEDRIVER, CHROMIUM) if not Path(p).exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        msg = f"browser test needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("DLRC_REQUIRE_BROWSER") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(finished_quick_run, tmp_path_factory):
    """JupyterLab from this venv on a copy of the notebooks, reading the quick run."""
    _need_browser()
    from dlrc_lib.run.lab import lab_command, lab_environment

    run_dir = finished_quick_run
    base = tmp_path_factory.mktemp("lab")
    (base / "notebooks").mkdir()
    for nb in NOTEBOOKS:  # a copy: the lab may autosave, the repository's notebooks stay clean
        shutil.copy(ROOT / "notebooks" / f"{nb}.ipynb", base / "notebooks" / f"{nb}.ipynb")
    settings = base / "settings"
    tracker = settings / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    # every cell in the DOM (no virtual scrolling), no news pop-up
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    notif = settings / "@jupyterlab" / "apputils-extension"
    notif.mkdir(parents=True)
    (notif / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                        "checkForUpdates": False}))
    env = lab_environment(Path(run_dir), ROOT)
    env.update(JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
               JUPYTER_RUNTIME_DIR=str(base / "runtime"), IPYTHONDIR=str(base / "ipython"),
               MPLBACKEND="Agg")
    port = _free_port()
    log = open(base / "lab.log", "w")
    proc = subprocess.Popen(  # the command `dlrc lab` runs, on the copy
        lab_command(base, ["--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
                           f"--IdentityProvider.token={TOKEN}", "--LabApp.expose_app_in_browser=True"]),
        cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail("JupyterLab did not start:\n" + (base / "lab.log").read_text()[-3000:])
            time.sleep(1)
    yield url, base, Path(run_dir)
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser(lab):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1100",
                "--disable-gpu"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    target = os.environ.get("DLRC_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------- helpers
def _wait(cond, timeout: float, what: str, poll: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def open_and_run_all(driver, url: str, notebook: str, timeout: float = 400) -> None:
    """Open the notebook, wait for its kernel, Run > Run All Cells, wait until every code
    cell has run; fail on any error output."""
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/lab/tree/notebooks/{notebook}.ipynb?token={TOKEN}")
    _wait(lambda: driver.execute_script(
        "const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        "return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle' && w.context.isReady);"),
        120, f"{notebook}: kernel idle")
    # the menu, as a student would: Run > Run All Cells
    menu = [e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel") if e.text == "Run"]
    assert menu, "no Run menu"
    menu[0].click()
    item = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, 'li.lm-Menu-item[data-command="runmenu:run-all"]'),
                 20, "Run All Cells menu item")
    item[0].click()
    state_js = """
        const nb = window.jupyterapp.shell.currentWidget;
        const cells = nb.content.model.cells;
        const session = nb.sessionContext.session;
        const out = {pending: 0, errors: [], status: session && session.kernel ? session.kernel.status : 'no kernel'};
        for (let i = 0; i < cells.length; i++) {
          const c = cells.get(i).toJSON();
          if (c.cell_type !== 'code') continue;
          if (c.execution_count === null) out.pending += 1;
          for (const o of c.outputs || []) {
            if (o.output_type === 'error') out.errors.push(i + ': ' + o.ename + ': ' + o.evalue);
          }
        }
        const running = Array.from(document.querySelectorAll('.jp-InputArea-prompt'))
          .filter(p => p.textContent.includes('*')).length;
        out.pending += running;
        return out;"""

    def done():
        st = driver.execute_script(state_js)
        if st["errors"]:
            raise AssertionError(f"{notebook}: error output: {st['errors']}")
        if st["status"] in ("dead", "no kernel"):
            raise AssertionError(f"{notebook}: the kernel died while running ({st['status']})")
        return st if st["pending"] == 0 and st["status"] == "idle" else None

    _wait(done, timeout, f"{notebook}: all cells run", poll=1.0)


def press(driver, css: str, key: str, times: int, handle: int = 0) -> None:
    """Focus a slider handle under ``css`` and press ``key`` (arrow keys move one step)."""
    from selenium.webdriver.common.by import By

    handles = driver.find_elements(By.CSS_SELECTOR, f"{css} .noUi-handle")
    assert handles, f"no slider under {css}"
    h = handles[handle]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", h)
    for _ in range(times):
        h.send_keys(key)
        time.sleep(0.15)


def text_of(driver, css: str) -> str:
    """The text of the first element matching ``css`` (read in one step: outputs are replaced
    while the kernel answers)."""
    return driver.execute_script("const e = document.querySelector(arguments[0]);"
                                 "return e ? e.textContent.trim() : '';", css)


def shoot(driver, css: str, path: Path) -> None:
    from selenium.webdriver.common.by import By

    el = driver.find_elements(By.CSS_SELECTOR, css)
    if el:
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", el[0])
        time.sleep(0.5)
    driver.save_screenshot(str(path))


def table_rows(driver, css: str) -> list[dict[str, str]]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr')).map(r => {"
        "  const o = {}; r.querySelectorAll('td[data-field]').forEach(td => o[td.dataset.field] = td.textContent);"
        "  return o; });", css)


# ------------------------------------------------------------------- tests
def test_05_calculator_and_cutoff_explorer(lab, browser, shots):
    from selenium.webdriver.common.keys import Keys

    from dlrc_lib.reporting import widgets as W
    from dlrc_lib.model.nomogram import Nomogram

    url, _, run_dir = lab
    open_and_run_all(browser, url, "05_dlrc")
    doc = json.loads((run_dir / "model" / "dlrc_model.json").read_text())
    nom = Nomogram.from_dict(doc["nomogram"])
    results = json.loads((run_dir / "results" / "05_dlrc.json").read_text())
    predictions = pd.read_parquet(run_dir / "data" / "predictions.parquet")

    # --- nomogram calculator: the first score's slider, ten steps to the right
    risk_css = ".dlrc-calc-out [data-field=risk]"
    _wait(lambda: text_of(browser, risk_css), 60, "calculator output")
    shoot(browser, ".dlrc-calculator", shots / "05_calculator_before.png")
    before = text_of(browser, risk_css)
    # each slider as the widget sets it up: a score in its own model's risk (%), a clinical
    # term in its own unit; the patient the library scores is the logit of that risk
    scale = {}
    for t in nom.terms:
        if t not in nom.binary:
            a, b = nom.ranges[t]
            if t in W.SCORE_MODELS:
                a, b = (100 / (1 + np.exp(-v)) for v in (a, b))
                scale[t] = (a, b, round((a + b) / 2, 1), lambda v: float(np.log(v / (100 - v))))
            else:
                scale[t] = (a, b, round((a + b) / 2, 3), lambda v: v)
    slider = {t: mid for t, (_, _, mid, _) in scale.items()}

    def patient_of(values):
        return {**{t: 0.0 for t in nom.binary}, **{t: scale[t][3](v) for t, v in values.items()}}

    def expected_risk(values):
        p = patient_of(values)
        return f"{100 * nom.risk_from_total(nom.points_for(p)['total']):.1f} %"

    assert expected_risk(slider) == before
    # ten slider steps (of 200 over the range) to the right of the first score; on a small run
    # the model can be nearly separated and its risk saturated at 0 or 100 % there, so move
    # to the end of the range (exact: the slider stops there), to the left, or another score's
    # slider, until the library's risk changes
    moves = [(t, key, sign, steps) for steps in (10, 100) for t in scale
             for key, sign in ((Keys.ARROW_RIGHT, 1), (Keys.ARROW_LEFT, -1))]
    for score, key, sign, steps in moves:
        lo, hi, _, _ = scale[score]
        moved = dict(slider, **{score: min(hi, max(lo, slider[score] + sign * steps * (hi - lo) / 200))})
        if expected_risk(moved) != before:
            slider = moved
            break
    else:
        pytest.fail(f"the nomogram's risk is {before} wherever one score's slider is")
    patient = patient_of(slider)
    press(browser, f".dlrc-term-{score}", key, steps)
    _wait(lambda: text_of(browser, risk_css) == expected_risk(slider), 60,
          f"the risk the library computes ({expected_risk(slider)}; shown: {text_of(browser, risk_css)})")
    assert text_of(browser, f".dlrc-calc-out [data-field=points_{score}]") == \
        f"{nom.points_for(patient)[score]:.1f}"
    shoot(browser, ".dlrc-calculator", shots / "05_calculator_after.png")

    # --- cut-off explorer: starts exactly at the training cut-off; four steps up
    thr_css = ".dlrc-cutoff-out .dlrc-thr"
    cut = results["cutoffs"]["dlrc"]
    start = browser.execute_script(f"return document.querySelector('{thr_css}').dataset.value")
    # the training cut-off itself, not a value rounded to the slider step (0.005); the notebook
    # recomputes it, so allow for the last bits of floating point
    assert float(start) == pytest.approx(cut, abs=1e-12)
    cut = float(start)
    shoot(browser, ".dlrc-cutoff-explorer", shots / "05_cutoff_explorer_before.png")
    press(browser, ".dlrc-threshold", Keys.ARROW_RIGHT, 4)
    target = cut + 4 * W.THRESHOLD_STEP
    thr = _wait(lambda: (lambda v: v if abs(v - target) < 1e-9 else None)(
        float(browser.execute_script(f"return document.querySelector('{thr_css}').dataset.value"))),
        60, "the threshold four steps up")
    want = W.for_people(W.cutoff_table(predictions, "dlrc", thr))
    shown = table_rows(browser, ".dlrc-cutoff")
    assert [r["cohort"] for r in shown] == list(want["cohort"])
    for r, (_, w) in zip(shown, want.iterrows()):
        for k in ("TP", "FN", "TN", "FP", "SEN", "SPE", "PPV", "NPV"):
            assert r[k] == str(w[k]), (r["cohort"], k)
    points = browser.execute_script(
        "return Array.from(document.querySelectorAll('.dlrc-roc-point')).map(c => [c.dataset.fpr, c.dataset.tpr]);")
    assert len(points) == len(want)
    shoot(browser, ".dlrc-cutoff-explorer", shots / "05_cutoff_explorer_after.png")


def test_06_calibration_explorer(lab, browser, shots):
    from selenium.webdriver.common.keys import Keys

    from dlrc_lib.reporting import widgets as W
    from dlrc_lib.evaluation.calibration import model_columns

    url, _, run_dir = lab
    open_and_run_all(browser, url, "06_calibration")
    predictions = pd.read_parquet(run_dir / "data" / "predictions.parquet")
    results = json.loads((run_dir / "results" / "05_dlrc.json").read_text())
    models = model_columns(results.get("best_model"))
    g_css = ".dlrc-hl-out .dlrc-hl-g"
    _wait(lambda: text_of(browser, g_css), 60, "calibration explorer")
    start = int(text_of(browser, g_css))
    press(browser, ".dlrc-hl-groups", Keys.ARROW_LEFT, 3)
    # each key press is one change the kernel answers; wait for the last one
    _wait(lambda: text_of(browser, g_css) == str(start - 3), 90, f"{start - 3} risk groups")
    g = start - 3
    want = W.calibration_summary(predictions, models, g)
    shown = table_rows(browser, ".dlrc-hl")
    assert len(shown) == len(want)
    for r, (_, w) in zip(shown, want.iterrows()):
        assert r["p"] == w["p"] and float(r["HL chi-square"]) == pytest.approx(w["HL chi-square"], abs=5e-3)
    shoot(browser, ".dlrc-calibration-explorer", shots / "06_calibration_explorer.png")


def test_07_decision_curve_explorer(lab, browser, shots):
    from selenium.webdriver.common.keys import Keys

    from dlrc_lib.reporting import widgets as W

    url, _, run_dir = lab
    open_and_run_all(browser, url, "07_decision_curve")
    curves = pd.read_parquet(run_dir / "data" / "decision_curves.parquet")
    hi_css = ".dlrc-dca-out .dlrc-dca-hi"
    _wait(lambda: text_of(browser, hi_css), 60, "decision-curve explorer")
    start = text_of(browser, hi_css)
    press(browser, ".dlrc-dca-range", Keys.ARROW_LEFT, 10, handle=1)  # the upper end, 10 steps down
    target = f"{float(start.rstrip('%')) - 10:.0f}%"
    _wait(lambda: text_of(browser, hi_css) == target, 120, f"the range to end at {target}")
    lo = float(text_of(browser, ".dlrc-dca-out .dlrc-dca-lo").rstrip("%")) / 100
    hi = float(target.rstrip("%")) / 100
    want = W.decision_curve_window(curves, lo, hi)
    shown = table_rows(browser, ".dlrc-dca")
    assert len(shown) == len(want)
    for r, (_, w) in zip(shown, want.iterrows()):
        assert r["strategy"] == w["strategy"]
        for col in want.columns[2:]:
            if pd.isna(w[col]):  # the row of tied thresholds has no net benefit of its own
                continue
            assert float(r[col]) == pytest.approx(float(w[col]), abs=6e-4), (r["strategy"], col)
    shoot(browser, ".dlrc-dca-explorer", shots / "07_decision_curve_explorer.png")
