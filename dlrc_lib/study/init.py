"""``dlrc init DIR``: the start of one's own study.

Writes into ``DIR``:

* ``params.yaml`` — a parameter file for a manifest study: the paper's stated analysis
  choices, no key of the synthetic twin, ``study.role: new_cohort``; every relative path in it
  resolves against ``DIR``;
* ``manifest_template.csv`` — the manifest's header with every column, and one example row;
* ``MANIFEST.md`` — every column of that template: required or not, the values it takes;
* ``README.md`` — the few steps from a hospital export to a report.

Nothing existing is overwritten unless ``--force`` is given.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.io import atomic_write_text
from dlrc_lib.study.schema import (
    C_LNM_SPELLINGS,
    COHORTS,
    FIGO_LEVELS,
    HISTOLOGY_LEVELS,
    MASK_ROLE,
    SEQUENCE_LABELS,
    SEQUENCES,
)

# (column, required, values) in the template's order; docs/manifest.md describes the same columns.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("patient_id", "yes", "unique text (spaces before and after it are removed)"),
    ("centre", "yes", "text (e.g. A); harmonisation needs at least study.min_batch_size patients per batch"),
    ("scanner", "yes", "text; the default ComBat batch"),
    ("cohort", "no", "train, internal or external; leave the column out (or empty for everyone) to split "
                     "study.internal_centres into train/internal and call every other centre external"),
    ("lnm", "yes", "0/1: pathological pelvic lymph node metastasis"),
    ("age", "yes", "years"),
    ("parity", "yes", "number of births"),
    ("menopause", "yes", "No/Yes"),
    ("age_at_menopause", "when menopause is Yes", "years"),
    ("family_history", "yes", "No/Yes: family history of malignancy"),
    ("figo_stage", "yes", "FIGO 2018: " + ", ".join(FIGO_LEVELS)),
    ("histology", "yes", ", ".join(HISTOLOGY_LEVELS)),
    ("lnsd_mm", "yes", "short axis of the largest pelvic node on CE-T1WI (mm)"),
    ("lnld_mm", "yes", "long axis of that node (mm)"),
    ("node_necrosis", "yes", "0/1: central necrosis in that node"),
) + tuple(
    (f"{prefix}{s}", required, text.format(seq=SEQUENCE_LABELS[s])) for prefix, required, text in (
        ("image_", "yes", "{seq} image: NIfTI (.nii, .nii.gz), NRRD (.nrrd) or a folder holding one DICOM series; "
                          "relative to the manifest's folder"),
        (MASK_ROLE["reader1"].prefix, "yes", "reader 1's tumour mask of {seq} (NIfTI or NRRD on the image's grid, "
                                             "as ITK-SNAP saves it, or on a cropped extent of it, as 3D Slicer "
                                             "saves a .seg.nrrd; labels 0 and study.mask_label; or a DICOM-SEG "
                                             "file)"),
        (MASK_ROLE["reader2"].prefix, "for the ICC analysis", "reader 2's mask of {seq} for the re-segmented "
                                                              "patients (empty for the others)"),
        (MASK_ROLE["repeat"].prefix, "for the ICC analysis", "reader 1's repeated mask of {seq} for the "
                                                             "re-segmented patients (empty for the others)"),
    ) for s in SEQUENCES
)

_EXAMPLE = {
    "patient_id": "P0001", "centre": "A", "scanner": "A_Skyra", "cohort": COHORTS[0], "lnm": "0", "age": "47",
    "parity": "2", "menopause": "No", "age_at_menopause": "", "family_history": "No", "figo_stage": FIGO_LEVELS[0],
    "histology": HISTOLOGY_LEVELS[0], "lnsd_mm": "6.5", "lnld_mm": "9.0", "node_necrosis": "0",
    "image_CET1": "P0001/ax_t1_vibe_post", "image_DWI": "P0001/dwi_b800.nrrd", "image_T2FS": "P0001/t2_fs.nii.gz",
    "mask_CET1": "P0001/ax_t1_vibe_post_mask.nii.gz", "mask_DWI": "P0001/dwi_mask.nrrd",
    "mask_T2FS": "P0001/t2_fs_mask.nii.gz",
}

PARAMS_TEMPLATE = """\
# Parameters of the study in this folder: a manifest study (your patients), analysed as the paper did.
# Every relative path here resolves against this file's folder. Keys left out take the defaults of
# dlrc_lib/core/config.py (the paper's published values and PyRadiomics settings come with dlrc).
run_name: {run_name}             # the report goes to reports/{run_name}/ (or dlrc run --out DIR)
seed: 20240601                   # every random step (cohort split, CV folds, bootstraps) derives from it
cache_dir: .dlrc_cache           # feature store and validation cache (dlrc run --cache-dir to move it)
study:
  source: manifest
  manifest: manifest.csv         # one row per patient: see MANIFEST.md and manifest_template.csv
  # new_cohort: another cohort than the paper's; Table 1 and the cohort sizes are shown beside the
  # paper's but not graded, the verdict covers the paper's findings. same_patients: the paper's own
  # patients re-analysed (cohort sizes and Table 1 counts are graded too).
  role: new_cohort
  internal_centres: [A]          # without a cohort column: these centres are split into train/internal ...
  train_fraction: 0.7            # ... at this fraction (stratified by LNM); every other centre is external
  min_batch_size: 2              # smallest scanner that ComBat can harmonise
  mask_label: 1                  # voxel value of the tumour in the mask files
  # Fig. 1's exclusions: flow.csv beside the manifest (step,n: first "enrolled,<n>", then one row per
  # exclusion reason with its n) is read when it is there; flow: names another file
radiomics:
  sequences: [CET1, DWI, T2FS]   # the paper's three sequences
icc:
  threshold: 0.75                # the paper: "Features with ICCs > 0.75 were retained."
harmonisation:
  mode: train_reference          # ComBat fitted on the training cohort, applied to the others
  batch: scanner
  small_batch: error             # a one-patient scanner is refused (skip: leave it unharmonised)
selection:
  mw_p: 0.01                     # the paper's Mann-Whitney threshold
  spearman_r: 0.8                # the paper's correlation threshold
  lasso_rule: 1se                # min keeps more features (dlrc validate --params says when 1se is risky)
deep:
  # the paper's rule chooses the best network with the external cohort; without one use train_auc
  best_model_rule: {best_rule}
  # models: []                   # no deep learning: DLRC from the radiomics score and clinical terms
"""

README_TEMPLATE = """\
# {name}: a dlrc study

0. Before collecting data: how many patients (and LNM events) does a validation cohort need to
   test the paper's model (Riley et al. 2021 criteria, the paper's C-statistic and prevalence)?

       dlrc samplesize            # or: dlrc samplesize --cstatistic 0.75 --prevalence 0.25

1. Put each patient's images and masks in a folder of their own below this one (a DICOM series
   folder, NIfTI or NRRD per sequence; masks as NIfTI or NRRD on their image's grid, or DICOM-SEG).
2. Fill `manifest.csv` (start from `manifest_template.csv`; every column is described in
   `MANIFEST.md`). Paths are relative to the manifest's folder. Semicolon-separated CSV with decimal
   commas and `.xlsx` are read too (`study.manifest: manifest.xlsx`).
3. Check the study and whether the analysis suits it, before anything is computed:

       dlrc validate --params params.yaml

   Every problem is one line naming the patient, the column or file and what is wrong; one line per
   validation cohort says how many patients it has against the minimum it would need.
   Optional: `flow.csv` beside the manifest gives the patient flow chart (Fig. 1) your exclusions:
   columns `step,n`, first the row `enrolled` with the patients enrolled, then one row per
   exclusion reason with its count (enrolled minus the exclusions = the manifest's patients).
4. Run the analysis (features are cached in `.dlrc_cache`, a re-run recomputes only what changed):

       dlrc run --params params.yaml --out reports/{run_name}

   `reports/{run_name}/index.html` shows the paper's findings tested on your study, each one
   holds, fails or is too small to tell with a cohort of this size; your cohort's Table 1 is shown
   beside the paper's.
5. Score new patients with the exported model:

       dlrc predict --model reports/{run_name}/model/dlrc_model.json --manifest new.csv --out predictions.csv
"""


def _csv_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def columns_markdown() -> str:
    lines = ["# Manifest columns", "", "One row per patient; paths relative to the manifest's folder.", "",
             "| column | required | values |", "|---|---|---|"]
    lines += [f"| `{c}` | {req} | {vals} |" for c, req, vals in COLUMNS]
    lines += ["", "Optional: the radiologist's own node call `c_lnm` (" + C_LNM_SPELLINGS + ", in any case; without "
              "it c_LNM is lnsd_mm >= 10), reader 2's node reading (`lnsd_mm_r2`, `lnld_mm_r2`, `node_necrosis_r2`) and the "
              "acquisition columns of Supplementary Table S1 (`scanner_vendor`, `scanner_model`, "
              "`field_strength_t`, `tr_ms_<SEQ>`, `te_ms_<SEQ>`, `slice_thickness_mm_<SEQ>`, "
              "`inplane_mm_<SEQ>`, `dwi_b_values`); see dlrc's docs/manifest.md.", ""]
    return "\n".join(lines)


def init_study(folder: str | Path, *, force: bool = False, external: bool = True) -> list[Path]:
    """Write the files of a new study folder (see the module docstring); returns their paths."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise DlrcError(f"{folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    run_name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in folder.resolve().name) or "study"
    files = {
        "params.yaml": PARAMS_TEMPLATE.format(run_name=run_name,
                                              best_rule="train_and_external_auc" if external else "train_auc"),
        "manifest_template.csv": _csv_text([[c for c, _, _ in COLUMNS],
                                            [_EXAMPLE.get(c, "") for c, _, _ in COLUMNS]]),
        "MANIFEST.md": columns_markdown(),
        "README.md": README_TEMPLATE.format(name=folder.resolve().name, run_name=run_name),
    }
    existing = [name for name in files if (folder / name).exists()]
    if existing and not force:
        raise DlrcError(f"{folder}: {', '.join(existing)} already there; nothing was written (--force overwrites)")
    written = []
    for name, text in files.items():
        atomic_write_text(folder / name, text)
        written.append(folder / name)
    return written
