"""The keys of reproduced values (dlrc_lib.study.keys) against published_values.yaml, both ways."""
from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest
import yaml

from dlrc_lib.core.config import DL_MODELS, PAPER_BEST_DL, Params
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.reporting.report import flatten_published
from dlrc_lib.study import keys as K

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = yaml.safe_load((ROOT / "params" / "published_values.yaml").read_text(encoding="utf-8"))

# Keys a run records that the paper has no number for, and why.
NOT_PUBLISHED = {
    "table2.*.ResNet*": "the run's best DL model is recorded under its own name; the paper reports only its own "
                        f"best ({PAPER_BEST_DL}) in Table 2",
    "table4.*_vs_ResNet*": f"the same for Table 4's comparisons with the best DL model (the paper's: {PAPER_BEST_DL})",
}
# Published values that no run reproduces, and why.
NOT_REPRODUCED = {
    "study.enrolled": "patients before the exclusions: the study table holds only the included ones",
    "study.sequences": "a design fact (the three MRI sequences), not a result",
    "study.dwi_b_values": "an acquisition setting the study table does not record",
    "study.icc_threshold": "a parameter of the method (icc.threshold), not a result",
    "study.split_ratio": "a design fact (the 7:3 split of centre A), not a result",
    "implied_confusion.*": "confusion counts derived from the published percentages, a check of the paper itself",
    "discrepancies.*": "notes on numbers the paper states twice, shown beside the number they concern",
    "selected_features.dl_top": "the deep features are numbered differently for every network and weight source",
    "selected_features.dlrc_terms": "recorded as the DLRC model's terms (results of 05_dlrc), compared by a claim",
}


def _matches(key: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


@pytest.fixture(scope="module")
def produced() -> list[str]:
    params = Params()
    centres = PUBLISHED["study"]["centres"]
    return K.reproducible_keys(params.deep.models, params.sra.subgroup_mm, centres)


@pytest.fixture(scope="module")
def published() -> dict:
    return flatten_published(PUBLISHED)


def test_every_produced_key_is_published_or_said_why_not(produced, published):
    assert all(K.is_key(k) for k in produced)
    unknown = [k for k in produced if k not in published and not _matches(k, NOT_PUBLISHED)]
    assert not unknown, unknown
    # the paper's best DL model is published everywhere a run's best model is recorded
    assert not [k for k in produced if PAPER_BEST_DL in k and k.startswith(("table2.", "table4."))
                and k not in published]


def test_every_published_key_is_produced_or_said_why_not(produced, published):
    missing = [k for k in published if k not in produced and not _matches(k, NOT_REPRODUCED)]
    assert not missing, missing
    # every reason still names something published and nothing produced
    for pattern in NOT_REPRODUCED:
        assert any(fnmatch.fnmatchcase(k, pattern) for k in published), pattern
        assert not any(fnmatch.fnmatchcase(k, pattern) for k in produced), pattern


def test_published_keys_parse_back_to_their_parts(published):
    for k in published:
        if _matches(k, NOT_REPRODUCED) and not k.startswith(("study.", "selected_features.")):
            continue
        parsed = K.parse(k)
        assert str(parsed) == k
        assert K.key(parsed.table, **parsed.parts()) == k


def test_the_compared_tables_are_key_tables(published):
    assert set(K.PAPER_TABLES) <= set(K.TABLES)
    assert {k.split(".")[0] for k in published} >= set(K.PAPER_TABLES)


def test_build_and_parse():
    k = K.Key("table2", cohort="train", model="DLRC", metric="auc")
    assert str(k) == "table2.train.DLRC.auc" == K.key("table2", cohort="train", model="DLRC", metric="auc")
    assert K.parse("table2.train.DLRC.auc") == k
    t4 = K.parse("table4.radiomics_vs_ResNet152_2D.external")
    assert (t4.model, t4.other, t4.cohort, t4.pair) == ("radiomics", "ResNet152_2D", "external",
                                                        "radiomics_vs_ResNet152_2D")
    t5 = K.parse("table5.lnsd_10mm_or_more.internal.SRA.npv")
    assert (t5.subgroup, t5.cohort, t5.model, t5.metric) == ("lnsd_10mm_or_more", "internal", "SRA", "npv")
    assert K.key("table1", variable="parity", level=">=5", cohort="train") == "table1.categorical.parity.levels.>=5.train"
    assert K.key("table1") == "table1.lnm_rate_p"
    assert K.key("study", centre="A") == "study.centres.A"
    assert K.values([K.row("table1", [1, 2], cohort="train")]) == {"table1.n.train": [1, 2]}


@pytest.mark.parametrize("bad", [
    dict(table="table2", cohort="training", model="DLRC", metric="auc"),  # unknown cohort
    dict(table="table2", cohort="train", model="DLRC", metric="AUC"),  # unknown metric
    dict(table="table2", cohort="train", model="DLRC"),  # a part missing
    dict(table="table6", cohort="train"),  # unknown table
    dict(table="table5", subgroup="small", cohort="train", model="SRA", metric="sen"),
    dict(table="table2", cohort="train", model="DL.RC", metric="auc"),  # a dot inside a part
])
def test_a_misspelt_part_fails_where_the_key_is_made(bad):
    with pytest.raises(DlrcError):
        K.key(**bad)


def test_parse_rejects_what_it_does_not_build():
    for text in ("table2.train.DLRC", "table2.training.DLRC.auc", "table9.x", "calibration_hosmer_lemeshow_p"):
        assert not K.is_key(text)
    with pytest.raises(DlrcError):
        K.values([K.row("table1", [1, 2], cohort="train")] * 2)


def test_the_twin_names_keys_that_exist(produced):
    """The twin's ``built_from`` / ``calibrated_towards`` patterns over reproduced values match some."""
    from dlrc_lib.twin.writer import BUILT_FROM, CALIBRATED_TOWARDS

    patterns = [p for p in (*BUILT_FROM, *CALIBRATED_TOWARDS) if p.split(".")[0] in K.TABLES]
    assert patterns
    for p in patterns:
        assert any(fnmatch.fnmatchcase(k, p) for k in produced), p


def test_the_claims_name_the_schemas_models():
    """params/claims.yaml spells the DL models as the schema does (core/config.py DL_MODELS)."""
    claims = yaml.safe_load((ROOT / "params" / "claims.yaml").read_text(encoding="utf-8"))
    assert claims["paper_best_dl"] == PAPER_BEST_DL
    labelled = [m for m in claims["labels"]["model"] if m.startswith("ResNet")]
    assert labelled == list(DL_MODELS)
    per_model = [c["each"]["model"] for c in claims["claims"] if "model" in c.get("each", {})
                 and any(str(m).startswith("ResNet") for m in c["each"]["model"])]
    assert per_model and all(m == list(DL_MODELS) for m in per_model)
    assert [m for m in PUBLISHED["table3"]["train"]] == list(DL_MODELS)


def test_a_hospitals_own_centre_names_make_keys():
    """Real centre names hold spaces and dots: a key keeps the spaces and writes a dot as _."""
    import pandas as pd

    from dlrc_lib.study.views import published_counts

    study = pd.DataFrame({"centre": ["Affiliated Cancer Hospital of Zhengzhou University", "St. Mary's"],
                          "scanner": ["s1", "s2"], "cohort": ["train", "external"], "lnm": [0, 1]})
    keys = {str(r.key) for r in published_counts(study)}
    assert {"study.centres.Affiliated Cancer Hospital of Zhengzhou University", "study.centres.St_ Mary's"} <= keys
    with pytest.raises(DlrcError, match="holds a dot"):
        K.key("study", centre="St. Mary's")
