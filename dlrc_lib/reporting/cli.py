"""The ``dlrc`` command line. Each verb lives in the module that owns it; this file only
parses arguments and turns expected failures into one-line messages (exit status 2)."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from dlrc_lib.core.config import ParamsError
from dlrc_lib.core.errors import DlrcError


def _cmd_run(args: argparse.Namespace) -> int:
    from dlrc_lib.reporting.runner import run

    return run(args.params, only=args.only, out=args.out)


def _cmd_synth(args: argparse.Namespace) -> int:
    from dlrc_lib.twin import cli_synth

    return cli_synth(args)


def _cmd_validate(args: argparse.Namespace) -> int:
    from dlrc_lib.study.validate import cli_validate

    return cli_validate(args)


def _cmd_extract(args: argparse.Namespace) -> int:
    from dlrc_lib.features.extract import cli_extract

    return cli_extract(args)


def _cmd_predict(args: argparse.Namespace) -> int:
    from dlrc_lib.model.predict import cli_predict

    return cli_predict(args)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import cli_sweep

    return cli_sweep(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dlrc",
        description="Reproduce the DLRC lymph-node-metastasis study: build a study, extract "
        "features and execute the report notebooks.",
    )
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    r = sub.add_parser("run", help="execute the notebooks with papermill into reports/<run>/")
    r.add_argument("--params", default="params/paper.yaml", help="parameter file (YAML)")
    r.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks (e.g. 03 05)")
    r.add_argument("--out", help="run directory (default reports/<run_name>)")
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("synth", help="generate the synthetic twin study (manifest, images, masks)")
    s.add_argument("--params", default="params/paper.yaml", help="parameter file (YAML)")
    s.add_argument("--out", help="output directory (default: study.twin_dir)")
    s.add_argument("--clinical-only", action="store_true", help="write only the clinical/node columns")
    s.set_defaults(func=_cmd_synth)

    v = sub.add_parser("validate", help="check a study manifest and its images; list every problem")
    v.add_argument("manifest", help="study manifest (CSV)")
    v.add_argument("--params", default=None, help="parameter file (for labels and thresholds)")
    v.set_defaults(func=_cmd_validate)

    e = sub.add_parser("extract", help="extract radiomics and deep features into the feature store")
    e.add_argument("--params", default="params/paper.yaml", help="parameter file (YAML)")
    e.add_argument("--what", nargs="+", default=["radiomics", "deep"], choices=["radiomics", "deep"])
    e.set_defaults(func=_cmd_extract)

    sw = sub.add_parser("sweep", help="re-run the analysis over a grid of analytic choices (sensitivity)")
    sw.add_argument("--params", default="params/paper.yaml", help="base parameter file (YAML)")
    sw.add_argument("--grid", required=True, help="sweep grid (YAML): parameter keys and the values to try")
    sw.add_argument("--out", help="sweep folder (default reports/<run_name>/sweep)")
    sw.add_argument("--jobs", type=int, default=0, help="variants at once (default: all cores)")
    sw.add_argument("--retry-failed", action="store_true", help="run variants that failed before again")
    sw.set_defaults(func=_cmd_sweep)

    pr = sub.add_parser("predict", help="score new patients with an exported DLRC model")
    pr.add_argument("--model", required=True, help="model JSON from reports/<run>/model/")
    pr.add_argument("--manifest", required=True, help="manifest of the new patients (CSV)")
    pr.add_argument("--out", default="predictions.csv", help="output CSV")
    pr.add_argument("--scanner-policy", choices=["refuse", "harmonise"], default=None,
                    help="what to do with scanners the model never saw (default: the model's)")
    pr.add_argument("--cache-dir", default=None,
                    help="feature store to read/write (default: the one the model was trained with)")
    pr.set_defaults(func=_cmd_predict)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return int(func(args) or 0)
    except (ParamsError, DlrcError) as exc:
        print(f"dlrc {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dlrc {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
