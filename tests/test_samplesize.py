"""Minimum sample size for an external validation (:mod:`dlrc_lib.stats.samplesize`), pinned to
the reference ``pmvalsampsize`` (PyPI, version 0.2.1; GPL-3, so used to produce these numbers,
never imported: this test does not need it), run with numpy 2.4.6 and scipy 1.17.1 as
``pmvalsampsize(type="b", noprint=True, **call)``. Its calibration-slope criterion (and the
sensitivity/specificity read off the linear predictor) come from 1,000,000 draws after
``np.random.seed(123456)``; dlrc replicates the same draws, so every number agrees exactly.

``lpcstat=m`` is the reference's C-and-prevalence linear predictor started at
m = logit(prevalence) − Φ⁻¹(C)², the mean dlrc solves for (:func:`binormal_lp`); the reference
accepted it without iterating in every set below (its simulated prevalence within its 5e-4
tolerance; dlrc's ``simulated_prevalence`` shows it). The paper's numbers: DLRC AUC 0.807
(external validation) and 0.789 (internal), LNM prevalence 339/1095 (Table 1).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special
from scipy import stats as sps

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.run.cli import main
from dlrc_lib.stats import validation_sample_size
from dlrc_lib.stats.samplesize import binormal_lp, cstat_criterion, oe_criterion
from dlrc_lib.study.cohort_size import cohort_size_lines, paper_reference, run_cohort_size_lines

PAPER_PREV = 339 / 1095

# (label, the reference call's arguments (dlrc's names), its N per criterion [O/E, slope, C(, net
# benefit)], final N, final events (ceil), (sensitivity, specificity) read off the simulated LP or None)
PINNED = [
    # README example: pmvalsampsize(type="b", cstatistic=0.8, lpbeta=(1.33, 1.75), prevalence=0.43)
    ("readme", dict(cstatistic=0.8, prevalence=0.43, lp_beta=(1.33, 1.75)), [510, 2136, 308], 2136, 919, None),
    # R documentation example: prevalence=0.018, cstatistic=0.8, lpnormal=(-5, 2.5), oeciwidth=1
    ("r-normal", dict(cstatistic=0.8, prevalence=0.018, lp_normal=(-5, 2.5), oe_ciwidth=1),
     [905, 4544, 4252], 4544, 82, None),
    # the same with lpbeta=(0.5, 0.5): the C-statistic binds
    ("r-beta", dict(cstatistic=0.8, prevalence=0.018, lp_beta=(0.5, 0.5), oe_ciwidth=1),
     [905, 1644, 4252], 4252, 77, None),
    # ... lpnormal=(-5, 2.5), oeciwidth=1, threshold=0.1 (sensitivity/specificity from the simulation)
    ("r-normal-nb", dict(cstatistic=0.8, prevalence=0.018, lp_normal=(-5, 2.5), oe_ciwidth=1, threshold=0.1),
     [905, 4544, 4252, 12454], 12454, 225, (0.765, 0.904)),
    # ... threshold=0.1, sensitivity=0.7, specificity=0.9: 0.2.1 computes n1..n4 then raises
    # UnboundLocalError ('n5'); the four N are its pmvalsampsize_bin frame's n1, n2, n3, n4
    ("r-normal-nb-given", dict(cstatistic=0.8, prevalence=0.018, lp_normal=(-5, 2.5), oe_ciwidth=1, threshold=0.1,
                               sensitivity=0.7, specificity=0.9), [905, 4544, 4252, 13773], 13773, 248, None),
    # the paper, external validation: cstatistic=0.807, prevalence=339/1095, lpcstat=-1.553546764947367
    ("paper-external", dict(cstatistic=0.807, prevalence=PAPER_PREV), [858, 2085, 342], 2085, 646, None),
    # internal validation AUC: cstatistic=0.789, prevalence=339/1095, lpcstat=-1.4467800697346809
    ("paper-internal", dict(cstatistic=0.789, prevalence=PAPER_PREV), [858, 2266, 370], 2266, 702, None),
    # the internal cohort's own prevalence: cstatistic=0.789, prevalence=63/204, lpcstat=-1.4503639649222337
    ("internal-cohort", dict(cstatistic=0.789, prevalence=63 / 204), [861, 2269, 370], 2269, 701, None),
    # external, with threshold=0.3: lpcstat=-1.553546764947367, threshold=0.3
    ("paper-external-nb", dict(cstatistic=0.807, prevalence=PAPER_PREV, threshold=0.3),
     [858, 2085, 342, 471], 2085, 646, (0.744, 0.718)),
    # cstatistic=0.842, prevalence=0.31, lpcstat=-1.805549983292428
    ("c0842", dict(cstatistic=0.842, prevalence=0.31), [856, 1826, 285], 1826, 567, None),
    # cstatistic=0.838, prevalence=0.31, lpcstat=-1.7728503747559121
    ("c0838", dict(cstatistic=0.838, prevalence=0.31), [856, 1851, 292], 1851, 574, None),
    # every width changed: prevalence=0.1, cstatistic=0.75, lpnormal=(-2.5, 1.0), oeciwidth=0.3,
    # csciwidth=0.3, cstatciwidth=0.08, threshold=0.2, nbciwidth=0.3
    ("widths", dict(cstatistic=0.75, prevalence=0.1, lp_normal=(-2.5, 1.0), oe_ciwidth=0.3, slope_ciwidth=0.3,
                    cstat_ciwidth=0.08, threshold=0.2, nb_ciwidth=0.3), [1546, 2491, 1574, 587], 2491, 250,
     (0.376, 0.896)),
]

# lpcstat values passed to the reference, by (C, prevalence)
LPCSTAT = {(0.807, PAPER_PREV): -1.553546764947367, (0.789, PAPER_PREV): -1.4467800697346809,
           (0.789, 63 / 204): -1.4503639649222337, (0.842, 0.31): -1.805549983292428,
           (0.838, 0.31): -1.7728503747559121}


@pytest.mark.parametrize("label, kwargs, ns, final, events, sens_spec", PINNED, ids=[p[0] for p in PINNED])
def test_matches_pmvalsampsize(label, kwargs, ns, final, events, sens_spec):
    res = validation_sample_size(**kwargs)
    assert [c.n for c in res.criteria] == ns
    assert [c.events for c in res.criteria] == [math.ceil(n * kwargs["prevalence"]) for n in ns]
    assert (res.n, res.events) == (final, events)
    assert res.binding.n == final and res.binding.name == ("O/E", "calibration slope", "C-statistic",
                                                           "net benefit")[ns.index(final)]
    if sens_spec is not None:
        assert (res.sensitivity, res.specificity) == pytest.approx(sens_spec, abs=1e-12)
    if kwargs.get("lp_normal") is None and kwargs.get("lp_beta") is None:
        # the reference's starting mean, and its tolerance met at once (no iteration)
        m, var = binormal_lp(kwargs["cstatistic"], kwargs["prevalence"])
        assert m == pytest.approx(LPCSTAT[(kwargs["cstatistic"], kwargs["prevalence"])], rel=1e-13)
        assert abs(res.simulated_prevalence - kwargs["prevalence"]) <= 5e-4


def test_reference_conventions():
    """O/E width on the O/E scale, SE stepped by 1e-4 (the reference's SE values); C by
    Newcombe's SE; the net benefit SE rounded to 3 decimals."""
    n, se = oe_criterion(0.43, 0.2)
    assert (n, se) == (510, pytest.approx(0.051000000000000434, rel=1e-12))
    assert math.exp(1.96 * se) - math.exp(-1.96 * se) >= 0.2 > math.exp(1.96 * (se - 1e-4)) - math.exp(-1.96 * (se - 1e-4))
    assert oe_criterion(0.018, 1.0)[1] == pytest.approx(0.24559999999998927, rel=1e-12)
    n3, se3 = cstat_criterion(0.8, 0.43, 0.1)
    assert (n3, se3) == (308, pytest.approx(0.02550078345985495, rel=1e-12))
    assert 2 * 1.96 * se3 <= 0.1
    res = validation_sample_size(0.8, 0.018, lp_normal=(-5, 2.5), oe_ciwidth=1, threshold=0.1,
                                 sensitivity=0.7, specificity=0.9)
    nb = res.criterion("net benefit")
    assert nb.se == 0.051
    # net benefit with its false-positive term (the reference 0.2.1 prints Se for it)
    assert res.net_benefit == pytest.approx(0.7 * 0.018 - 0.1 * 0.982 / 9)
    assert nb.performance == pytest.approx(res.net_benefit / 0.018)


def test_binormal_lp_is_calibrated_with_the_auc_asked():
    """Events N(m + σ², σ²), non-events N(m, σ²): AUC Φ(σ/√2) = C, and the mean risk is φ."""
    for c, prev in ((0.807, PAPER_PREV), (0.6, 0.05), (0.95, 0.5)):
        m, var = binormal_lp(c, prev)
        sd = math.sqrt(var)
        assert sps.norm.cdf(var / math.sqrt(2 * var)) == pytest.approx(c, abs=1e-12)

        def risk(x):
            dens = (1 - prev) * sps.norm.pdf(x, m, sd) + prev * sps.norm.pdf(x, m + var, sd)
            return special.expit(x) * dens

        mean_risk = integrate.quad(risk, m - 12 * sd, m + var + 12 * sd, epsabs=1e-13)[0]
        assert mean_risk == pytest.approx(prev, abs=1e-9)


def test_simulated_slope_criterion_is_close_to_the_exact_integral():
    """The reference's Monte Carlo average (1,000,000 draws) against the information integrated
    numerically over the binormal LP: 2,085 vs 2,081.75 at the paper's values (+0.2 %)."""
    for c, prev in ((0.807, PAPER_PREV), (0.842, 0.31)):
        m, var = binormal_lp(c, prev)
        sd = math.sqrt(var)

        def info(k):
            def f(x):
                dens = (1 - prev) * sps.norm.pdf(x, m, sd) + prev * sps.norm.pdf(x, m + var, sd)
                return x ** k * special.expit(x) * special.expit(-x) * dens
            return integrate.quad(f, m - 12 * sd, m + var + 12 * sd, epsabs=1e-14)[0]

        i00, i01, i11 = info(0), info(1), info(2)
        exact = i00 / ((0.2 / 3.92) ** 2 * (i00 * i11 - i01 ** 2))
        simulated = validation_sample_size(c, prev).criterion("calibration slope").n
        assert abs(simulated - exact) / exact < 0.005, (c, prev, simulated, exact)


def test_simulation_is_deterministic_and_seeded():
    a = validation_sample_size(0.807, PAPER_PREV)
    b = validation_sample_size(0.807, PAPER_PREV, seed=123456)
    assert a == b
    assert validation_sample_size(0.807, PAPER_PREV, seed=1).criteria[0] == a.criteria[0]  # O/E: no draw


@pytest.mark.parametrize("kwargs, match", [
    (dict(cstatistic=0.8, prevalence=0.0), "prevalence must lie strictly between 0 and 1"),
    (dict(cstatistic=0.8, prevalence=1.0), "prevalence must lie strictly between 0 and 1"),
    (dict(cstatistic=0.5, prevalence=0.3), "C-statistic must lie strictly between 0.5 and 1"),
    (dict(cstatistic=1.0, prevalence=0.3), "C-statistic must lie strictly between 0.5 and 1"),
    (dict(cstatistic=0.8, prevalence=0.3, slope_ciwidth=0), "calibration slope CI width must be a positive"),
    (dict(cstatistic=0.8, prevalence=0.3, threshold=0.2, sensitivity=0.7), "both the sensitivity and the specificity"),
    (dict(cstatistic=0.8, prevalence=0.3, sensitivity=0.7, specificity=0.8), "need the risk threshold"),
    (dict(cstatistic=0.8, prevalence=0.3, threshold=1.0), "threshold must lie strictly between 0 and 1"),
    (dict(cstatistic=0.8, prevalence=0.3, lp_normal=(0, 1), lp_beta=(1, 1)), "not both"),
])
def test_bad_inputs_are_refused(kwargs, match):
    with pytest.raises(DlrcError, match=match):
        validation_sample_size(**kwargs)


# ------------------------------------------------------------------------ dlrc samplesize
def test_verb_defaults_to_the_papers_values(capsys):
    assert main(["samplesize"]) == 0
    out = capsys.readouterr().out
    assert "C-statistic 0.807: the paper's DLRC AUC in external validation (table2 of params/published_values.yaml)" in out
    assert "prevalence 0.310: the paper's LNM prevalence, 339 of 1,095 patients (table1 of " in out
    rows = {ln.split()[0]: ln.split()[-2:] for ln in out.splitlines() if ln.startswith("  ") and ln.split()[-1][0].isdigit()}
    assert rows["O/E"] == ["858", "266"] and rows["calibration"] == ["2,085", "646"] and rows["C-statistic"] == ["342", "106"]
    assert out.splitlines()[-1] == ("dlrc samplesize: minimum 2,085 patients (646 events) at C = 0.807 and "
                                    "prevalence 0.310; binding: calibration slope")


def test_verb_overrides_and_net_benefit(capsys):
    argv = ["samplesize", "--cstatistic", "0.8", "--prevalence", "0.018", "--lp-normal", "-5", "2.5",
            "--oe-ciwidth", "1", "--threshold", "0.1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "C-statistic 0.8: given" in out and "the paper's" not in out
    assert "sensitivity 0.765, specificity 0.904 (from the simulated linear predictor)" in out
    assert out.splitlines()[-1].endswith("minimum 12,454 patients (225 events) at C = 0.8 and prevalence 0.018; "
                                         "binding: net benefit")


@pytest.mark.parametrize("argv, words", [
    (["--prevalence", "1.2"], "prevalence must lie strictly between 0 and 1, got 1.2"),
    (["--prevalence", "0"], "prevalence must lie strictly between 0 and 1, got 0.0"),
    (["--cstatistic", "0.5"], "C-statistic must lie strictly between 0.5 and 1, got 0.5"),
    (["--cstatistic", "1"], "C-statistic must lie strictly between 0.5 and 1, got 1.0"),
])
def test_verb_bad_input_is_one_line_and_exit_2(argv, words, capsys):
    assert main(["samplesize", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"dlrc samplesize: error: {words}"]
    assert captured.out == ""


# ------------------------------------------------------------------ the cohorts of a study
def _cohorts(internal: tuple[int, int], external: tuple[int, int]) -> pd.DataFrame:
    """(patients, LNM) per validation cohort, plus a training cohort that is never reported."""
    rows = [("train", i % 2) for i in range(10)]
    for name, (n, pos) in (("internal", internal), ("external", external)):
        rows += [(name, int(i < pos)) for i in range(n)]
    return pd.DataFrame(rows, columns=["cohort", "lnm"])


def test_cohort_lines_use_the_papers_c_and_the_cohorts_prevalence():
    assert paper_reference().cstatistic == {"train": 0.807, "internal": 0.789, "external": 0.807}
    lines = cohort_size_lines(_cohorts((20, 6), (20, 0)))
    assert lines == [
        "internal validation: 20 patients (6 LNM); the minimum to validate a model with C = 0.789 (the paper's "
        "DLRC AUC in its internal validation cohort) at 30 % prevalence (this cohort's) is 2,297 patients "
        "(690 events; binding: calibration slope): 2,277 patients short",
        "external validation: 20 patients (0 LNM); the minimum to validate a model with C = 0.807 (the paper's "
        "DLRC AUC in its external validation cohort) at 31 % prevalence (the paper's, as this cohort has no LNM) "
        "is 2,085 patients (646 events; binding: calibration slope): 2,065 patients short",
    ]
    big = cohort_size_lines(_cohorts((0, 0), (2500, 750)))
    assert len(big) == 1 and big[0].startswith("external validation: 2,500 patients (750 LNM)")
    assert big[0].endswith(": enough")
    assert cohort_size_lines(pd.DataFrame({"cohort": ["internal"]})) == []  # no lnm column: nothing said


def test_validate_prints_a_line_per_validation_cohort(tmp_path, capsys):
    """A manifest without images (its errors are not the point): the cohort lines come before
    the summary line, which stays last."""
    df = _cohorts((4, 1), (6, 2))
    df.insert(0, "patient_id", [f"P{i:02d}" for i in range(len(df))])
    df["centre"] = "A"
    df.to_csv(tmp_path / "m.csv", index=False)
    rc = main(["validate", str(tmp_path / "m.csv")])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 1 and lines[-1].startswith(f"dlrc validate: {tmp_path / 'm.csv'}: ")
    sizes = [ln for ln in lines if ln.startswith("cohort size: ")]
    assert [ln.split(";")[0] for ln in sizes] == ["cohort size: internal validation: 4 patients (1 LNM)",
                                                  "cohort size: external validation: 6 patients (2 LNM)"]
    assert "at 25 % prevalence (this cohort's)" in sizes[0] and "binding: calibration slope" in sizes[0]
    assert lines.index(sizes[-1]) == len(lines) - 2


# ----------------------------------------------------------------------- the report header
def test_report_header_of_a_manifest_run(tmp_path):
    from claimsdata import make_run

    from dlrc_lib.reporting import claims as C
    from dlrc_lib.reporting.index_page import render_index

    run = make_run(tmp_path / "own", role=None)
    study = _cohorts((30, 9), (40, 12))
    study.insert(0, "patient_id", [f"P{i:02d}" for i in range(len(study))])
    study.to_csv(run / "study_manifest.csv", index=False)
    view = C.run_view(run)
    lines = run_cohort_size_lines(run, view.run)
    assert [ln.split(";")[0] for ln in lines] == ["internal validation: 30 patients (9 LNM)",
                                                  "external validation: 40 patients (12 LNM)"]
    page = render_index(run, C.evaluate_claims(run), view)
    shown = [page.index(f"<p class='meta cohort-size'>cohort size: {ln.replace(chr(39), '&#x27;')}</p>")
             for ln in lines]
    assert shown == sorted(shown) and shown[-1] < page.index("Verdict")
    # a twin run: the twin's cohorts are simulated, nothing is said
    twin = make_run(tmp_path / "twin", source="twin")
    study.to_csv(twin / "study_manifest.csv", index=False)
    assert "cohort-size" not in render_index(twin, C.evaluate_claims(twin), C.run_view(twin))
    # no analysed table (a snapshot): nothing
    assert run_cohort_size_lines(Path(tmp_path / "nowhere"), {}) == []


def test_numpy_legacy_stream_is_the_one_pinned():
    """The draws rest on numpy's legacy RandomState, frozen across versions: its first values."""
    rs = np.random.RandomState(123456)
    assert rs.standard_normal(2).tolist() == pytest.approx([0.4691122999071863, -0.2828633443286633], abs=1e-15)
