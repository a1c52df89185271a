"""Deep-learning features: frozen ImageNet ResNets (2D and I3D-inflated 3D), the inputs of
the six DL models of the paper (whose scores, Table 3 and best-model rule are in
:mod:`dlrc_lib.scores.deep_models`).

- :mod:`.preprocess` - slice choice, crop, resampling and intensity normalisation
- :mod:`.networks` - extractors, weights, inflation
- :mod:`.store` - the feature store for 2048-wide vectors
- :mod:`.extract` - cached, batched extraction for a study (:func:`extract_study`), here or on a Dask cluster
- :mod:`.figures` - the network inputs of a few patients
"""
from dlrc_lib.features.deep.extract import (
    Case,
    ExtractionLog,
    extract_cases,
    extract_for_model,
    extract_raters,
    extract_study,
    study_cases,
)
from dlrc_lib.features.deep.networks import (
    ARCHS,
    MODEL_NAMES,
    N_FEATURES,
    build_extractor,
    inflate,
    parse_model_name,
    resolve_weights,
)

__all__ = [
    "ARCHS", "MODEL_NAMES", "N_FEATURES", "Case", "ExtractionLog", "build_extractor", "extract_cases", "extract_for_model",
    "extract_raters", "extract_study", "inflate", "parse_model_name", "resolve_weights", "study_cases",
]
