"""The ``dlrc`` command line: every verb is registered here, its handler is in
:mod:`dlrc_lib.run.commands`; this file only parses arguments and turns failures into one-line messages: exit status 2 for an expected
failure (bad input or parameters, a full disk), 3 for an unexpected one (the traceback goes to a
file named in the message), 130 when interrupted. ``dlrc run`` returns 1 when a notebook failed
or stopped (the report is written); ``dlrc validate`` 1 when the study has errors."""
from __future__ import annotations

import argparse
import errno
import sys
from typing import Callable

from dlrc_lib.core.config import ParamsError
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.resources import RUN_PARAMS, version
from dlrc_lib.run import commands as V


_CACHE_HELP = "feature store and validation cache (default: the parameter file's cache_dir)"
_PARAMS_HELP = "parameter file (YAML), or one of the package's by name: " + ", ".join(RUN_PARAMS)


class _Version(argparse.Action):
    """``dlrc --version``: the version, and the commit when run from a git checkout (asked only then)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dlrc",
        description="Reproduce the DLRC lymph-node-metastasis study: build a study, extract "
        "features and execute the report notebooks.",
    )
    p.add_argument("--version", action=_Version, help="print the version (and the git commit in a checkout)")
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    r = sub.add_parser("run", help="execute the notebooks with papermill into reports/<run>/")
    r.add_argument("--params", default="paper", help=_PARAMS_HELP + " (default: paper)")
    r.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks (e.g. 03 05)")
    r.add_argument("--out", help="run directory (default reports/<run_name>)")
    r.add_argument("--cache-dir", help=_CACHE_HELP)
    r.set_defaults(func=V.run_verb)

    _add_study_verbs(sub)
    sw = sub.add_parser("sweep", help="re-run the analysis over a grid of analytic choices (sensitivity)")
    sw.add_argument("--params", default="paper", help="base " + _PARAMS_HELP + " (default: paper)")
    sw.add_argument("--grid", required=True, help="sweep grid (YAML): parameter keys and the values to try "
                    "(or the package's sweep_quick, sweep_paper)")
    sw.add_argument("--out", help="sweep folder (default reports/<run_name>/sweep)")
    sw.add_argument("--jobs", type=int, default=0, help="variants at once (default: all cores)")
    sw.add_argument("--retry-failed", action="store_true", help="run variants that failed before again")
    sw.set_defaults(func=V.sweep_verb)

    pr = sub.add_parser("predict", help="score new patients with an exported DLRC model")
    pr.add_argument("--model", required=True, help="model JSON from reports/<run>/model/")
    pr.add_argument("--manifest", required=True, help="manifest of the new patients (CSV)")
    pr.add_argument("--out", default="predictions.csv", help="output CSV")
    pr.add_argument("--scanner-policy", choices=["refuse", "harmonise"], default=None,
                    help="what to do with scanners the model never saw (default: the model's)")
    pr.add_argument("--cache-dir", default=None,
                    help="feature store to read/write (default: the one the model was trained with)")
    pr.set_defaults(func=V.predict_verb)

    lab = sub.add_parser("lab", help="start JupyterLab on a finished run (at the repository root; installed: "
                         "on a writable copy of the notebooks in <run>/lab-notebooks)",
                         epilog="Other arguments go to jupyter lab, e.g. dlrc lab --no-browser --port 8890")
    lab.add_argument("--run", help="run folder the notebooks read (default: the last finished run in reports/)")
    lab.set_defaults(func=V.lab_verb)
    sn = sub.add_parser("snapshot", help="copy a finished run's verdict, tables and figures into a small "
                        "folder to commit (no patient-level data)")
    sn.add_argument("run_dir", help="finished run folder, e.g. reports/paper")
    sn.add_argument("out_dir", help="snapshot folder, e.g. docs/reference-run (replaced as a whole)")
    sn.add_argument("--max-mb", type=float, default=15.0, help="refuse a snapshot larger than this (MB)")
    sn.set_defaults(func=V.snapshot_verb)
    w = sub.add_parser("weights", help="ImageNet weights of the ResNets: import them offline, show what a run uses")
    wsub = w.add_subparsers(dest="weights_verb", metavar="import|status", required=True)
    wi = wsub.add_parser("import", help="verify torchvision's checkpoint files in DIR and copy them into "
                         "torchvision's cache ($TORCH_HOME/hub/checkpoints)")
    wi.add_argument("dir", metavar="DIR", help="folder holding resnet50-0676ba61.pth, resnet101-63fe2227.pth, "
                    "resnet152-394f9c45.pth (any of them)")
    ws = wsub.add_parser("status", help="list the checkpoint files present and the weights a run would use")
    ws.add_argument("--params", default=None, help="parameter file (or a packaged one by name) whose deep.weights "
                    "to resolve (default: auto)")
    w.set_defaults(func=V.weights_verb)
    return p


def _add_study_verbs(sub) -> None:
    """``dlrc init``, ``synth``, ``validate``, ``samplesize`` and ``extract``: a study and its features."""
    i = sub.add_parser("init", help="start your own study: a parameter file without twin keys, a manifest "
                       "template with every column documented, and a how-to, in DIR")
    i.add_argument("dir", metavar="DIR", help="study folder to create (or an empty existing one)")
    i.add_argument("--force", action="store_true", help="overwrite the files dlrc init writes if they exist")
    i.set_defaults(func=V.init_verb)

    s = sub.add_parser("synth", help="generate the synthetic twin study (manifest, images, masks)")
    s.add_argument("--params", default="paper", help=_PARAMS_HELP + " (default: paper)")
    s.add_argument("--out", help="output directory (default: study.twin_dir)")
    s.add_argument("--clinical-only", action="store_true", help="write only the clinical/node columns")
    s.set_defaults(func=V.synth_verb)

    v = sub.add_parser("validate", help="check a study manifest and its images, and whether the run's "
                       "parameters suit the study; list every problem")
    v.add_argument("manifest", nargs="?", help="study manifest (CSV or XLSX; default: the parameter file's study.manifest)")
    v.add_argument("--params", default=None, help="parameter file of the run, or a packaged one by name (its "
                   "labels, thresholds and analyses are checked against the study)")
    v.add_argument("--cache-dir", help="validation cache (default: the parameter file's cache_dir; without "
                   "--params nothing is cached)")
    v.add_argument("--out", help="also write the problems to this CSV (severity, patient, where, message)")
    v.set_defaults(func=V.validate_verb)

    ss = sub.add_parser("samplesize", help="the minimum cohort to validate the model externally (before any "
                        "data are collected): O/E, calibration slope, C-statistic and net benefit criteria",
                        description="Minimum sample size for the external validation of a prediction model "
                        "of a binary outcome (Riley et al. 2021, Stat Med 40:4230; as pmvalsampsize). Defaults: "
                        "the paper's DLRC C-statistic in external validation and its LNM prevalence.")
    ss.add_argument("--cstatistic", type=float, help="anticipated C-statistic (default: the paper's DLRC AUC "
                    "in external validation)")
    ss.add_argument("--prevalence", type=float, help="anticipated outcome prevalence (default: the paper's "
                    "LNM prevalence, all cohorts of Table 1)")
    ss.add_argument("--oe-ciwidth", type=float, default=0.2, help="target 95%% CI width of O/E, on the O/E "
                    "scale (default 0.2)")
    ss.add_argument("--slope-ciwidth", type=float, default=0.2, help="target 95%% CI width of the calibration "
                    "slope (default 0.2)")
    ss.add_argument("--cstat-ciwidth", type=float, default=0.1, help="target 95%% CI width of the C-statistic "
                    "(default 0.1)")
    lp = ss.add_mutually_exclusive_group()
    lp.add_argument("--lp-normal", type=float, nargs=2, metavar=("MEAN", "SD"), help="linear predictor "
                    "normal with this mean and SD (default: normal in events and non-events, matching C and "
                    "the prevalence)")
    lp.add_argument("--lp-beta", type=float, nargs=2, metavar=("A", "B"), help="predicted risks beta(A, B)")
    ss.add_argument("--threshold", type=float, help="risk threshold: add the net benefit criterion")
    ss.add_argument("--sensitivity", type=float, help="anticipated sensitivity at --threshold (with "
                    "--specificity; default: read off the simulated linear predictor)")
    ss.add_argument("--specificity", type=float, help="anticipated specificity at --threshold")
    ss.add_argument("--nb-ciwidth", type=float, default=0.2, help="target 95%% CI width of the standardised "
                    "net benefit (default 0.2)")
    ss.add_argument("--params", default=None, help="take the paper's C-statistic and prevalence from this "
                    "parameter file's published_values (default: dlrc's params/published_values.yaml)")
    ss.set_defaults(func=V.samplesize_verb)

    e = sub.add_parser("extract", help="extract radiomics and deep features into the feature store")
    e.add_argument("--params", default="paper", help=_PARAMS_HELP + " (default: paper)")
    e.add_argument("--what", nargs="+", default=["radiomics", "deep"], choices=["radiomics", "deep"])
    e.add_argument("--cache-dir", help=_CACHE_HELP)
    e.add_argument("--out", help="also write the extracted feature tables (one CSV per kind/model) to this folder")
    e.set_defaults(func=V.extract_verb)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.verb != "lab":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.verb == "lab":  # the rest goes to jupyter lab (e.g. --no-browser --port 8890)
        args.lab_args = [a for a in extra if a != "--"]
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return int(func(args) or 0)
    except (ParamsError, DlrcError) as exc:
        print(f"dlrc {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" while writing {exc.filename}" if exc.filename else ""
            print(f"dlrc {args.verb}: error: no space left on the device{where} ({exc.strerror or exc}); "
                  "nothing partial was kept: free some space and run again", file=sys.stderr)
        else:
            print(f"dlrc {args.verb}: error: {exc.filename or ''}{': ' if exc.filename else ''}"
                  f"{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dlrc {args.verb}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - never a bare traceback: one line, and where to look
        import traceback

        log = _crash_log(traceback.format_exc())
        print(f"dlrc {args.verb}: error: unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
              f" (full traceback in {log}; please report it)", file=sys.stderr)
        return 3


def _crash_log(text: str) -> str:
    import tempfile

    try:
        fd, name = tempfile.mkstemp(prefix="dlrc-error-", suffix=".txt")
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return name
    except OSError:
        return "nowhere: the temporary folder is not writable"


if __name__ == "__main__":
    sys.exit(main())
