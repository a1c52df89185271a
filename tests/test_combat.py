import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from dlrc_lib.scores.combat import CombatEstimates, apply_combat, estimate_batch, fit_combat, harmonise
from dlrc_lib.core.config import HarmonisationParams
from dlrc_lib.core.errors import DlrcError

from featuredata import make_features, make_study


def _neurocombat(X: pd.DataFrame, batch: pd.Series, parametric: bool) -> np.ndarray:
    from neuroCombat import neuroCombat

    with contextlib.redirect_stdout(io.StringIO()):
        out = neuroCombat(dat=X.to_numpy(dtype=float).T.copy(),
                          covars=pd.DataFrame({"batch": batch.to_numpy()}),
                          batch_col="batch", eb=True, parametric=parametric)
    return out["data"].T


@pytest.fixture(scope="module")
def data():
    study = make_study(160, seed=3)
    X = make_features(study, n_noise=20, seed=4)
    batch = pd.Series(study["scanner"].to_numpy(), index=X.index)
    return study, X, batch


@pytest.mark.parametrize("parametric", [True, False])
def test_apply_reproduces_neurocombat(data, parametric):
    _, X, batch = data
    est = fit_combat(X, batch, parametric=parametric)
    ours = apply_combat(est, X, batch)
    ref = _neurocombat(X, batch, parametric)
    np.testing.assert_allclose(ours.to_numpy(), ref, rtol=0, atol=1e-10)


def test_apply_after_json_round_trip(data):
    _, X, batch = data
    est = fit_combat(X, batch)
    est2 = CombatEstimates.from_dict(json.loads(json.dumps(est.to_dict())))
    np.testing.assert_allclose(apply_combat(est2, X, batch).to_numpy(), _neurocombat(X, batch, True),
                               rtol=0, atol=1e-10)


def test_new_batch_estimate_equals_joint_fit_for_a_fitted_batch(data):
    # ComBat's per-batch EB step depends only on that batch's standardised data, so
    # re-estimating a fitted batch "as new" must give its fitted gamma*/delta*.
    _, X, batch = data
    est = fit_combat(X, batch)
    for i, b in enumerate(est.batches):
        g, d = estimate_batch(est, X[batch == b])
        np.testing.assert_allclose(g, est.gamma_star[i], atol=1e-12)
        np.testing.assert_allclose(d, est.delta_star[i], atol=1e-12)


def test_unseen_batch_is_moved_towards_reference(data):
    _, X, batch = data
    seen = batch != "E1"
    est = fit_combat(X[seen], batch[seen])
    with pytest.raises(DlrcError, match="E1"):
        apply_combat(est, X, batch)
    out = apply_combat(est, X, batch, unseen="estimate")
    ref = apply_combat(est, X[seen], batch[seen])
    # the new scanner's per-feature means land on the reference's (relative to spread)
    gap_before = (X[~seen].mean() - ref.mean()).abs() / ref.std()
    gap_after = (out[~seen].mean() - ref.mean()).abs() / ref.std()
    assert gap_after.median() < 0.5 * gap_before.median()
    # seen patients are untouched by the presence of the new scanner
    np.testing.assert_allclose(out[seen].to_numpy(), ref.to_numpy(), atol=1e-12)


def test_single_patient_batch_is_refused(data):
    _, X, batch = data
    b = batch.copy()
    b.iloc[0] = "LONE"
    with pytest.raises(DlrcError, match=r"scanner 'LONE' has only one patient \(P0000\)"):
        fit_combat(X, b, label="scanner")


def test_missing_values_are_named(data):
    _, X, batch = data
    Xn = X.copy()
    Xn.iloc[2, 1] = np.nan
    with pytest.raises(DlrcError, match="patient P0002 column CET1_sig1"):
        fit_combat(Xn, batch)


def test_constant_feature_passes_through(data):
    _, X, batch = data
    Xc = X.assign(CONST_f=7.0)
    out = apply_combat(fit_combat(Xc, batch), Xc, batch)
    assert (out["CONST_f"] == 7.0).all()
    np.testing.assert_allclose(out[X.columns].to_numpy(), _neurocombat(X, batch, True), atol=1e-10)


def test_modes(data):
    study, X, _ = data
    none = harmonise(X, study, HarmonisationParams(mode="none"))
    pd.testing.assert_frame_equal(none.features, X)
    allm = harmonise(X, study, HarmonisationParams(mode="all"))
    assert set(allm.estimates.batches) == set(study["scanner"])
    tr = harmonise(X, study, HarmonisationParams(mode="train_reference"))
    train_scanners = set(study.loc[study["cohort"] == "train", "scanner"])
    assert set(tr.estimates.batches) == train_scanners
    assert set(tr.new_batches) == set(study["scanner"]) - train_scanners
    assert len(tr.fitted_on) == int((study["cohort"] == "train").sum())
    cen = harmonise(X, study, HarmonisationParams(mode="all", batch="centre"))
    assert cen.estimates.batches == sorted(study["centre"].unique())


def test_outcome_never_enters_harmonisation(data):
    # Flipping every label must not change the harmonised features.
    study, X, _ = data
    flipped = study.assign(lnm=1 - study["lnm"])
    for mode in ("all", "train_reference"):
        a = harmonise(X, study, HarmonisationParams(mode=mode)).features
        b = harmonise(X, flipped, HarmonisationParams(mode=mode)).features
        pd.testing.assert_frame_equal(a, b)


def test_single_patient_batch_can_be_left_unharmonised(data):
    study, X, batch = data
    b = batch.copy()
    b.iloc[0] = "LONE"
    est = fit_combat(X, b, small_batch="skip")
    assert est.unharmonised == ["LONE"]
    out = apply_combat(est, X, b)
    np.testing.assert_allclose(out.iloc[0].to_numpy(), X.iloc[0].to_numpy(), atol=1e-9)
    rest = b != "LONE"
    np.testing.assert_allclose(out[rest].to_numpy(), _neurocombat(X[rest], b[rest], True), atol=1e-10)
    st = study.copy()
    st.loc[st["patient_id"] == "P0000", "scanner"] = "LONE"
    res = harmonise(X, st, HarmonisationParams(mode="all", small_batch="skip"))
    assert res.unharmonised == ["LONE"]
    with pytest.raises(DlrcError, match="only one patient"):
        harmonise(X, st, HarmonisationParams(mode="all"))
