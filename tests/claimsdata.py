"""Fabricated finished run folders for the claims and snapshot tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from dlrc_lib.reporting.report import flatten_published
from dlrc_lib.run.artifacts import Artifacts

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "params" / "published_values.yaml"
DL_MODELS = ["ResNet50_3D", "ResNet101_3D", "ResNet152_3D", "ResNet50_2D", "ResNet101_2D", "ResNet152_2D"]
PAPER_FEATURES = ["CET1_wavelet-HLH_gldm_SmallDependenceEmphasis", "DWI_wavelet-LLH_glcm_Idm",
                  "T2FS_wavelet-HHL_firstorder_Mean", "CET1_wavelet-LHL_glrlm_RunVariance",
                  "DWI_lbp-3D-k_firstorder_Entropy", "T2FS_lbp-3D-m1_glszm_ZoneEntropy",
                  "CET1_gradient_ngtdm_Busyness"]


def decision_curves(dlrc_shift: dict[str, float] | None = None) -> pd.DataFrame:
    """DLRC above every other strategy at all thresholds, unless shifted down per cohort."""
    t = np.round(np.arange(100) * 0.01, 10)
    frames = []
    for coh in ("train", "internal", "external"):
        dlrc = 0.3 - 0.2 * t - (dlrc_shift or {}).get(coh, 0.0) * (t >= 0.5)
        treat_all = 0.31 - 0.69 * t / (1 - t)
        for model, nb in (("DLRC", dlrc), ("Radiomics", 0.3 - 0.2 * t - 0.02), ("ResNet152_2D", 0.3 - 0.2 * t - 0.03),
                          ("Treat all", treat_all), ("Treat none", 0 * t)):
            frames.append(pd.DataFrame({"cohort": coh, "model": model, "threshold": t, "net_benefit": nb}))
    return pd.concat(frames, ignore_index=True)


def make_run(path: Path, *, source: str = "manifest", role: str | None = "same_patients", weights: str = "imagenet", fallback: bool = False,
             change: dict | None = None, drop: tuple[str, ...] = (), selected=PAPER_FEATURES,
             terms=("c_LNM", "DL_score", "Rad_score"), curves: pd.DataFrame | None = None,
             warnings: dict | None = None) -> Path:
    """A finished run whose reproduced values equal the published ones (every finding holds),
    changed by ``change`` / ``drop``."""
    flat = flatten_published(yaml.safe_load(PUBLISHED.read_text(encoding="utf-8")))
    reproduced = {k: v for k, v in flat.items()
                  if k.split(".")[0] in ("study", "table1", "table2", "table3", "table4", "table5",
                                          "calibration_hosmer_lemeshow_p", "selected_features")}
    reproduced.update(change or {})
    for k in drop:
        reproduced.pop(k, None)
    (path / "results").mkdir(parents=True)
    (path / "data").mkdir()
    (path / "tables").mkdir()
    (path / "figures").mkdir()
    split = {"01_cohort_table": "table1", "03_radiomics": "selected_features", "04_deep_learning": "table3",
             "06_calibration": "calibration", "08_sra_subgroup": "table5"}
    results: dict[str, dict] = {nb: {"reproduced": {}} for nb in [*split, "00_study", "05_dlrc"]}
    for k, v in reproduced.items():
        nb = next((nb for nb, prefix in split.items() if k.startswith(prefix)), None)
        nb = nb or ("00_study" if k.startswith("study") else "05_dlrc")
        results[nb]["reproduced"][k] = v
    results["03_radiomics"]["selected"] = [{"feature": f, "coef": 1.0} for f in selected]
    results["04_deep_learning"].update(
        best_model="ResNet152_2D",
        weights={m: {"source": weights, "random_fallback": fallback, "identity": "x"} for m in DL_MODELS})
    results["05_dlrc"].update(best_model="ResNet152_2D", dlrc_terms=list(terms))
    for nb, data in results.items():
        Artifacts(path, notebook=nb).results(**data)
    (curves if curves is not None else decision_curves()).to_parquet(path / "data" / "decision_curves.parquet")
    run = {"run_name": "fab", "status": "ok", "git_commit": "abc", "warnings": warnings or {},
           "params": {"published_values": str(PUBLISHED), "study": {"source": source, "scale": 1.0}}}
    if source == "manifest" and role:
        run["params"]["study"]["role"] = role
    (path / "run.json").write_text(json.dumps(run))
    return path
