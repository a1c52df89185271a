"""LASSO path cost: the active-set Newton solver against the coordinate-descent solver it
replaced (IRLS whose weighted-lasso subproblems go to sklearn's ``enet_path``), on the same
training matrix, in one process.

Reported per solver: CPU seconds for one full glmnet-style path (100 lambdas, the strong rule,
warm starts, as ``lasso_cv`` runs it once on the full data and once per fold), the largest
violation of the optimality (KKT) conditions over the path, and the coefficient difference
between the two. The ratio is the speed-up.

The matrix is the LASSO input of a finished run (``--from-run reports/paper``: the training
cohort's harmonised radiomics features after the ICC, Mann-Whitney and Spearman filters,
standardised, exactly as notebook 03 hands it to ``lasso_cv``), or, by default, a synthetic one
of the same shape (481 x 347, features from 40 latent factors, so strongly correlated).

    python benchmarks/lasso_solver.py                       # synthetic 481 x 347
    python benchmarks/lasso_solver.py --from-run reports/paper --params params/paper.yaml
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from dlrc_lib.stats import lasso as S


def synthetic(n: int = 481, p: int = 347, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(n, 40))
    X = F @ rng.normal(size=(40, p)) * 0.6 + rng.normal(size=(n, p)) * 0.5
    eta = X[:, :6] @ np.array([0.5, -0.4, 0.3, 0.3, -0.2, 0.2])
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(eta / eta.std() - 0.6)))).astype(float)
    return (X - X.mean(0)) / X.std(0, ddof=1), y


def from_run(run: Path, params: Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    from dlrc_lib.core.config import load_params
    from dlrc_lib.features.radiomics import extract_radiomics
    from dlrc_lib.scores.combat import harmonise
    from dlrc_lib.scores.pipeline import by_patient
    from dlrc_lib.study.manifest import load_study

    P = load_params(params)
    study = load_study(run / "study_manifest.csv")
    rad = extract_radiomics(study, P.radiomics.settings, cache, sequences=P.radiomics.sequences,
                            masks=("reader1",), n_jobs=1, progress=False)
    icc = pd.read_parquet(run / "data" / "icc.parquet")
    keep = set(icc.index[icc["keep"].astype(bool)])
    st = by_patient(study)
    X = rad.features[[c for c in rad.features.columns if c in keep]]
    X.index = X.index.astype(str)
    h = harmonise(X, st, P.harmonisation).features
    train = h.index[st.loc[h.index, "cohort"].astype(str).to_numpy() == "train"]
    y = st.loc[train, "lnm"].astype(int)
    Xt = h.loc[train]
    mw = S.mann_whitney_filter(Xt, y, P.selection.mw_p)
    passed = mw.loc[mw["keep"], "feature"].tolist()
    kept, _ = S.spearman_prune(Xt[passed], passed, P.selection.spearman_r)
    Z = S.standardise(Xt, Xt[kept].mean(), Xt[kept].std(ddof=1))[kept]
    return Z.to_numpy(float), y.to_numpy(float)


def kkt(X: np.ndarray, y: np.ndarray, betas: np.ndarray, b0s: np.ndarray, lambdas: np.ndarray) -> float:
    """Largest violation of the optimality conditions on glmnet's (1/n-SD) scale."""
    sd = X.std(axis=0)
    Z = (X - X.mean(axis=0)) / sd
    worst = 0.0
    for k, lam in enumerate(lambdas[: len(b0s)]):
        r = y - S._sigmoid(b0s[k] + X @ betas[k])
        g = Z.T @ r / len(y)
        bz = betas[k] * sd
        act = bz != 0
        worst = max(worst, np.max(np.abs(g[act] - lam * np.sign(bz[act])), initial=0.0),
                    np.max(np.abs(g[~act]), initial=0.0) - lam, abs(r.mean()))
    return float(worst)


def run_path(X, y, lambdas, newton: bool):
    saved = S._newton_lasso
    if not newton:
        S._newton_lasso = lambda Z, y, b0, beta, lam, **k: (b0, beta, False)
    try:
        t = time.process_time()
        betas, b0s, ok = S._fit_path(X, y, lambdas, 1e-10, 20000, early_stop=True)
        return time.process_time() - t, betas, b0s, ok
    finally:
        S._newton_lasso = saved


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from-run", type=Path, help="a finished run folder (its notebook 03 LASSO input)")
    ap.add_argument("--params", type=Path, default=Path("params/paper.yaml"), help="that run's parameter file")
    ap.add_argument("--cache", type=Path, default=Path(".dlrc_cache"), help="feature cache of that run")
    ap.add_argument("--nlambda", type=int, default=100)
    a = ap.parse_args(argv)
    X, y = from_run(a.from_run, a.params, a.cache) if a.from_run else synthetic()
    lambdas = S._lambda_path(X, y, a.nlambda, None)
    print(f"matrix {X.shape[0]} x {X.shape[1]}, {int(y.sum())} events; {len(lambdas)} lambdas", flush=True)
    rows = {}
    for name, newton in (("active-set Newton", True), ("coordinate descent (IRLS + enet_path)", False)):
        cpu, betas, b0s, ok = run_path(X, y, lambdas, newton)
        rows[name] = (cpu, betas, b0s)
        print(f"{name:40s} {cpu:8.1f} CPU s  path length {len(b0s)}  converged {ok}  "
              f"max KKT violation {kkt(X, y, betas, b0s, lambdas):.1e}", flush=True)
    (tn, bn, an), (tc, bc, ac) = rows.values()
    m = min(len(an), len(ac))
    print(f"speed-up {tc / tn:.1f}x; max |coef difference| {np.abs(bn[:m] - bc[:m]).max():.1e}; "
          f"same non-zero pattern at every lambda: {bool(((bn[:m] != 0) == (bc[:m] != 0)).all())}")


if __name__ == "__main__":
    main()
