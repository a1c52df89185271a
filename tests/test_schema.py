"""The study's vocabulary (dlrc_lib.study.schema): one parity rule, one c_LNM rule, levels."""
from __future__ import annotations

import numpy as np
import pandas as pd

from dlrc_lib.study import schema as S


def test_parity_groups_of_counts():
    assert [S.parity_group(v) for v in (0, 1, 2, 3, 4, 5, 9)] == ["0", "1-2", "1-2", "3-4", "3-4", ">=5", ">=5"]


def test_parity_edge_values_have_no_group():
    # a parity is a count of births: fractional, negative and missing values have no group
    for v in (2.5, -1, None, np.nan, pd.NA, "two"):
        assert pd.isna(S.parity_group(v)), v


def test_parity_groups_of_a_series_keep_the_index():
    s = pd.Series([0, 2, 2.5, -1, None, 7], index=list("abcdef"))
    out = S.parity_group(s)
    assert list(out.index) == list("abcdef")
    assert out.tolist()[:2] == ["0", "1-2"] and out.iloc[5] == ">=5"
    assert out.iloc[2:5].isna().all()


def test_c_lnm_rule_is_short_axis_at_least_10_mm():
    assert S.c_lnm_from_short_axis(pd.Series([9.99, 10.0, 14.2])).tolist() == [0, 1, 1]


def test_levels_follow_the_clinical_variables():
    assert S.LEVELS["parity"] == S.PARITY_LEVELS
    assert set(S.MANIFEST_LEVELS) == {"menopause", "family_history", "figo_stage", "histology"}
    assert [v.column for v in S.CLINICAL_VARIABLES][:2] == ["age", "parity"]
    assert all(v.levels[0] in ("0", "No", "IB1", "SCC") for v in S.CLINICAL_VARIABLES if v.kind == "categorical")


def test_mask_roles_and_path_columns():
    assert S.path_columns("mask") == ["mask_CET1", "mask_DWI", "mask_T2FS"]
    assert S.path_columns("icc")[0] == "mask_r2_CET1"
    assert S.MASK_ROLE_BY_CODE["rep"].column("DWI") == "mask_rep_DWI"


def test_clinical_levels():
    study = pd.DataFrame({"parity": [0, 3, None], "c_lnm": [1, 0, None], "histology": ["SCC", None, "AC"]})
    assert S.clinical_levels(study, "parity").tolist()[:2] == ["0", "3-4"]
    assert S.clinical_levels(study, "c_lnm").tolist()[:2] == ["Yes", "No"]
    assert pd.isna(S.clinical_levels(study, "histology").iloc[1])


def test_feature_names():
    assert S.radiomics_feature_name("CET1", "original_firstorder_Mean") == "CET1_original_firstorder_Mean"
    assert S.split_feature_name(S.deep_feature_name("DWI", 17)) == ("DWI", "F17")
    assert S.split_feature_name("age") == ("", "age")
