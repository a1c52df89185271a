#!/usr/bin/env bash
# The package on its own (part of `make test`; alone: `make test-wheel`).
#
# Builds the sdist and the wheel and checks them, installs the wheel into a new virtual
# environment in a temporary folder outside the checkout (numpy, torch/torchvision and
# pyradiomics first, with the Makefile's pins and its pyradiomics build step), and then, from a
# working folder that holds no checkout and with no checkout on sys.path, runs what a pip user
# runs: dlrc --version, dlrc init, dlrc synth --params quick, a small manifest study (the twin's
# patients as one's own study: validate, run with the cheap radiomics settings and 2D networks
# with random weights at a small input) and dlrc predict on one patient. Every step that fails
# stops the script with the step's name; the temporary folder is removed at the end.
#
# Environment (the Makefile sets them): NUMPY, TORCH, PYRADIOMICS (the pins), PYTHON (the
# interpreter of the new environment), BUILD_PYTHON (an interpreter with build and twine).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
: "${NUMPY:?set NUMPY (run through make test-wheel)}" "${TORCH:?set TORCH}" "${PYRADIOMICS:?set PYRADIOMICS}"
PYTHON=${PYTHON:-python3}
BUILD_PYTHON=${BUILD_PYTHON:-.venv/bin/python}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dlrc-wheel-test.XXXXXX")
case "$WORK" in "$REPO"/*) echo "wheel test: FAILED: the temporary folder $WORK is inside the checkout" >&2; exit 1;; esac
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

T0=$(date +%s)
STEP=""
step() { STEP=$1; echo "wheel test [$(( $(date +%s) - T0 )) s]: $STEP" >&2; }
fail() { echo "wheel test: FAILED at '$STEP': $*" >&2; exit 1; }
# run a command of the current step; a non-zero exit fails the test naming the step
must() { "$@" || fail "exit status $? of: $*"; }

step "build the sdist and the wheel (python -m build)"
"$BUILD_PYTHON" -m build --outdir "$WORK/dist" "$REPO" >"$WORK/build.log" 2>&1 \
    || { tail -30 "$WORK/build.log" >&2; fail "python -m build failed (the end of its log above)"; }
WHEEL=$(ls "$WORK"/dist/*.whl)
SDIST=$(ls "$WORK"/dist/*.tar.gz)

step "twine check"
must "$BUILD_PYTHON" -m twine check --strict "$WHEEL" "$SDIST"

step "the wheel carries the notebooks and the parameter files"
must "$BUILD_PYTHON" - "$WHEEL" "$REPO" <<'EOF'
import sys, zipfile
from pathlib import Path

wheel, repo = sys.argv[1], Path(sys.argv[2])
names = set(zipfile.ZipFile(wheel).namelist())
want = [f"dlrc_lib/_data/notebooks/{p.name}" for p in sorted((repo / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
want += [f"dlrc_lib/_data/params/{p.name}" for p in sorted((repo / "params").glob("*.yaml")) if p.name != "bad.yaml"]
missing = [n for n in want if n not in names]
if missing:
    sys.exit(f"the wheel lacks {len(missing)} file(s): {', '.join(missing)}")
if not any(n.endswith("/licenses/LICENSE") for n in names):
    sys.exit("the wheel lacks LICENSE")
print(f"{len(want)} notebooks and parameter files in {Path(wheel).name}")
EOF

VENV=$WORK/venv
PIP="$VENV/bin/python -m pip"
step "a new virtual environment: pip, $NUMPY"
must "$PYTHON" -m venv "$VENV"
must $PIP install -q --upgrade pip setuptools wheel
must $PIP install -q "$NUMPY"
step "$TORCH"
must $PIP install -q $TORCH
step "$PYRADIOMICS without build isolation (it compiles against the installed numpy)"
must $PIP install -q --no-build-isolation "$PYRADIOMICS"
step "the wheel and its requirements"
must $PIP install -q "$WHEEL"

# From here: a folder with no checkout, no PYTHONPATH, the environment's dlrc.
STUDY=$WORK/work
mkdir -p "$STUDY"
cd "$STUDY"
unset PYTHONPATH
export PATH="$VENV/bin:$PATH" MPLBACKEND=Agg
DLRC=$VENV/bin/dlrc

step "dlrc_lib is imported from the environment's site-packages"
where=$("$VENV/bin/python" -c "import dlrc_lib; print(dlrc_lib.__file__)") || fail "import dlrc_lib failed"
case "$where" in "$VENV"/lib/python*/site-packages/dlrc_lib/__init__.py) ;;
    *) fail "dlrc_lib imported from $where, not from $VENV's site-packages";; esac
echo "  $where" >&2

step "dlrc --version"
version=$("$DLRC" --version) || fail "exit status $? of: dlrc --version"
echo "  $version" >&2
case "$version" in "dlrc "*installed*) ;; *) fail "unexpected version line: $version";; esac

step "dlrc init mystudy"
must "$DLRC" init mystudy

step "dlrc synth --params quick (the quick twin, into ./data/twin/quick)"
must "$DLRC" synth --params quick
[ -f data/twin/quick/manifest.csv ] || fail "no data/twin/quick/manifest.csv in the working folder"

step "mystudy: the twin's patients as one's own study (cheap settings)"
# the parameter file dlrc init wrote, pointed at the twin's manifest, with the quick run's cheap
# PyRadiomics settings (written as params/radiomics_quick.yaml: found among the package's files)
must "$VENV/bin/python" - <<'EOF'
from pathlib import Path

import yaml

path = Path("mystudy/params.yaml")
p = yaml.safe_load(path.read_text(encoding="utf-8"))
p["study"]["manifest"] = str(Path("data/twin/quick/manifest.csv").resolve())
p["harmonisation"]["small_batch"] = "skip"  # the quick twin has one-patient scanners
p["radiomics"]["settings"] = "params/radiomics_quick.yaml"
p["selection"]["max_features_lasso"] = 2
p["deep"].update(models=["ResNet50_2D", "ResNet101_2D", "ResNet152_2D"], input_size=64, weights="random")
p["calibration"] = {"bootstrap": 20}
p["decision_curve"] = {"bootstrap": 20}
path.write_text(yaml.safe_dump(p, sort_keys=False), encoding="utf-8")
EOF

step "dlrc validate --params mystudy/params.yaml"
must "$DLRC" validate --params mystudy/params.yaml

step "dlrc run --params mystudy/params.yaml (notebooks 00-08 from the wheel)"
must "$DLRC" run --params mystudy/params.yaml --out reports/mystudy
must "$VENV/bin/python" - <<'EOF'
import json
import sys
from pathlib import Path

run = json.loads(Path("reports/mystudy/run.json").read_text(encoding="utf-8"))
if run["status"] != "ok":
    sys.exit(f"run.json: status {run['status']}: {run.get('failure')}")
if run.get("git_commit"):
    sys.exit(f"run.json records a git commit ({run['git_commit']}) for an installed package")
html = sorted(p.name for p in Path("reports/mystudy/html").glob("*.html"))
if len(html) < 9:
    sys.exit(f"only {len(html)} notebook pages: {html}")
for name in ("index.html", "claims.csv", "checklist.html"):
    if not Path("reports/mystudy", name).is_file():
        sys.exit(f"reports/mystudy/{name} is missing")
print(f"run ok: {len(html)} notebook pages, packages {run['packages'].get('dlrc')}")
EOF

step "dlrc predict on one patient"
must "$VENV/bin/python" - <<'EOF'
import pandas as pd

study = pd.read_csv("reports/mystudy/study_manifest.csv", dtype=str, keep_default_na=False)
one = study[study["cohort"] == "external"].head(1)
cols = ["patient_id", "scanner", "lnsd_mm"] + [c for c in study.columns if c.startswith(("image_", "mask_"))
                                               and not c.startswith(("mask_r2_", "mask_rep_"))]
one[cols].to_csv("new_patient.csv", index=False)
EOF
model=$(ls reports/mystudy/model/*.json | head -1) || fail "no model JSON in reports/mystudy/model"
must "$DLRC" predict --model "$model" --manifest new_patient.csv --out prediction.csv
rows=$(( $(wc -l < prediction.csv) - 1 ))
[ "$rows" -eq 1 ] || fail "prediction.csv has $rows rows, expected 1"

step "done"
echo "wheel test: passed in $(( $(date +%s) - T0 )) s" >&2
