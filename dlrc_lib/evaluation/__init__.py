"""How models are judged: performance at a cut-off and ROC (:mod:`.performance`, :mod:`.roc`), calibration, decision curves, SRA and Table 1."""
