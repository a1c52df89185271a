"""Radiomics feature extraction with PyRadiomics: parallel, cached, and without silent losses.

One *case* is one patient x sequence x mask (reader 1, reader 2 or the reader-1 repeat).
:func:`extract_radiomics` runs PyRadiomics on every case of a study with the settings file
named in the parameters (``radiomics.settings``):

* **Cache.** Each case is stored in a :class:`~dlrc_lib.features.store.FeatureStore` under a key
  made of the SHA-256 of the image bytes, the mask bytes, the settings and the PyRadiomics
  version. A re-run computes only what is missing; an interrupted run (Ctrl-C, kill) resumes.
* **Parallel.** Cases run in a local process pool (``radiomics.n_jobs``; 0 = all cores), or
  on a Dask distributed cluster when ``radiomics.dask_scheduler`` holds the scheduler
  address (``tcp://host:8786``): the same parameter file then scales out to a site's cluster
  by changing that one line (workers need this package installed and the image paths
  readable). A progress bar shows patients per second and the time left.
* **Failures isolated.** A case that cannot be extracted (unreadable file, mask outside the
  image, mask too small, ...) becomes a row of the failures table (patient, sequence, mask,
  file, reason); the run goes on, and the patient is left out of the feature table
  (:attr:`RadiomicsResult.lost` says who and why).
* **No silent losses.** PyRadiomics drops a filter with only a log message when one of its
  optional dependencies is missing (LBP3D: trimesh and ``scipy.special.sph_harm``; LBP2D:
  scikit-image) or when a LoG sigma does not fit the image. The dependencies are checked
  before the run, and every extracted case is checked to contain features of every
  configured image type and feature class.

Feature columns are named ``<SEQ>_<pyradiomics name>`` (``CET1_wavelet-HLH_gldm_SmallDependenceEmphasis``);
PyRadiomics' ``diagnostics_*`` entries are kept in a separate table.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.io import read_yaml_mapping
from dlrc_lib.core.machine import cores_available
from dlrc_lib.core.processes import dask_client, dask_worker_setup, worker_pool
from dlrc_lib.core.progress import progress_bar
from dlrc_lib.features.store import FeatureStore, file_digest
from dlrc_lib.study.images import read_image, read_mask
from dlrc_lib.study.schema import MASK_ROLES, radiomics_feature_name
from dlrc_lib.study.validate import verify_digests

NAMESPACE = "radiomics"

#: mask role -> manifest column prefix (``<prefix><SEQ>``)
MASK_COLUMNS = {r.name: r.prefix for r in MASK_ROLES}

#: PyRadiomics image type -> prefix of the names of the images it yields
IMAGE_TYPE_PREFIX = {
    "Original": "original",
    "Wavelet": "wavelet-",
    "LoG": "log-sigma-",
    "Square": "square",
    "SquareRoot": "squareroot",
    "Logarithm": "logarithm",
    "Exponential": "exponential",
    "Gradient": "gradient",
    "LBP2D": "lbp-2D",
    "LBP3D": "lbp-3D-",
}

#: Optional imports each filter needs; PyRadiomics silently skips the filter without them.
FILTER_DEPENDENCIES: dict[str, list[tuple[str, str]]] = {
    "Wavelet": [("pywt", "PyWavelets")],
    "LBP2D": [("skimage.feature", "scikit-image")],
    "LBP3D": [
        ("scipy.stats:kurtosis", "SciPy"),
        ("scipy.ndimage.interpolation:map_coordinates", "SciPy < 1.17"),
        ("scipy.special:sph_harm", "SciPy < 1.17 (sph_harm was removed in 1.17)"),
        ("trimesh.creation:icosphere", "trimesh"),
    ],
}

_ALL_CLASSES = ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")


# ------------------------------------------------------------------------- settings
def load_settings(path: str | os.PathLike) -> dict:
    """Read a PyRadiomics parameter file (YAML) into a dict, validated by PyRadiomics."""
    p = Path(path)
    settings = read_yaml_mapping(p, "radiomics settings", DlrcError)
    try:
        from radiomics import featureextractor

        _quiet_pyradiomics()
        featureextractor.RadiomicsFeatureExtractor(settings)
    except Exception as exc:  # pykwalify schema errors and the like
        raise DlrcError(f"{p}: not a valid PyRadiomics parameter file ({_first_line(exc)})") from None
    return settings


def with_mask_label(settings: Mapping, mask_label: int | None) -> dict:
    """The settings with PyRadiomics' ``label`` set to ``mask_label`` (unchanged when None)."""
    if mask_label is None:
        return dict(settings)
    return {**settings, "setting": {**(settings.get("setting") or {}), "label": int(mask_label)}}


def settings_json(settings: Mapping) -> str:
    """Canonical JSON of the settings (part of every cache key)."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)


def pyradiomics_version() -> str:
    import radiomics

    return str(radiomics.__version__)


def configured_groups(settings: Mapping) -> tuple[list[str], list[str]]:
    """(image types, feature classes) that the settings enable, as PyRadiomics reads them."""
    image_types = list((settings.get("imageType") or {"Original": {}}).keys())
    classes = settings.get("featureClass")
    classes = list(classes.keys()) if classes else list(_ALL_CLASSES)
    return image_types, classes


def expected_image_names(settings: Mapping) -> dict[str, list[str]]:
    """Image type -> the image names (feature-name prefixes) that must appear, where the
    settings determine them (LoG: one per sigma); else the prefix to match."""
    out: dict[str, list[str]] = {}
    image_types, _ = configured_groups(settings)
    for it in image_types:
        opts = (settings.get("imageType") or {}).get(it) or {}
        if it == "LoG":
            sigmas = opts.get("sigma") or (settings.get("setting") or {}).get("sigma") or []
            out[it] = [f"log-sigma-{str(float(s)).replace('.', '-')}-mm-3D" for s in sigmas]
        else:
            if it not in IMAGE_TYPE_PREFIX:
                raise DlrcError(f"radiomics settings: image type {it!r} is not known to this check")
            out[it] = [IMAGE_TYPE_PREFIX[it]]
    return out


def check_dependencies(settings: Mapping) -> None:
    """Fail before any extraction if a configured filter's optional dependency is missing
    (PyRadiomics would only log a warning and drop that filter's features)."""
    import importlib

    image_types, _ = configured_groups(settings)
    problems = []
    for it in image_types:
        for spec, package in FILTER_DEPENDENCIES.get(it, []):
            module, _, attr = spec.partition(":")
            try:
                mod = importlib.import_module(module)
                if attr:
                    getattr(mod, attr)
            except (ImportError, AttributeError):
                problems.append(f"image type {it} needs {spec.replace(':', '.')} ({package})")
    if problems:
        raise DlrcError(
            "radiomics: " + "; ".join(problems)
            + " - PyRadiomics would silently drop these features; install the missing packages "
            "(see requirements.txt) or remove the image type from the settings file"
        )


def missing_groups(feature_names: Iterable[str], settings: Mapping) -> list[str]:
    """Configured (image type, feature class) groups without any feature in ``feature_names``.

    Returns readable descriptions such as ``"LBP3D (lbp-3D-*)"`` or ``"log-sigma-5-0-mm-3D/glcm"``;
    empty when everything configured was produced.
    """
    names = list(feature_names)
    _, classes = configured_groups(settings)
    by_image: dict[str, set[str]] = {}
    for n in names:
        parts = n.split("_", 2)
        if len(parts) == 3:
            by_image.setdefault(parts[0], set()).add(parts[1])
    missing = []
    for it, expected in expected_image_names(settings).items():
        if it == "LoG":
            matched = [e for e in expected if e in by_image]
            missing += [f"{it} ({e})" for e in expected if e not in by_image]
        else:
            p = expected[0]
            matched = sorted(img for img in by_image if (img.startswith(p) if p.endswith("-") else img == p))
            if not matched:
                missing.append(f"{it} ({p}{'*' if p.endswith('-') else ''})")
        for img in matched:
            for cls in classes:
                if cls.startswith("shape") and (img != "original" or cls != "shape"):
                    continue  # shape: original image only; shape2D needs force2D
                if cls not in by_image.get(img, set()):
                    missing.append(f"{img}/{cls}")
    return missing


# --------------------------------------------------------------------------- worker
_EXTRACTORS: dict[str, Any] = {}


def _quiet_pyradiomics() -> None:
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="skimage")
    warnings.filterwarnings("ignore", category=UserWarning, message=".*local_binary_pattern.*")


def _first_line(exc: BaseException) -> str:
    """A short, one-line description of an exception (ITK's source locations removed)."""
    import re

    text = str(exc).strip()
    m = re.search(r"(?:sitk::ERROR|itk::ERROR|Description):\s*(.+)", text)
    if m:
        text = m.group(1)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    msg = lines[0] if lines else exc.__class__.__name__
    if isinstance(exc, FileNotFoundError) and getattr(exc, "filename", None):
        msg = f"{exc.filename}"
    return msg.rstrip(":")[:300]


def _classify(exc: BaseException, image: str, mask: str) -> str:
    low = str(exc).lower()
    if "itk::error" in low or "sitk::error" in low or "imageio" in low or ("read" in low and "error" in low):
        return f"unreadable image or mask data: {_first_line(exc)}"
    if "geometry mismatch" in low or "larger than image space" in low or "size mismatch" in low:
        return f"mask does not fit the image: {_first_line(exc)}"
    if "too small" in low or "too few dimensions" in low or "single voxel" in low or "1 segmented voxel" in low:
        return f"mask too small: {_first_line(exc)}"
    if "no labels found" in low:
        return f"mask empty: {_first_line(exc)}"
    if "not present in mask" in low:
        return (f"mask without the tumour's label: {_first_line(exc)} (the label extracted is study.mask_label in "
                "the parameter file)")
    return f"extraction failed: {_first_line(exc)}"


def _jsonable_diag(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _jsonable_diag(value.item())
    return str(value)


def extract_case(image: str, mask: str, settings_text: str) -> dict:
    """Run PyRadiomics on one image/mask pair (runs inside a worker process).

    Returns ``{"ok": True, "features": {...}, "diagnostics": {...}, "seconds": t}`` or
    ``{"ok": False, "reason": "..."}``; never raises for a bad case.
    """
    t0 = time.perf_counter()
    c0 = time.process_time()
    try:
        from radiomics import featureextractor

        _quiet_pyradiomics()
        extractor = _EXTRACTORS.get(settings_text)
        if extractor is None:
            extractor = featureextractor.RadiomicsFeatureExtractor(json.loads(settings_text))
            _EXTRACTORS.clear()
            _EXTRACTORS[settings_text] = extractor
        read: dict[str, Any] = {}
        for path, what in ((image, "image"), (mask, "mask")):
            if not Path(path).exists():
                return {"ok": False, "file": str(path), "seconds": time.perf_counter() - t0,
                        "reason": f"{what} file not found"}
            try:  # a file, or a DICOM series folder; a mask on its image's grid (a DICOM-SEG placed there)
                read[what] = read_image(path) if what == "image" else read_mask(path, read["image"])
            except Exception as exc:
                return {"ok": False, "file": str(path), "seconds": time.perf_counter() - t0,
                        "reason": f"unreadable {what} file: {_first_line(exc)}"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = extractor.execute(read["image"], read["mask"])
    except Exception as exc:  # a bad case is data, not a crash
        reason = _classify(exc, image, mask)
        return {"ok": False, "reason": reason, "seconds": time.perf_counter() - t0,
                "file": str(mask) if reason.startswith("mask") else str(image)}
    features: dict[str, float] = {}
    diagnostics: dict[str, Any] = {}
    for name, value in result.items():
        if name.startswith("diagnostics_"):
            diagnostics[name] = _jsonable_diag(value)
        else:
            features[name] = float(value)
    return {"ok": True, "features": features, "diagnostics": diagnostics,
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}


def _display_path(path: str) -> str:
    """A path as shown in tables: relative to the working directory when inside it."""
    try:
        p = Path(path).resolve()
        return str(p.relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


# ----------------------------------------------------------------------------- cases
def study_cases(study: pd.DataFrame, sequences: Sequence[str],
                masks: Sequence[str] = ("reader1",)) -> pd.DataFrame:
    """One row per case: patient_id, sequence, mask, image, mask_file (absolute paths).

    Reader-2 and repeat masks exist only for the reproducibility subset; other patients
    have no case for them. A file whose bytes differ from the SHA-256 recorded by validation
    (``sha256_<column>``) is refused (:class:`DlrcError` naming every such file).
    """
    if "patient_id" not in study.columns:
        raise DlrcError("study table: column 'patient_id' missing")
    # a file changed since validation (its SHA-256 recorded in the study table) is refused
    verify_digests(study, [c for role in masks if role in MASK_COLUMNS for seq in sequences
                           for c in (f"image_{seq}", f"{MASK_COLUMNS[role]}{seq}")])
    rows = []
    for role in masks:
        if role not in MASK_COLUMNS:
            raise DlrcError(f"radiomics: unknown mask {role!r} (one of {', '.join(MASK_COLUMNS)})")
        for seq in sequences:
            for col in (f"image_{seq}", f"{MASK_COLUMNS[role]}{seq}"):
                if col not in study.columns:
                    raise DlrcError(f"study table: column '{col}' missing (needed for {role} radiomics of {seq})")
            for pid, img, msk in zip(study["patient_id"], study[f"image_{seq}"], study[f"{MASK_COLUMNS[role]}{seq}"]):
                if role != "reader1" and (msk is None or (isinstance(msk, float) and math.isnan(msk)) or msk == ""):
                    continue
                rows.append({"patient_id": str(pid), "sequence": seq, "mask": role,
                             "image": "" if pd.isna(img) else str(img),
                             "mask_file": "" if pd.isna(msk) else str(msk)})
    return pd.DataFrame(rows, columns=["patient_id", "sequence", "mask", "image", "mask_file"])


# ---------------------------------------------------------------------------- result
@dataclass
class RadiomicsResult:
    """What :func:`extract_radiomics` returns.

    Attributes
    ----------
    features : DataFrame
        Reader-1 features, index ``patient_id``, columns ``<SEQ>_<name>``; only patients whose
        every sequence was extracted (the others are in :attr:`lost`).
    by_mask : dict
        Mask role -> feature table of that role (``"reader1"`` is :attr:`features`).
    diagnostics : DataFrame
        PyRadiomics diagnostics of the reader-1 cases, columns ``<SEQ>_diagnostics_*``.
    failures : DataFrame
        patient_id, sequence, mask, file, reason: every case that could not be extracted.
    cases : DataFrame
        Every case with its cache key, status (``cached``, ``computed``, ``failed``) and
        extraction time (``seconds`` wall clock, ``cpu_seconds`` of its worker).
    """

    features: pd.DataFrame
    by_mask: dict[str, pd.DataFrame]
    diagnostics: pd.DataFrame
    failures: pd.DataFrame
    cases: pd.DataFrame
    wall_seconds: float = 0.0
    settings_file: str = ""
    n_workers: int = 1

    @property
    def lost(self) -> pd.DataFrame:
        """Reader-1 patients left out of :attr:`features`, with the reasons (one row each)."""
        f = self.failures[self.failures["mask"] == "reader1"]
        if f.empty:
            return pd.DataFrame(columns=["patient_id", "reason"])
        g = f.groupby("patient_id", sort=True).apply(
            lambda d: "; ".join(f"{s}: {r}" for s, r in zip(d["sequence"], d["reason"])), include_groups=False)
        return g.rename("reason").reset_index()

    def loss_statement(self, mask: str = "reader1") -> str | None:
        """One sentence on the patients without features and why (None when nobody was lost),
        e.g. ``"5 of 54 patients have no radiomics features (reader1 masks): mask too small (5)"``."""
        f = self.failures[self.failures["mask"] == mask]
        if f.empty:
            return None
        n_all = self.cases.loc[self.cases["mask"] == mask, "patient_id"].nunique()
        first = f.drop_duplicates("patient_id")  # one reason per patient: its first failed case
        kinds = first["reason"].str.split(":", n=1).str[0].value_counts()
        why = ", ".join(f"{k} ({v})" for k, v in kinds.items())
        return (f"{first['patient_id'].nunique()} of {n_all} patients have no radiomics features "
                f"({mask} masks): {why}")

    def summary(self) -> pd.DataFrame:
        """Counts per mask role: cases, extracted, failed, patients, features per patient.

        Only what the inputs determine: a cold and a warm run give the same table. How many
        cases came from the cache is in :meth:`cache_summary`.
        """
        rows = []
        for role, d in self.cases.groupby("mask", sort=False):
            feats = self.by_mask.get(role)
            rows.append({
                "mask": role,
                "cases": len(d),
                "extracted": int(d["status"].isin(["cached", "computed"]).sum()),
                "failed": int((d["status"] == "failed").sum()),
                "patients": 0 if feats is None else len(feats),
                "features_per_patient": 0 if feats is None else feats.shape[1],
            })
        return pd.DataFrame(rows)

    def cache_summary(self) -> dict:
        """Run provenance: cases read from the cache and computed, per mask role; seconds, workers."""
        by_mask = {
            role: {"cached": int((d["status"] == "cached").sum()),
                   "computed": int((d["status"] == "computed").sum())}
            for role, d in self.cases.groupby("mask", sort=False)
        }
        return {"by_mask": by_mask, "wall_seconds": round(float(self.wall_seconds), 2),
                "workers": int(self.n_workers)}

    def cache_line(self) -> str:
        """One line: seconds, workers, and per mask role the cases cached and computed."""
        per = "; ".join(f"{m}: {c['cached']} cached, {c['computed']} computed"
                        for m, c in self.cache_summary()["by_mask"].items())
        return f"{self.wall_seconds:.0f} s on {self.n_workers} workers; {per}"


# -------------------------------------------------------------------------- executors
def _n_workers(n_jobs: int) -> int:
    if n_jobs and n_jobs > 0:
        return int(n_jobs)
    return cores_available()


def _worker_init() -> None:
    """Worker processes: quiet PyRadiomics, and one thread per process (the pool already
    uses every core; ITK's own threads would only compete with the other workers)."""
    import SimpleITK as sitk

    _quiet_pyradiomics()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def _dask_worker_init(dask_worker=None) -> None:
    """:func:`_worker_init` on a Dask worker, plus
    :func:`~dlrc_lib.core.processes.dask_worker_setup`: the nanny's malloc setting undone
    (with it every case costs a third more CPU in page faults) and the worker's statistical
    profiler stopped."""
    _worker_init()
    dask_worker_setup(dask_worker)


def _run_local(jobs: list[tuple[str, str, str]], n_workers: int,
               on_done: Callable[[int, dict], None]) -> None:
    if n_workers <= 1:
        for i, job in enumerate(jobs):
            on_done(i, extract_case(*job))
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, wait

    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    pool = worker_pool(n_workers, mp_context=ctx, initializer=_worker_init)
    try:
        # keep a bounded number of cases in flight so that results stream back in order
        pending: dict[Any, int] = {}
        it = iter(enumerate(jobs))
        limit = 2 * n_workers
        for _ in range(limit):
            nxt = next(it, None)
            if nxt is None:
                break
            pending[pool.submit(extract_case, *nxt[1])] = nxt[0]
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                on_done(i, fut.result())
                nxt = next(it, None)
                if nxt is not None:
                    pending[pool.submit(extract_case, *nxt[1])] = nxt[0]
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        raise
    pool.shutdown(wait=True)


def _run_dask(jobs: list[tuple[str, str, str]], address: str,
              on_done: Callable[[int, dict], None], timeout_s: float = 20.0) -> int:
    client = dask_client(address, timeout_s)  # a one-line error if Dask is missing or silent
    from dask.distributed import as_completed
    try:
        n = max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))
        # Dask workers are not the local pool's processes: without this each case's SimpleITK
        # filters use as many threads as the machine has cores, inside every worker process
        # (2 workers x 2 ITK threads on 2 cores), PyRadiomics logs every step and the worker's
        # profiler interrupts the case every 10 ms. Set them up as the pool's workers, once.
        client.run(_dask_worker_init)
        futures = client.map(extract_case, *zip(*jobs), pure=False) if jobs else []
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in as_completed(futures):
            on_done(index[fut.key], fut.result())
            fut.release()
        return n
    finally:
        client.close()


# ------------------------------------------------------------------------------ main
def _case_keys(cases: pd.DataFrame, s_text: str, version: str) -> tuple[list, dict[int, str], dict[int, str]]:
    """The feature-store key of every case (image and mask bytes, settings, PyRadiomics
    version); a case whose file is missing gets no key and a failure reason and file."""
    keys: list[str | None] = []
    failed_reason: dict[int, str] = {}
    failed_file: dict[int, str] = {}
    for i, row in enumerate(cases.itertuples(index=False)):
        try:
            if not row.image:
                raise FileNotFoundError(f"patient {row.patient_id}: no image_{row.sequence} given")
            if not row.mask_file:
                raise FileNotFoundError(f"patient {row.patient_id}: no {row.mask} mask of {row.sequence} given")
            keys.append(FeatureStore.make_key(file_digest(row.image), file_digest(row.mask_file), s_text, version))
        except (FileNotFoundError, OSError) as exc:
            keys.append(None)
            failed_reason[i] = f"{'image' if not row.image or str(getattr(exc, 'filename', '')) == row.image else 'mask'} file not found"
            failed_file[i] = getattr(exc, "filename", None) or (row.mask_file if row.image else row.image)
    return keys, failed_reason, failed_file


def _features_by_mask(cases: pd.DataFrame, store: FeatureStore, failures: pd.DataFrame, masks: Sequence[str],
                      sequences: Sequence[str]) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Per mask role, the patients x ``<SEQ>_<feature>`` frame of the patients whose every
    sequence has features; for reader 1 also PyRadiomics' diagnostics."""
    by_mask: dict[str, pd.DataFrame] = {}
    diagnostics = pd.DataFrame()
    ok = cases[cases["status"].isin(["cached", "computed"])]
    all_keys = list(dict.fromkeys(ok["key"]))
    table = store.get(all_keys)
    meta = store.get_meta(all_keys) if "reader1" in masks else None
    for role in masks:
        sub_cases = cases[cases["mask"] == role]
        wanted = list(dict.fromkeys(sub_cases["patient_id"]))
        bad = set(failures.loc[failures["mask"] == role, "patient_id"])
        keep = [p for p in wanted if p not in bad]
        parts = []
        diag_parts = []
        for seq in sequences:
            c = sub_cases[(sub_cases["sequence"] == seq) & sub_cases["patient_id"].isin(keep)]
            block = table.loc[c["key"]] if len(c) else pd.DataFrame()
            block.index = pd.Index(c["patient_id"].to_numpy(), name="patient_id")
            block.columns = [radiomics_feature_name(seq, n) for n in block.columns]
            parts.append(block)
            if role == "reader1" and meta is not None and len(c):
                d = pd.DataFrame.from_records(
                    [m if isinstance(m, dict) else {} for m in meta.loc[c["key"], "diagnostics"]],
                    index=pd.Index(c["patient_id"].to_numpy(), name="patient_id"))
                d.columns = [radiomics_feature_name(seq, n) for n in d.columns]
                diag_parts.append(d)
        frame = pd.concat(parts, axis=1) if parts else pd.DataFrame()
        frame.index.name = "patient_id"
        by_mask[role] = frame.reindex(keep)
        if role == "reader1":
            diagnostics = pd.concat(diag_parts, axis=1).reindex(keep) if diag_parts else pd.DataFrame()
    return by_mask, diagnostics


def _share_outcomes(todo: list[int], keys: list, first_of_key: dict[str, int], status: list[str],
                    failed_reason: dict[int, str], failed_file: dict[int, str]) -> None:
    """Copies of a computed key (the same image and mask bytes) share its outcome."""
    for i in todo:
        j = first_of_key[keys[i]]
        if j != i:
            status[i] = "cached" if status[j] == "computed" else status[j]
            if j in failed_reason:
                failed_reason[i] = failed_reason[j]
                failed_file[i] = failed_file.get(j, "")


def _failures_table(cases: pd.DataFrame, failed_reason: dict[int, str], failed_file: dict[int, str],
                    rank: dict[str, int]) -> pd.DataFrame:
    """One row per failed case (patient order): patient_id, sequence, mask, file, reason."""
    fail_rows = [
        {"patient_id": cases.at[i, "patient_id"], "sequence": cases.at[i, "sequence"],
         "mask": cases.at[i, "mask"],
         "file": _display_path(failed_file.get(i, cases.at[i, "image"])),
         "reason": failed_reason[i]}
        for i in sorted(failed_reason, key=lambda t: (rank[cases.at[t, "patient_id"]], t))
    ]
    return pd.DataFrame(fail_rows, columns=["patient_id", "sequence", "mask", "file", "reason"])


def extract_radiomics(
    study: pd.DataFrame,
    settings_file: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    sequences: Sequence[str] = ("CET1", "DWI", "T2FS"),
    masks: Sequence[str] = ("reader1",),
    n_jobs: int = 0,
    dask_scheduler: str | None = None,
    dask_timeout_s: float = 20.0,
    progress: bool = True,
    mask_label: int | None = None,
) -> RadiomicsResult:
    """Extract (or fetch from the cache) the radiomics features of every case of a study.

    Parameters
    ----------
    study : DataFrame
        The study table (:func:`dlrc_lib.study.manifest.load_study`): ``patient_id``, ``image_<SEQ>``,
        ``mask_<SEQ>`` and for the reproducibility subset ``mask_r2_<SEQ>``, ``mask_rep_<SEQ>``.
    settings_file : path
        PyRadiomics parameter file (``params/radiomics.yaml``).
    cache_dir : path
        The run's cache folder; features go to ``<cache_dir>/features/radiomics``.
    masks : roles among ``"reader1"``, ``"reader2"``, ``"repeat"``.
    n_jobs : local worker processes (0: all cores); ignored when ``dask_scheduler`` is set.
    dask_scheduler : address of a Dask distributed scheduler to run the cases on.
    dask_timeout_s : how long to wait for the scheduler to answer.
    mask_label : the tumour's voxel value in the masks (``study.mask_label``); given, it is
        the PyRadiomics ``label`` setting whatever the settings file says.

    Raises
    ------
    DlrcError
        A configured filter cannot run here (missing dependency), or PyRadiomics produced
        no features of a configured image type/feature class in every computed case.
    """
    t_start = time.perf_counter()
    settings = with_mask_label(load_settings(settings_file), mask_label)
    check_dependencies(settings)
    s_text = settings_json(settings)
    store = FeatureStore(Path(cache_dir) / "features", NAMESPACE)
    cases = study_cases(study, sequences, masks)
    keys, failed_reason, failed_file = _case_keys(cases, s_text, pyradiomics_version())
    cases["key"] = keys
    plan = _plan(cases, keys, store)
    collect = _Collector(cases, keys, store, settings, plan, failed_reason, failed_file, progress)
    jobs = [(cases.at[i, "image"], cases.at[i, "mask_file"], s_text) for i in plan.jobs]
    try:
        if dask_scheduler:
            n_workers = _run_dask(jobs, dask_scheduler, collect, dask_timeout_s)
        else:
            n_workers = _n_workers(n_jobs)
            _run_local(jobs, min(n_workers, max(1, len(jobs))), collect)
    finally:
        collect.close()
        store.compact()

    _share_outcomes(plan.todo, keys, plan.first_of_key, plan.status, failed_reason, failed_file)
    _refuse_all_incomplete(collect.incomplete, plan, settings_file)
    cases["status"] = plan.status
    cases["seconds"] = np.round(collect.seconds, 3)
    cases["cpu_seconds"] = np.round(collect.cpu_seconds, 3)
    failures = _failures_table(cases, failed_reason, failed_file, plan.rank)
    by_mask, diagnostics = _features_by_mask(cases, store, failures, masks, sequences)
    return RadiomicsResult(features=by_mask.get("reader1", pd.DataFrame()), by_mask=by_mask,
                           diagnostics=diagnostics, failures=failures, cases=cases,
                           wall_seconds=time.perf_counter() - t_start, settings_file=str(settings_file),
                           n_workers=n_workers)


@dataclass
class _Plan:
    """What :func:`extract_radiomics` computes: ``todo`` = the cases not in the store,
    ``jobs`` = one case per distinct key among them (patient by patient, so that the bar
    advances and a kill loses little as patients finish), ``status`` per case."""

    todo: list[int]
    jobs: list[int]
    first_of_key: dict[str, int]
    status: list[str]
    rank: dict[str, int]


def _plan(cases: pd.DataFrame, keys: list, store: FeatureStore) -> _Plan:
    missing = set(store.missing([k for k in keys if k is not None]))
    todo = [i for i, k in enumerate(keys) if k is not None and k in missing]
    rank = {p: r for r, p in enumerate(dict.fromkeys(cases["patient_id"]))}
    first_of_key: dict[str, int] = {}  # the same image/mask bytes (e.g. duplicate rows) are computed once
    jobs: list[int] = []
    for i in sorted(todo, key=lambda t: (rank[cases.at[t, "patient_id"]], t)):
        if keys[i] not in first_of_key:
            first_of_key[keys[i]] = i
            jobs.append(i)
    status = ["cached" if (k is not None and k not in missing) else "failed" if k is None else "pending"
              for k in keys]
    return _Plan(todo, jobs, first_of_key, status, rank)


class _Collector:
    """Called with each finished job: stores a complete result, records a failure (or a result
    missing a configured image type / feature class), and advances the patients' bar."""

    def __init__(self, cases: pd.DataFrame, keys: list, store: FeatureStore, settings: Mapping, plan: _Plan,
                 failed_reason: dict[int, str], failed_file: dict[int, str], progress: bool):
        self.cases, self.keys, self.store, self.settings, self.plan = cases, keys, store, settings, plan
        self.failed_reason, self.failed_file = failed_reason, failed_file
        self.seconds = [0.0] * len(keys)
        self.cpu_seconds = [0.0] * len(keys)
        self.incomplete: dict[int, list[str]] = {}
        self.n_computed = 0
        self.patients_left: dict[str, int] = {}
        for i in plan.jobs:
            pid = cases.at[i, "patient_id"]
            self.patients_left[pid] = self.patients_left.get(pid, 0) + 1
        self.bar = None
        if progress and plan.jobs:
            self.bar = progress_bar(
                total=len(self.patients_left), unit="patient", desc="radiomics", smoothing=0.1,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} patients [{elapsed}<{remaining}, {rate_fmt}{postfix}]")

    def __call__(self, j: int, res: dict) -> None:
        i = self.plan.jobs[j]
        status = self.plan.status
        self.seconds[i] = float(res.get("seconds", 0.0))
        self.cpu_seconds[i] = float(res.get("cpu_seconds", 0.0))
        if res["ok"]:
            lost = missing_groups(res["features"].keys(), self.settings)
            if lost:
                self.incomplete[i] = lost
                status[i] = "failed"
                self.failed_reason[i] = ("PyRadiomics produced no features for " + ", ".join(lost[:6])
                                         + (f" and {len(lost) - 6} more" if len(lost) > 6 else ""))
            else:
                self.store.put(self.keys[i], res["features"], {"diagnostics": res["diagnostics"],
                                                               "seconds": round(self.seconds[i], 3)})
                status[i] = "computed"
                self.n_computed += 1
        else:
            status[i] = "failed"
            self.failed_reason[i] = res["reason"]
            self.failed_file[i] = res.get("file", self.cases.at[i, "image"])
        pid = self.cases.at[i, "patient_id"]
        self.patients_left[pid] -= 1
        if self.bar is not None:
            if self.patients_left[pid] == 0:
                self.bar.update(1)
            self.bar.set_postfix_str(f"{self.n_computed} cases done, {sum(s == 'failed' for s in status)} failed",
                                     refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _refuse_all_incomplete(incomplete: dict[int, list[str]], plan: _Plan, settings_file) -> None:
    """Every computed case lacks a configured group: the environment or settings are wrong."""
    computed_or_incomplete = [i for i in plan.jobs if plan.status[i] == "computed" or i in incomplete]
    if incomplete and len(incomplete) == len(computed_or_incomplete):
        groups = sorted({g for v in incomplete.values() for g in v})
        raise DlrcError(
            f"radiomics: no case produced features for {', '.join(groups[:8])}"
            f"{' ...' if len(groups) > 8 else ''} (settings {settings_file}). PyRadiomics drops a "
            "filter with only a log warning when a dependency is missing or the image is too small "
            "for it; fix the environment or the settings")


def feature_groups(columns: Iterable[str]) -> pd.DataFrame:
    """Split ``<SEQ>_<image>_<class>_<feature>`` names into their parts (one row each)."""
    rows = []
    for c in columns:
        seq, image, cls, name = (c.split("_", 3) + ["", "", ""])[:4]
        image_type = next((k for k, v in IMAGE_TYPE_PREFIX.items() if image == v or (v.endswith("-") and image.startswith(v))),
                          image)
        rows.append({"feature": c, "sequence": seq, "image": image, "image_type": image_type,
                     "feature_class": cls, "name": name})
    return pd.DataFrame(rows, columns=["feature", "sequence", "image", "image_type", "feature_class", "name"])
