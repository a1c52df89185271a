"""The package's layout at build time (everything else is in pyproject.toml).

The notebooks and the parameter files stay at the top of the repository (``notebooks/``,
``params/``); a wheel carries them inside the package as ``dlrc_lib/_data/notebooks`` and
``dlrc_lib/_data/params``, where ``dlrc_lib.core.resources.data_root`` finds them. Mapping the
two folders here keeps one copy of each file in the repository and lists the code's packages
by discovery, so a new subpackage needs no entry.
"""
from setuptools import find_packages, setup

DATA = {"dlrc_lib._data.notebooks": "notebooks", "dlrc_lib._data.params": "params"}

setup(
    packages=find_packages(include=["dlrc_lib", "dlrc_lib.*"]) + list(DATA),
    package_dir=DATA,
    package_data={"dlrc_lib._data.notebooks": ["[0-9][0-9]_*.ipynb"], "dlrc_lib._data.params": ["*.yaml"]},
    # params/bad.yaml is the checkout's deliberately broken example (README, tests), not a run's input
    exclude_package_data={"dlrc_lib._data.params": ["bad.yaml"]},
)
