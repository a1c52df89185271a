# Two commands do all set-up on a fresh machine (Python 3.11 + the package registries):
#   make reproduce   the main job: build the synthetic twin study, run every notebook
#   make test        the test suite, after the wheel test (make test-wheel: the wheel built,
#                    installed into a new environment outside the checkout and run there)
#   make teach       a run sized for a class (half the patients, all notebooks, ~15 min on 2 cores)
#   make lab         JupyterLab on the last finished run (make quick or make teach makes one)
# Both create .venv when missing and reinstall only when a requirements file changed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.dlrc-installed
PARAMS ?= params/paper.yaml
# The pins of the three install steps below; the wheel test (.ci/wheel_test.sh) installs the same.
NUMPY       := numpy>=2,<2.4
TORCH       := torch==2.14.1 torchvision==0.29.1
PYRADIOMICS := pyradiomics==3.0.1

.PHONY: install reproduce quick teach lab test test-wheel test-all docs bench clean-reports

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	# numpy first: pyradiomics 3.0.1 compiles its C extensions against the numpy it finds.
	$(PIP) install -q '$(NUMPY)'
	# torch and torchvision only import together as this exact pair here.
	$(PIP) install -q $(TORCH)
	# pyradiomics: the 3.1.0 source release on PyPI is broken (its metadata says 3.0.1a1);
	# 3.0.1 builds on Python 3.11 + numpy 2 when pip uses the installed numpy, i.e. without
	# build isolation.
	$(PIP) install -q --no-build-isolation $(PYRADIOMICS)
	# Everything else (scipy<1.17 and trimesh keep pyradiomics' LBP3D filter alive; see
	# the comments in requirements.txt).
	$(PIP) install -q -r requirements.txt -r requirements-dev.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

reproduce: $(STAMP)
	$(VENV)/bin/dlrc run --params $(PARAMS)

quick: $(STAMP)
	$(VENV)/bin/dlrc run --params params/quick.yaml

teach: $(STAMP)
	$(VENV)/bin/dlrc run --params params/teach.yaml

lab: $(STAMP)
	$(VENV)/bin/dlrc lab

test: $(STAMP)
	$(MAKE) --no-print-directory test-wheel
	$(PY) -m pytest -q

# The package on its own: sdist and wheel built and checked, the wheel installed with the pins
# above into a new virtual environment in a temporary folder, then init, synth, validate, run
# and predict from a folder that holds no checkout (about 12 min; see the script).
test-wheel: $(STAMP)
	NUMPY='$(NUMPY)' TORCH='$(TORCH)' PYRADIOMICS='$(PYRADIOMICS)' PYTHON='$(PYTHON)' \
		BUILD_PYTHON='$(PY)' bash .ci/wheel_test.sh

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

# The API reference, generated from the docstrings (not committed).
docs: $(STAMP)
	$(VENV)/bin/pdoc -o docs/api -d numpy dlrc_lib

clean-reports:
	rm -rf reports/paper reports/quick
