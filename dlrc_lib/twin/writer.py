"""Write the twin study to disk: manifest.csv, NIfTI images and masks, study.json, README.

Layout of a generated study::

    manifest.csv                  one row per patient (paths relative to this file)
    study.json                    generator version, seed, parameters (written last)
    README.md                     what the data are: simulated to match published summaries
    patients/P0001/CET1.nii.gz    image per sequence (CET1, DWI, T2FS)
    patients/P0001/CET1_mask.nii.gz        reader 1
    patients/P0001/CET1_mask_r2.nii.gz     reader 2 (re-segmented subset only)
    patients/P0001/CET1_mask_rep.nii.gz    reader 1 repeat (re-segmented subset only)

Each file is written under a temporary name and renamed, each patient's folder gets a
``.done`` stamp last, and ``study.json`` is removed when generation starts and written only
once the manifest is complete: a study without ``study.json`` is unfinished (a rerun
regenerates only the patients without a matching stamp).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.io import atomic_write_text, dumps
from dlrc_lib.core.processes import worker_pool
from dlrc_lib.study.schema import ACQUISITION_COLUMNS, COHORTS, READER2_COLUMNS, SEQUENCES, c_lnm_from_short_axis
from dlrc_lib.twin.anatomy import render_patient, scanner_grid
from dlrc_lib.twin.clinical import solve_clinical
from dlrc_lib.twin.nodes import add_nodes, add_second_reader
from dlrc_lib.twin.scanners import SCANNER_BY_NAME, SCANNERS, assign_centres

# 1.3.0: reader 2's node measurements (lnsd_mm_r2, lnld_mm_r2, node_necrosis_r2) and the
# scanners' acquisition columns (Table S1) in the manifest; images and reader 1 unchanged
# 1.4.0: LNM-independent differences between tumours (coarse texture, signal level, ADC) and
# knob values calibrated towards the published results (docs/twin_calibration.md)
# 1.5.0: the LNM-linked texture broadband (texture_octaves) and the knob values of the setting
# broad_amp (texture well above the scanners' noise, signal concentrated in texture and enhancement)
GENERATOR_VERSION = "1.5.0"

# Published numbers the twin is built from: solved to match, so a twin run that shows them
# reproduces nothing (study.json ``built_from``; the verdict marks them ``input``).
BUILT_FROM = {
    "table1.*": "every Table 1 count per cohort x LNM cell and the age quartiles (twin/clinical.py)",
    "table2.*.SRA.*": "node sizes drawn so that SRA gives the published confusion counts (twin/nodes.py)",
    "table5.*.SRA.*": "the same, within the short-axis subgroups",
    "study.*": "centres, scanners, cohort sizes, the re-segmented subset and the Fig. 1 exclusions",
}
# Published results the generator's knobs (``study.signal``, ``study.scanner_effect``) were
# tuned towards with benchmarks/calibrate_twin.py: on a twin run a match shows the calibration
# worked, not that the paper's finding reproduces (study.json ``calibrated_towards``; the
# verdict marks these ``calibrated``, never ``holds``). Keys: published values or claim ids.
CALIBRATED_TOWARDS = {
    "table2.*.radiomics.auc": "radiomics AUC inside the paper's 95 % CI in every cohort, a small training-to-external drop",
    "auc.radiomics.*": "the same, as claims",
    "selected_features.radiomics_count": "5-10 radiomics features after backward AIC",
    "features.radiomics_count": "the same, as a claim",
    "features.radiomics_mix": "a wavelet-dominated selection",
    "table2.*.DLRC.auc": "DLRC AUC inside the paper's 95 % CI in every cohort",
    "auc.DLRC.*": "the same, as claims",
    "dlrc.terms_clnm_rad": "c_LNM and Rad_score retained by backward AIC",
    "calibration_hosmer_lemeshow_p.*": "Hosmer-Lemeshow p > 0.05 for DLRC in every cohort",
    "calibration.hl.*": "the same, as claims",
    "dca.treat.*": "DLRC net benefit above treat-all and treat-none over a wide range of thresholds",
}
COHORT_ORDER = {c: i for i, c in enumerate(COHORTS)}
CLINICAL_COLUMNS = ["patient_id", "centre", "scanner", "cohort", "lnm", "age", "parity", "menopause",
                    "age_at_menopause", "family_history", "figo_stage", "histology", "lnsd_mm",
                    "lnld_mm", "node_necrosis", "c_lnm", "tumour_diameter_mm", *READER2_COLUMNS]
# FIGO 2018 substage -> greatest tumour diameter range (mm)
FIGO_DIAMETER = {"IB1": (8.0, 20.0), "IB2": (20.5, 40.0), "IB3": (40.5, 60.0),
                 "IIA1": (12.0, 40.0), "IIA2": (40.5, 60.0)}


def _published(params) -> dict:
    path = Path(params.published_values)
    if not path.is_file():
        raise DlrcError(f"{path}: published values file not found")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def build_clinical_table(params, published: dict | None = None) -> pd.DataFrame:
    """The twin's clinical and node columns (no image paths), one row per patient."""
    published = published or _published(params)
    st = params.study
    seed = int(params.seed)
    df = solve_clinical(published, scale=st.scale, seed=seed)
    df = add_nodes(df, published, seed=seed, short_axis_mm=params.sra.short_axis_mm,
                   borderline_mm=params.sra.borderline_mm, ratio=params.sra.ratio)
    df = assign_centres(df, published, scale=st.scale, seed=seed, min_batch_size=st.min_batch_size)
    rng = np.random.default_rng([seed, 4])
    key = df["cohort"].map(COHORT_ORDER).to_numpy() * 10 + (df["centre"].map(ord).to_numpy() - 65)
    order = np.lexsort((rng.permutation(len(df)), key))
    df = df.iloc[order].reset_index(drop=True)
    df.insert(0, "patient_id", [f"P{i + 1:04d}" for i in range(len(df))])
    # tumour size: the FIGO substage's range; within it LNM(+) tumours are larger by
    # ``signal.size_within_stage`` (1: Beta(2.6, 1.8) against Beta(2.0, 2.2); 0: no difference)
    s = float(getattr(st.signal, "size_within_stage", 1.0))
    diam = []
    for i, (stage, lnm) in enumerate(zip(df["figo_stage"], df["lnm"])):
        r = np.random.default_rng([seed, i, 5])
        lo, hi = FIGO_DIAMETER[stage]
        u = r.beta(2.0 + 0.6 * s * lnm, 2.2 - 0.4 * s * lnm)
        diam.append(round(lo + (hi - lo) * u, 1))
    df["tumour_diameter_mm"] = diam
    df["c_lnm"] = c_lnm_from_short_axis(df["lnsd_mm"])
    df = add_second_reader(df, seed=seed)
    return df[CLINICAL_COLUMNS]


def icc_subset(df: pd.DataFrame, n: int, seed: int) -> list[str]:
    """Patients re-segmented by reader 2 and by reader 1 again: drawn from the training cohort."""
    rng = np.random.default_rng([seed, 6])
    pool = df.loc[df["cohort"] == "train", "patient_id"].to_numpy()
    if len(pool) < n:
        pool = df["patient_id"].to_numpy()
    return sorted(rng.choice(pool, size=min(n, len(pool)), replace=False).tolist())


def study_fingerprint(params, clinical_only: bool = False) -> dict[str, Any]:
    """What determines the twin's content: generator version, seed and the parameters used."""
    st = params.study.model_dump(mode="json")
    for k in ("source", "manifest", "twin_dir", "n_jobs", "internal_centres", "train_fraction", "exclusions"):
        st.pop(k, None)
    pub = Path(params.published_values)
    scanners = json.dumps([sc.to_dict() for sc in SCANNERS], sort_keys=True).encode()
    return {
        "generator_version": GENERATOR_VERSION,
        # any edit of the scanner table (grids, intensities) regenerates the study
        "scanners_sha256": hashlib.sha256(scanners).hexdigest(),
        "seed": int(params.seed),
        "clinical_only": bool(clinical_only),
        "study": st,
        "sra": params.sra.model_dump(mode="json"),
        "published_values_sha256": hashlib.sha256(pub.read_bytes()).hexdigest() if pub.is_file() else None,
    }


README = """# Synthetic twin study (simulated data)

Every patient, image and mask in this folder is **simulated**. Nothing here comes from a
real person. The data were generated by `dlrc synth` (generator version {version}, seed
{seed}) to match the *published summaries* of the multicentre cervical-cancer study the
project reproduces: the counts of Table 1 in every cohort x LNM cell (exactly at full
scale), the age quartiles, the centres and cohorts, and the confusion counts of the
standardised radiological assessment (SRA) implied by Tables 2 and 5. The images are
MRI-like volumes (CE-T1WI, DWI, FS-T2WI) of a simplified pelvis with a tumour whose size
follows the FIGO stage and whose appearance depends on lymph node status with the effect
sizes given in `study.json`; 12 simulated scanners add their own geometry, intensity scale,
noise and bias field.

Any result obtained on these data says how the *analysis pipeline* behaves, not how the
published model performs on patients.

- `manifest.csv` - one row per patient: {n} patients, paths relative to this folder; besides
  the clinical columns and reader 1's node measurements (`lnsd_mm`, `lnld_mm`,
  `node_necrosis`, the final reading), reader 2's independent ones (`*_r2`) and the
  simulated scanners' acquisition parameters (vendor, model, field strength, TR/TE, slice
  thickness, in-plane resolution, DWI b-values).
- `study.json` - generator version, seed and every parameter used.
- `patients/<id>/` - `<SEQ>.nii.gz` images, `<SEQ>_mask.nii.gz` reader-1 masks and, for the
  {n_icc} re-segmented patients, `<SEQ>_mask_r2.nii.gz` (reader 2) and `<SEQ>_mask_rep.nii.gz`
  (reader 1, repeated).
"""


def _write_nifti(arr: np.ndarray, grid, path: Path, compression: int) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(grid.spacing)
    img.SetOrigin(grid.origin)
    img.SetDirection(grid.direction)
    tmp = path.with_name(f".tmp{os.getpid()}-{path.name}")
    try:
        sitk.WriteImage(img, str(tmp), True, compression)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def acquisition_frame(scanners: pd.Series, shape: tuple[int, int, int],
                      fov_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> pd.DataFrame:
    """The manifest's acquisition columns (Supplementary Table S1) of each patient, from the
    scanner table: vendor, model, field strength, TR/TE per sequence, and the slice thickness
    and in-plane resolution of the grid the images are written on (contiguous slices)."""
    rows = []
    for name in scanners:
        sc = SCANNER_BY_NAME[name]
        rec: dict[str, Any] = {"scanner_vendor": sc.vendor, "scanner_model": sc.model,
                               "field_strength_t": sc.field_t}
        for i, seq in enumerate(SEQUENCES):
            rec[f"tr_ms_{seq}"], rec[f"te_ms_{seq}"] = sc.tr_ms[i], sc.te_ms[i]
        for seq in SEQUENCES:
            sx, sy, sz = scanner_grid(sc, seq, shape, fov_scale).spacing
            rec[f"slice_thickness_mm_{seq}"] = round(sz, 2)
            rec[f"inplane_mm_{seq}"] = f"{round(sx, 2):g}x{round(sy, 2):g}"
        rec["dwi_b_values"] = f"0, {sc.b_value}"
        rows.append(rec)
    return pd.DataFrame(rows, index=scanners.index, columns=list(ACQUISITION_COLUMNS))


def patient_files(pid: str, with_icc: bool) -> dict[str, str]:
    """Manifest path columns of one patient (relative paths)."""
    cols = {}
    for seq in SEQUENCES:
        cols[f"image_{seq}"] = f"patients/{pid}/{seq}.nii.gz"
        cols[f"mask_{seq}"] = f"patients/{pid}/{seq}_mask.nii.gz"
    for seq in SEQUENCES:
        cols[f"mask_r2_{seq}"] = f"patients/{pid}/{seq}_mask_r2.nii.gz" if with_icc else ""
    for seq in SEQUENCES:
        cols[f"mask_rep_{seq}"] = f"patients/{pid}/{seq}_mask_rep.nii.gz" if with_icc else ""
    return cols


def _generate_one(job: tuple) -> str:
    out, index, row, shape, signal, scanner_effect, seed, with_icc, compression, stamp, fov_scale = job
    pid = row["patient_id"]
    folder = Path(out) / "patients" / pid
    done = folder / ".done"
    if done.is_file() and done.read_text(encoding="utf-8") == stamp:
        return pid
    folder.mkdir(parents=True, exist_ok=True)
    done.unlink(missing_ok=True)
    for stale in folder.glob(".tmp*"):  # left by an interrupted run
        stale.unlink(missing_ok=True)
    vols = render_patient(row, SCANNER_BY_NAME[row["scanner"]], shape, signal, scanner_effect,
                          seed, index, with_icc, fov_scale)
    files = patient_files(pid, with_icc)
    for seq, v in vols.items():
        _write_nifti(v["image"], v["grid"], Path(out) / files[f"image_{seq}"], compression)
        _write_nifti(v["masks"]["r1"], v["grid"], Path(out) / files[f"mask_{seq}"], compression)
        if with_icc:
            _write_nifti(v["masks"]["r2"], v["grid"], Path(out) / files[f"mask_r2_{seq}"], compression)
            _write_nifti(v["masks"]["rep"], v["grid"], Path(out) / files[f"mask_rep_{seq}"], compression)
    atomic_write_text(done, stamp)
    return pid


def generate_study(params, out: str | Path | None = None, *, clinical_only: bool = False,
                   progress: bool = True) -> Path:
    """Generate the twin into ``out`` (default ``params.twin_dir``); return the manifest path."""
    from tqdm.auto import tqdm

    out = Path(out) if out is not None else params.twin_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").unlink(missing_ok=True)
    df = build_clinical_table(params)
    st = params.study
    fp = study_fingerprint(params, clinical_only)
    shape = tuple(int(v) for v in st.volume_shape)
    fov_scale = tuple(float(v) for v in st.fov_scale)
    df = pd.concat([df, acquisition_frame(df["scanner"], shape, fov_scale)], axis=1)
    if not clinical_only:
        icc = set(icc_subset(df, st.icc_cases, params.seed))
        stamp = hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()
        jobs = [(str(out), i, row, shape, st.signal, st.scanner_effect, int(params.seed),
                 row["patient_id"] in icc, st.compression_level, stamp, fov_scale)
                for i, row in enumerate(df.to_dict("records"))]
        n_jobs = st.n_jobs or os.cpu_count() or 1
        bar = tqdm(total=len(jobs), desc="synth: patients", unit="patient", disable=not progress)
        t0 = time.perf_counter()
        if n_jobs == 1:
            for job in jobs:
                _generate_one(job)
                bar.update()
        else:
            with worker_pool(n_jobs) as ex:
                for _ in ex.map(_generate_one, jobs, chunksize=4):
                    bar.update()
        bar.close()
        fp["generation_seconds"] = round(time.perf_counter() - t0, 1)
        keep = set(df["patient_id"])
        for folder in (out / "patients").glob("P[0-9][0-9][0-9][0-9]*"):
            if folder.is_dir() and folder.name not in keep:  # from an earlier, larger twin
                shutil.rmtree(folder)
        for pid in df["patient_id"]:  # re-segmentation masks of patients no longer in the subset
            if pid not in icc:
                for f in (out / "patients" / pid).glob("*_mask_r[2e]*.nii.gz"):
                    f.unlink()
        paths = pd.DataFrame([patient_files(pid, pid in icc) for pid in df["patient_id"]])
        df = pd.concat([df, paths], axis=1)
        fp["icc_patients"] = sorted(icc)
        fp["scanners"] = {s.name: {**s.to_dict(), "grids": {q: scanner_grid(s, q, shape, fov_scale).__dict__ for q in SEQUENCES}}
                          for s in SCANNERS}
    atomic_write_text(out / "manifest.csv", df.to_csv(index=False, lineterminator="\n"))
    n_icc = len(fp.get("icc_patients", []))
    atomic_write_text(out / "README.md", README.format(version=GENERATOR_VERSION, seed=params.seed,
                                                       n=len(df), n_icc=n_icc))
    fp["built_from"] = BUILT_FROM
    fp["calibrated_towards"] = CALIBRATED_TOWARDS
    atomic_write_text(out / "study.json", dumps(fp))
    return out / "manifest.csv"
