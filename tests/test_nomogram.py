"""Fig. 3: the nomogram's scale, exact arithmetic, and reading patients off the drawing."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest


from dlrc_lib.model import dlrc as M
from dlrc_lib.model.nomogram import Nomogram, pretty
from model_synthetic import make_study

# A reader's precision on a printed axis: risk ticks are at most 0.1 apart and read by
# linear interpolation between neighbours, which is accurate to about 0.02 in risk.
DRAWING_RESOLUTION = 0.02


@pytest.fixture(scope="module")
def fitted():
    study = make_study()
    fit = M.fit_dlrc(study[["cohort", "lnm", "Rad_score", "DL_score"]], study)
    train = fit.design[study["cohort"] == "train"]
    nom = Nomogram.from_model(fit.model.coef_, train)
    return fit, train, nom


def test_scale_as_rms(fitted):
    fit, train, nom = fitted
    assert nom.terms == ["Rad_score", "DL_score", "c_LNM"]
    assert nom.binary == {"c_LNM": ("No", "Yes")}
    assert nom.ranges["Rad_score"] == (train["Rad_score"].min(), train["Rad_score"].max())
    # the widest-effect term spans exactly 0-100 points, the others proportionally less
    assert max(nom.max_points_.values()) == pytest.approx(100.0)
    for t in nom.terms:
        lo, hi = (0, 1) if t == "c_LNM" else nom.ranges[t]
        width = abs(fit.model.coef_[t]) * (hi - lo)
        assert nom.max_points_[t] == pytest.approx(100 * width / nom.scale_)
    assert nom.total_max_ == pytest.approx(sum(nom.max_points_.values()))


def test_points_and_risk_equal_model_probability(fitted):
    fit, train, nom = fitted
    for pid, row in train.iterrows():
        pts = nom.points_for(row.to_dict())
        assert pts["total"] == pytest.approx(sum(pts[t] for t in nom.terms))
        assert all(-1e-9 <= pts[t] <= 100 + 1e-9 for t in nom.terms)
        assert nom.risk_from_total(pts["total"]) == pytest.approx(fit.prob[pid], abs=1e-12)
    # the inverse mappings agree
    assert nom.total_from_risk(nom.risk_from_total(57.0)) == pytest.approx(57.0)


def test_reading_off_the_drawing_within_resolution(fitted):
    fit, train, nom = fitted
    rows = {a.name: a for a in nom.axes()}
    lo, hi = rows["risk"].ticks[0][0], rows["risk"].ticks[-1][0]
    errors = []
    for pid, row in train.iterrows():
        read = nom.read_off(row.to_dict())
        exact = nom.points_for(row.to_dict())
        for t in nom.terms:  # straight axes: points read exactly
            assert read[t] == pytest.approx(exact[t], abs=1e-9)
        p = fit.prob[pid]
        if lo <= p <= hi:
            errors.append(abs(read["risk"] - p))
        else:  # beyond the outermost risk tick the reader can only say "< 0.01" / "> 0.99"
            assert read["risk"] in (lo, hi)
    assert len(errors) > 0.9 * len(train)
    assert max(errors) < DRAWING_RESOLUTION


def test_axes_as_drawn(fitted):
    _, _, nom = fitted
    rows = nom.axes()
    assert [a.label for a in rows] == ["Points", "Rad_score", "DL_score", "c_LNM", "Total Points",
                                       "Linear Predictor", "Risk of LNM"]
    assert [v for v, _, _ in rows[0].ticks] == list(np.arange(0, 101, 10.0))
    c = rows[3]
    assert [t for _, _, t in c.ticks] == ["No", "Yes"]  # a two-point axis
    total = rows[4]
    assert total.ticks[0][:2] == (0.0, 0.0) and total.ticks[-1][0] >= nom.total_max_
    for a in rows[1:3]:  # score axes cover the observed range and stay inside 0-100 points
        assert 0 <= a.extent[0] < a.extent[1] <= 100 + 1e-9
    risk = [v for v, _, _ in rows[-1].ticks]
    assert risk == sorted(risk) and 0.5 in risk


def test_negative_coefficient_reverses_axis():
    nom = Nomogram(coef={"(Intercept)": 0.5, "a": -2.0, "b": 1.0}, ranges={"a": (0, 1.5), "b": (-1, 1)})
    assert nom.points_for({"a": 0, "b": -1})["a"] == pytest.approx(100.0)
    assert nom.points_for({"a": 1.5, "b": -1})["a"] == pytest.approx(0.0)
    assert nom.points_for({"a": 0, "b": 1})["b"] == pytest.approx(200 / 3)
    lp = 0.5 - 2.0 * 0.7 + 1.0 * 0.2
    tot = nom.points_for({"a": 0.7, "b": 0.2})["total"]
    assert nom.risk_from_total(tot) == pytest.approx(1 / (1 + np.exp(-lp)))


def test_dict_round_trip(fitted):
    _, train, nom = fitted
    again = Nomogram.from_dict(nom.to_dict())
    row = train.iloc[3].to_dict()
    assert again.points_for(row) == nom.points_for(row)
    assert again.to_dict() == nom.to_dict()


def test_draw(fitted):
    _, _, nom = fitted
    fig = nom.draw(title="DLRC nomogram")
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"Points", "Total Points", "Linear Predictor", "Risk of LNM", "No", "Yes", "100"} <= texts
    plt.close(fig)


def test_pretty():
    assert list(pretty(0, 100, 11)) == list(np.arange(0, 101, 10.0))
    t = pretty(-3.37, 1.62, 10)
    assert t[0] >= -3.37 and t[-1] <= 1.62 and np.allclose(np.diff(t), 0.5)


def test_separating_model_is_said_on_the_drawing():
    nom = Nomogram(coef={"(Intercept)": 0.0, "s": 3.0}, ranges={"s": (-200.0, 200.0)})
    fig = nom.draw()
    assert any("separates the training cohort" in t.get_text() for t in fig.axes[0].texts)
    plt.close(fig)
