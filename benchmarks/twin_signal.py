"""Signal check of a generated twin study: LNM AUC and centre-prediction AUC.

    python benchmarks/twin_signal.py data/twin/paper/manifest.csv --n-jobs 2 [--out signal.json]

Computes quick numpy features of every reader-1 mask (dlrc_lib.twin.signal_check) and prints
the cross-validated AUCs: LNM from features standardised within scanner (target 0.65-0.85),
LNM from raw features, and centre/scanner from raw features (target > 0.9). The LNM effect
sizes and the scanner effect are the ``study.signal`` and ``study.scanner_effect`` parameters.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlrc_lib.study.manifest import load_study  # noqa: E402
from dlrc_lib.twin.signal_check import signal_check, study_features  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("manifest")
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--features-out", help="write the feature table as CSV here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    study = load_study(args.manifest)
    feats = study_features(study, n_jobs=args.n_jobs)
    if args.features_out:
        feats.to_csv(args.features_out)
    res = signal_check(study, feats, seed=args.seed)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    res["manifest"] = str(args.manifest)
    text = json.dumps(res, indent=2, sort_keys=True)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
