"""The synthetic twin of the paper's study: simulated patients matching its published summaries.

* :mod:`.clinical` - the Table 1 solver (categorical counts exact, age quartiles);
* :mod:`.nodes` - largest pelvic node measurements reproducing c_LNM and SRA counts;
* :mod:`.scanners` - the 12 simulated scanners, centre and scanner assignment;
* :mod:`.anatomy` - pelvis-like volumes, the tumour and its masks for one patient;
* :mod:`.writer` - the study on disk (manifest, NIfTI files, study.json, README).

``dlrc synth`` calls :func:`generate_study`.
"""
from dlrc_lib.twin.writer import (
    GENERATOR_VERSION,
    build_clinical_table,
    generate_study,
    study_fingerprint,
)

__all__ = ["GENERATOR_VERSION", "build_clinical_table", "generate_study", "study_fingerprint"]
