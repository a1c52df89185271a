"""The study's vocabulary, defined once: cohorts, sequences, mask roles, clinical variables,
the paper's rules (c_LNM, parity groups, SRA) and the feature-name conventions.

Every other module imports these names; ``tests/test_architecture.py`` fails when a module
defines a cohort list, a level list or a parity grouping of its own.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dlrc_lib.core.errors import DlrcError

# ----------------------------------------------------------------------------- cohorts
#: Cohorts in the paper's order (panels a-c, table blocks).
COHORTS = ("train", "internal", "external")
COHORT_LABELS = {"train": "Training", "internal": "Internal validation", "external": "External validation"}
#: Figure panel titles: "a  Training", "b  Internal validation", "c  External validation".
PANEL_LABELS = {c: f"{'abc'[i]}  {COHORT_LABELS[c]}" for i, c in enumerate(COHORTS)}
#: Probability columns of the ``predictions`` frame (notebook 05 onwards), per model role.
PROB_COLUMNS = {"radiomics": "prob_radiomics", "dl": "prob_dl", "dlrc": "prob_dlrc"}
#: Model names as the paper (and published_values.yaml) spell them; a deep-learning model is
#: named by its network (``ResNet152_2D``).
RADIOMICS, DLRC, SRA = "radiomics", "DLRC", "SRA"

# --------------------------------------------------------------------------- sequences
#: MRI sequences, by the short name used in manifest columns and feature names.
SEQUENCES = ("CET1", "DWI", "T2FS")
SEQUENCE_LABELS = {"CET1": "CE-T1WI", "DWI": "DWI", "T2FS": "FS-T2WI"}


# -------------------------------------------------------------------------- mask roles
@dataclass(frozen=True)
class MaskRole:
    """One tumour outline per patient and sequence: who drew it and where the manifest has it."""

    name: str  # reader1 | reader2 | repeat
    code: str  # short code of the deep-feature store: r1 | r2 | rep
    prefix: str  # manifest column prefix, followed by the sequence: mask_CET1, mask_r2_CET1, ...
    label: str

    def column(self, seq: str) -> str:
        return f"{self.prefix}{seq}"


MASK_ROLES = (
    MaskRole("reader1", "r1", "mask_", "Reader 1"),
    MaskRole("reader2", "r2", "mask_r2_", "Reader 2"),
    MaskRole("repeat", "rep", "mask_rep_", "Reader 1, repeated"),
)
MASK_ROLE = {r.name: r for r in MASK_ROLES}
MASK_ROLE_BY_CODE = {r.code: r for r in MASK_ROLES}
#: Manifest path columns start with one of these, followed by the sequence.
PATH_PREFIXES = ("image_",) + tuple(r.prefix for r in MASK_ROLES)


def path_columns(kind: str = "all") -> list[str]:
    """Manifest path columns: ``image``, ``mask`` (reader 1), ``icc`` (r2 + repeat) or ``all``."""
    cols = []
    if kind in ("image", "all"):
        cols += [f"image_{s}" for s in SEQUENCES]
    if kind in ("mask", "all"):
        cols += [MASK_ROLE["reader1"].column(s) for s in SEQUENCES]
    if kind in ("icc", "all"):
        cols += [MASK_ROLE[r].column(s) for r in ("reader2", "repeat") for s in SEQUENCES]
    return cols


# ------------------------------------------------------------------ clinical variables
YES_NO = ("No", "Yes")
PARITY_LEVELS = ("0", "1-2", "3-4", ">=5")
FIGO_LEVELS = ("IB1", "IB2", "IB3", "IIA1", "IIA2")
HISTOLOGY_LEVELS = ("SCC", "AC", "ASC", "Other")


@dataclass(frozen=True)
class ClinicalVariable:
    """A clinical variable of Table 1 and how it can enter the DLRC model.

    ``kind``: ``categorical`` (tested on the level x LNM table) or ``continuous``.
    ``encoding``: ``binary`` (one 0/1 term), ``dummies`` (a 0/1 column per non-reference
    level; the first level is the reference), ``numeric`` (the value itself) or None (cannot
    enter a model; ``note`` says why).
    """

    column: str
    label: str
    kind: str
    levels: tuple[str, ...] = ()
    term: str = ""
    encoding: str | None = None
    note: str = ""


#: Table 1's rows, in the paper's order.
CLINICAL_VARIABLES = (
    ClinicalVariable("age", "Age", "continuous", (), "age", "numeric"),
    ClinicalVariable("parity", "Parity", "categorical", PARITY_LEVELS, "parity", "dummies"),
    ClinicalVariable("menopause", "Menopause", "categorical", YES_NO, "menopause", "binary"),
    ClinicalVariable("age_at_menopause", "Age at menopause", "continuous", (), "age_at_menopause", None,
                     "defined for postmenopausal patients only; cannot enter the model"),
    ClinicalVariable("family_history", "Family history", "categorical", YES_NO, "family_history", "binary"),
    ClinicalVariable("figo_stage", "FIGO stage", "categorical", FIGO_LEVELS, "figo_stage", "dummies"),
    ClinicalVariable("c_lnm", "c_LNM", "categorical", YES_NO, "c_LNM", "binary"),
    ClinicalVariable("histology", "Histological subtype", "categorical", HISTOLOGY_LEVELS, "histology", "dummies"),
)
CLINICAL = {v.column: v for v in CLINICAL_VARIABLES}
#: Levels of every categorical variable, in Table 1 order (the first is the reference level).
LEVELS = {v.column: v.levels for v in CLINICAL_VARIABLES if v.kind == "categorical"}
#: Categorical columns whose manifest values are the level names themselves.
MANIFEST_LEVELS = {c: lv for c, lv in LEVELS.items() if c not in ("parity", "c_lnm")}
#: Display forms of level names.
LEVEL_LABELS = {">=5": "≥ 5", "1-2": "1–2", "3-4": "3–4"}
#: Columns every manifest must have.
CLINICAL_REQUIRED = ("patient_id", "centre", "scanner", "lnm", "age", "parity", "menopause",
                     "family_history", "figo_stage", "histology", "lnsd_mm", "lnld_mm", "node_necrosis")

# ------------------------------------------------------ optional manifest columns
#: Optional: reader 2's independent reading of the largest node (Supplementary Method S1);
#: ``lnsd_mm``, ``lnld_mm``, ``node_necrosis`` hold the final (consensus) reading.
READER2_COLUMNS = ("lnsd_mm_r2", "lnld_mm_r2", "node_necrosis_r2")
#: Optional acquisition columns (Supplementary Table S1); an absent one reads "not given".
ACQUISITION_TEXT = ("scanner_vendor", "scanner_model")
ACQUISITION_NUMERIC = ("field_strength_t",) + tuple(
    f"{what}_{seq}" for what in ("tr_ms", "te_ms", "slice_thickness_mm") for seq in SEQUENCES)
ACQUISITION_INPLANE = tuple(f"inplane_mm_{seq}" for seq in SEQUENCES)  # "0.94x0.94" or "0.94"
ACQUISITION_COLUMNS = ACQUISITION_TEXT + ACQUISITION_NUMERIC + ACQUISITION_INPLANE + ("dwi_b_values",)
#: Optional: reader 1's own reading, when the final reading (``lnsd_mm`` ...) is a consensus
#: that differs from it; without them the final reading counts as reader 1's.
READER1_COLUMNS = ("lnsd_mm_r1", "lnld_mm_r1", "node_necrosis_r1")
NODE_OPTIONAL_DIAMETERS = ("lnsd_mm_r1", "lnld_mm_r1", "lnsd_mm_r2", "lnld_mm_r2")
NODE_OPTIONAL_FLAGS = ("node_necrosis_r1", "node_necrosis_r2")


def _parity_one(count: Any) -> Any:
    if count is None or count is pd.NA:
        return np.nan
    try:
        c = float(count)
    except (TypeError, ValueError):
        return np.nan
    if math.isnan(c) or c < 0 or c != math.floor(c):
        return np.nan  # a parity is a count of births: negative or fractional values are not one
    return "0" if c == 0 else "1-2" if c <= 2 else "3-4" if c <= 4 else ">=5"


def parity_group(count: Any) -> Any:
    """Table 1's parity group ("0", "1-2", "3-4", ">=5") of a count, or of each count of a
    Series/array (a Series keeps its index). A missing, negative or fractional count has
    no group (NaN); validation reports such values."""
    if isinstance(count, pd.Series):
        return count.map(_parity_one).astype(object)
    if isinstance(count, (list, tuple, np.ndarray)):
        return pd.Series([_parity_one(c) for c in count], dtype=object)
    return _parity_one(count)


def clinical_levels(study: pd.DataFrame, column: str) -> pd.Series:
    """The Table 1 level of each patient for a categorical clinical column (NaN when missing)."""
    if column not in study.columns:
        raise DlrcError(f"study: column '{column}' is missing")
    s = study[column]
    if column == "parity":
        return parity_group(s)
    if column == "c_lnm":
        v = pd.to_numeric(s, errors="coerce")
        return v.map(lambda x: np.nan if pd.isna(x) else ("Yes" if int(x) == 1 else "No")).astype(object)
    return s.astype(object).where(s.notna(), np.nan)


# ------------------------------------------------------------------------------ rules
#: The paper's c_LNM: the largest pelvic node's short axis >= 10 mm on MRI.
C_LNM_SHORT_AXIS_MM = 10.0


def c_lnm_from_short_axis(lnsd_mm: pd.Series) -> pd.Series:
    """Clinically suspected LNM (0/1) from the largest node's short-axis diameter (mm)."""
    return (lnsd_mm >= C_LNM_SHORT_AXIS_MM).astype(int)


#: How a manifest may write the radiologist's own node call (``c_lnm``): these words, in any
#: case and with surrounding spaces, read as 1 (suspected LNM) or 0.
C_LNM_WORDS = {1: ("1", "yes", "y", "pos", "positive", "true", "+"),
               0: ("0", "no", "n", "neg", "negative", "false", "-")}
#: The accepted spellings, as messages show them.
C_LNM_SPELLINGS = ", ".join(f"{a}/{b}" for a, b in zip(C_LNM_WORDS[1], C_LNM_WORDS[0]))
_C_LNM_READING = {w: k for k, words in C_LNM_WORDS.items() for w in words}


def c_lnm_reading(value: Any) -> Any:
    """1 or 0 for a written c_LNM call (:data:`C_LNM_WORDS`; the numbers 1.0 and 0.0 too),
    None for anything else (a missing value included)."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return int(value) if value in (0, 1) else None
    if not isinstance(value, str):
        return None
    word = value.strip().casefold()
    return _C_LNM_READING.get(word[:-2] if word in ("1.0", "0.0") else word)


#: What the parameters of the standardised radiological assessment (``params.sra``) mean:
#: the largest pelvic node is SRA-positive when its short axis reaches ``short_axis_mm``, when
#: it is necrotic, or when its short axis reaches ``borderline_mm`` while it is round
#: (short/long ratio above ``ratio``); Table 5 splits the patients at ``subgroup_mm``.
SRA_PARAMETERS = {
    "short_axis_mm": "short axis (mm) from which the largest node is positive",
    "borderline_mm": "short axis (mm) from which a round node is positive (a necrotic node is positive at any size)",
    "ratio": "short/long axis ratio above which a node counts as round",
    "subgroup_mm": "short axis (mm) at which Table 5 splits the patients",
}

# ---------------------------------------------------------------------- feature names
#: Radiomics features: ``<SEQ>_<pyradiomics name>``, e.g. ``CET1_wavelet-HLH_gldm_SmallDependenceEmphasis``;
#: deep features: ``<SEQ>_F<index>``, e.g. ``CET1_F1695``.
_FEATURE = re.compile(r"^(?P<seq>[A-Z0-9]+)_(?P<name>.+)$")


def radiomics_feature_name(seq: str, name: str) -> str:
    return f"{seq}_{name}"


def deep_feature_name(seq: str, index: int) -> str:
    return f"{seq}_F{index}"


def split_feature_name(feature: str) -> tuple[str, str]:
    """``(sequence, rest)`` of a feature name; the rest is the PyRadiomics name or ``F<index>``."""
    m = _FEATURE.match(feature)
    if not m or m["seq"] not in SEQUENCES:
        return "", feature
    return m["seq"], m["name"]


# ------------------------------------------------ acquisition value formats
def parse_inplane(value) -> tuple[float, float]:
    """``"0.94x0.94"`` (or ``"0.94 x 0.94"``, ``"0.94"``) -> (0.94, 0.94); ValueError otherwise."""
    parts = [p.strip() for p in str(value).lower().replace("×", "x").split("x")]
    if len(parts) not in (1, 2) or not all(parts):
        raise ValueError(f"expected 'ROWxCOL' in mm, e.g. 0.94x0.94, got {value!r}")
    nums = tuple(float(p) for p in parts)
    if any(not np.isfinite(v) or v <= 0 for v in nums):
        raise ValueError(f"in-plane resolution must be positive, got {value!r}")
    return (nums[0], nums[-1])


def parse_b_values(value) -> tuple[int, ...]:
    """``"0, 800"`` (commas, semicolons or spaces) -> (0, 800); ValueError otherwise."""
    text = str(value).replace(";", ",").replace(" ", ",")
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"no b-value in {value!r}")
    out = []
    for p in parts:
        v = float(p)
        if not np.isfinite(v) or v < 0 or v != int(v):
            raise ValueError(f"b-values must be non-negative integers (s/mm²), got {value!r}")
        out.append(int(v))
    return tuple(sorted(set(out)))
