"""Cached, batched deep-feature extraction for a whole study.

One pass per dimension (2D, 3D): each case (patient x sequence x mask) is read and
cropped once by a background thread pool while the networks run on the previous batch,
and the same batch goes through every model of that dimension that still lacks it. Each
case's 2048 features are stored in the feature store (namespace ``deep-<model>``) under a
key made of the image and mask bytes, the preprocessing settings, the model and the
identity of its weights; a cached case is never recomputed and an interrupted run resumes.
"""
from __future__ import annotations

import json
import time
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from dlrc_lib.core.config import DeepParams
from dlrc_lib.core.errors import DlrcError
from dlrc_lib.core.machine import cores_available as _cpu_count
from dlrc_lib.core.processes import dask_client, dask_worker_setup
from dlrc_lib.core.progress import progress_bar as tqdm
from dlrc_lib.features.deep.networks import (
    DEPTH_KERNEL,
    N_FEATURES,
    Extractor,
    WeightsInfo,
    build_extractor,
    parse_model_name,
    resolve_weights,
)
from dlrc_lib.features.deep.preprocess import (
    PREPROCESS_VERSION,
    crop_2d,
    crop_3d,
    read_case,
    to_network_input,
)
from dlrc_lib.features.deep.store import VectorStore
from dlrc_lib.features.store import FeatureStore, file_digest
from dlrc_lib.study.schema import MASK_ROLES, SEQUENCES, deep_feature_name
from dlrc_lib.study.validate import verify_digests

EXTRACTOR_VERSION = "1"  # bump when the networks' construction changes
RATERS = tuple(r.code for r in MASK_ROLES)  # reader 1, reader 2, reader-1 repeat
_MASK_COLUMN = {r.code: r.prefix + "{seq}" for r in MASK_ROLES}


@dataclass(frozen=True)
class Case:
    """One network input: a patient's sequence with one reader's mask."""

    patient_id: str
    sequence: str
    rater: str
    image: str
    mask: str


def _present(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != "" or isinstance(value, Path)


def study_cases(study: pd.DataFrame, sequences: Sequence[str] = SEQUENCES,
                raters: Sequence[str] = ("r1",)) -> list[Case]:
    """Cases of a study table (one row per patient). Reader-1 masks are required; reader-2
    and repeat masks are taken where present (the reproducibility subset). A file whose
    bytes differ from the SHA-256 recorded by validation is refused."""
    df = study.reset_index() if "patient_id" not in study.columns else study
    verify_digests(df, [c.format(seq=s) for s in sequences for c in
                        ["image_{seq}"] + [_MASK_COLUMN[r] for r in raters]])
    cases = []
    for rater in raters:
        for seq in sequences:
            icol, mcol = f"image_{seq}", _MASK_COLUMN[rater].format(seq=seq)
            for col in (icol, mcol):
                if col not in df.columns:
                    if rater != "r1" and col == mcol:
                        break
                    raise DlrcError(f"study table: column {col} missing (needed for deep features)")
            else:
                for pid, img, msk in zip(df["patient_id"], df[icol], df[mcol]):
                    if not _present(msk) or not _present(img):
                        if rater == "r1":
                            raise DlrcError(f"patient {pid}, column {mcol if not _present(msk) else icol}: path missing")
                        continue
                    cases.append(Case(str(pid), seq, rater, str(img), str(msk)))
    return cases


def preprocessing_settings(deep_params, dim: str) -> dict[str, Any]:
    """The settings that determine a network input (part of the cache key)."""
    s: dict[str, Any] = {"dim": dim, "margin": float(deep_params.margin),
                         "clip": [float(c) for c in deep_params.clip_percentiles],
                         "preprocess": PREPROCESS_VERSION}
    if dim == "2D":
        s["input_size"] = int(deep_params.input_size)
    else:
        s["shape"] = [int(v) for v in deep_params.shape_3d]
        s["depth_kernel"] = DEPTH_KERNEL
    return s


def case_digests(case: Case) -> tuple[str, str]:
    """SHA-256 of the case's image and mask files."""
    try:
        return file_digest(case.image), file_digest(case.mask)
    except FileNotFoundError as exc:
        raise DlrcError(f"patient {case.patient_id}, {exc}") from None


def case_key(case: Case, settings_json: str, model: str, weights: WeightsInfo,
             digests: tuple[str, str] | None = None) -> str:
    di, dm = digests or case_digests(case)
    return FeatureStore.make_key(di, dm, settings_json, f"{model}|{weights.identity}|deep-{EXTRACTOR_VERSION}")


def store_for(cache_dir: str | Path, model: str) -> VectorStore:
    return VectorStore(Path(cache_dir) / "features", namespace=f"deep-{model}", n_features=N_FEATURES)


# -------------------------------------------------------------------- prefetching
def prefetch(fn: Callable[[Any], Any], items: Iterable[Any], workers: int = 1, lookahead: int = 2) -> Iterator[Any]:
    """``map(fn, items)`` computed ``lookahead`` items ahead by a thread pool (in order)."""
    if workers <= 0:
        yield from map(fn, items)
        return
    it = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dlrc-prep") as ex:
        pending = deque(ex.submit(fn, x) for x in islice(it, max(1, lookahead)))
        try:
            while pending:
                fut = pending.popleft()
                nxt = next(it, _END)
                if nxt is not _END:
                    pending.append(ex.submit(fn, nxt))
                yield fut.result()
        finally:
            for fut in pending:
                fut.cancel()


_END = object()


def batch_tensors(cases: Sequence[Case], dims: Sequence[str], deep_params, pin: bool = False) -> dict[str, torch.Tensor]:
    """Read each case once and preprocess it for every dimension in ``dims``:
    ``{dim: (N, 3, ...) float32 tensor}``."""
    arrays: dict[str, list[np.ndarray]] = {d: [] for d in dims}
    for c in cases:
        image, mask, spacing = read_case(c.image, c.mask, c.patient_id)
        for d in dims:
            crop = crop_2d(image, mask, spacing, deep_params.input_size, deep_params.margin,
                           tuple(deep_params.clip_percentiles)) if d == "2D" else \
                crop_3d(image, mask, spacing, tuple(deep_params.shape_3d), deep_params.margin,
                        tuple(deep_params.clip_percentiles))
            arrays[d].append(to_network_input(crop.image))
    out = {d: torch.from_numpy(np.stack(a)) for d, a in arrays.items()}
    return {d: x.pin_memory() for d, x in out.items()} if pin else out


# ---------------------------------------------------------------------- extraction
@dataclass
class ExtractionLog:
    """What one call did: per model, cases computed and cached, seconds of inference."""

    weights: dict[str, WeightsInfo] = field(default_factory=dict)
    computed: dict[str, int] = field(default_factory=dict)
    cached: dict[str, int] = field(default_factory=dict)
    forward_s: dict[str, float] = field(default_factory=dict)
    wall_s: dict[str, float] = field(default_factory=dict)  # seconds of extract_cases calls ("all")
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        """Per model: the weights the features came from (what the inputs determine)."""
        rows = []
        for m in self.computed:
            w = self.weights.get(parse_model_name(m)[0])
            rows.append({"model": m, "weights": w.source if w else "",
                         "cases": self.computed[m] + self.cached[m]})
        return pd.DataFrame(rows)

    def provenance(self) -> dict:
        """Run provenance per model: cases computed and read from the cache, inference seconds."""
        return {m: {"computed": self.computed[m], "cached": self.cached[m],
                    "forward_s": round(self.forward_s.get(m, 0.0), 2)} for m in self.computed}


def extract_cases(cases: Sequence[Case], deep_params, cache_dir: str | Path, seed: int, *,
                  models: Sequence[str] | None = None, warn: Callable[[str], None] | None = None,
                  progress: bool = True, workers: int | None = None,
                  log: ExtractionLog | None = None) -> dict[str, np.ndarray]:
    """Features of ``cases`` for each model: ``{model: (len(cases), 2048) float32}``.

    Cached cases come from the store, the others are computed (and stored) first.
    """
    models = list(models if models is not None else deep_params.models)
    for m in models:
        parse_model_name(m)
    log = log if log is not None else ExtractionLog()
    emit = warn or (lambda msg: warnings.warn(msg, stacklevel=3))
    workers = int(getattr(deep_params, "workers", 1) if workers is None else workers)

    for arch in dict.fromkeys(parse_model_name(m)[0] for m in models):
        if arch not in log.weights:
            info = resolve_weights(arch, deep_params.weights, seed)
            log.weights[arch] = info
            if info.warning:
                log.warnings.append(info.warning)
                emit(info.warning)

    t0 = time.perf_counter()
    keys: dict[str, list[str]] = {}
    stores = {m: store_for(cache_dir, m) for m in models}
    digests = [case_digests(c) for c in cases]
    for dim in ("2D", "3D"):
        settings_json = json.dumps(preprocessing_settings(deep_params, dim), sort_keys=True)
        for m in models:
            if parse_model_name(m)[1] == dim:
                keys[m] = [case_key(c, settings_json, m, log.weights[parse_model_name(m)[0]], d)
                           for c, d in zip(cases, digests)]
    todo: dict[str, list[int]] = {}
    for m in models:
        # cases a killed run stored one file each (its compaction never ran): merge them into
        # the part file once, instead of reading thousands of small files on every run
        stores[m].compact_leftovers()
        missing = set(stores[m].missing(keys[m]))
        todo[m] = [i for i, k in enumerate(keys[m]) if k in missing]
        log.computed[m] = log.computed.get(m, 0) + len(todo[m])
        log.cached[m] = log.cached.get(m, 0) + len(cases) - len(todo[m])
    if any(todo.values()):
        _run_models(cases, todo, keys, stores, deep_params, seed, log, workers, progress, tqdm)
    out: dict[str, np.ndarray] = {}
    for m in models:
        found, arr = stores[m].get_array(keys[m])
        row = {k: i for i, k in enumerate(found)}  # identical inputs share one key
        lost = [c for c, k in zip(cases, keys[m]) if k not in row]
        if lost:
            raise DlrcError(f"patient {lost[0].patient_id}, file {lost[0].image}: {m} features missing "
                            f"from the cache after extraction")
        out[m] = arr[[row[k] for k in keys[m]]] if len(cases) else arr
    log.wall_s["all"] = log.wall_s.get("all", 0.0) + time.perf_counter() - t0
    return out


def cluster_address(deep_params) -> str | None:
    """The Dask scheduler deep features run on: ``deep.dask_scheduler`` (which a parameter
    file that sets only ``radiomics.dask_scheduler`` inherits), None for this machine."""
    address = getattr(deep_params, "dask_scheduler", None)
    return None if not address or address == LOCAL else str(address)


LOCAL = "local"  # deep.dask_scheduler: extract on this machine even when radiomics uses a cluster


def _run_models(cases, todo, keys, stores, deep_params, seed, log, workers, progress, tqdm):
    """One pass over the cases still missing somewhere: each batch is read once, cropped
    for the dimensions that need it, and run through every model that lacks it, here or as
    one task per batch on the Dask cluster of ``deep.dask_scheduler``. The features are
    written to the store here, in either case."""
    todo_sets = {m: set(v) for m, v in todo.items()}
    need = sorted(set().union(*todo_sets.values()))
    bs = int(deep_params.batch_size)
    batches = [need[i:i + bs] for i in range(0, len(need), bs)]
    plans = [(idx, {m: [j for j, i in enumerate(idx) if i in todo_sets[m]] for m in todo}) for idx in batches]
    plans = [(idx, {m: sel for m, sel in plan.items() if sel}) for idx, plan in plans]
    address = cluster_address(deep_params)
    results = (_batches_on_dask(address, cases, plans, deep_params, seed, log) if address else
               _batches_here(cases, plans, deep_params, seed, log, workers))
    written: dict[str, tuple[list[str], list[np.ndarray], list[dict]]] = {m: ([], [], []) for m in todo}
    total = sum(len(v) for v in todo.values())
    try:
        with tqdm(total=total, desc="deep features", unit="img", disable=not progress) as bar:
            for idx, plan, feats_by_model in results:
                for m, feats in feats_by_model.items():
                    for j, f in zip(plan[m], feats):
                        c = cases[idx[j]]
                        meta = {"patient_id": c.patient_id, "sequence": c.sequence, "rater": c.rater, "model": m}
                        key = keys[m][idx[j]]
                        stores[m].put_vector(key, f, meta)
                        written[m][0].append(key)
                        written[m][1].append(f)
                        written[m][2].append(meta)
                    bar.set_postfix_str(m, refresh=False)
                    bar.update(len(plan[m]))
    finally:  # what was computed goes into the compacted part, also after an interruption
        for m, (ks, vs, ms) in written.items():
            if ks:
                stores[m].absorb(ks, np.stack(vs), ms)


def _batches_here(cases, plans, deep_params, seed, log, workers):
    """(batch, plan, {model: features}) per batch, computed in this process; the next batch
    is read and cropped by a background thread while the networks run."""
    extractors: dict[str, Extractor] = {
        m: build_extractor(m, log.weights[parse_model_name(m)[0]], seed, deep_params.device)
        for m in dict.fromkeys(m for _, plan in plans for m in plan)
    }
    pin = any(e.device.type == "cuda" for e in extractors.values())

    def load(item):
        idx, plan = item
        dims = sorted({parse_model_name(m)[1] for m in plan})
        return idx, plan, batch_tensors([cases[i] for i in idx], dims, deep_params, pin)

    for idx, plan, xs in prefetch(load, plans, workers=workers):
        out = {}
        for m, sel in plan.items():
            ext = extractors[m]
            x = xs[ext.dim]
            t = time.perf_counter()
            out[m] = ext.features(x if len(sel) == len(idx) else x[sel]).numpy()
            log.forward_s[m] = log.forward_s.get(m, 0.0) + time.perf_counter() - t
        yield idx, plan, out


# ------------------------------------------------------------------- on a Dask cluster
_WORKER_EXTRACTORS: dict[tuple, Extractor] = {}  # per worker process: each network built once


def _worker_extractor(model: str, weights: WeightsInfo, seed: int, device: str) -> Extractor:
    key = (model, weights.identity, seed, device)
    if key not in _WORKER_EXTRACTORS:
        _WORKER_EXTRACTORS[key] = build_extractor(model, weights, seed, device)
    return _WORKER_EXTRACTORS[key]


def dask_batch(batch: Sequence[Case], plan: Mapping[str, Sequence[int]], deep_fields: Mapping[str, Any],
               weights: Mapping[str, WeightsInfo], seed: int) -> dict[str, tuple[np.ndarray, float]]:
    """One task on a Dask worker: read and crop the batch's cases once, run every model of
    ``plan`` (model -> positions in the batch) on them; ``{model: (features, forward s)}``.
    The networks are built on a worker's first task and kept for the next ones."""
    params = DeepParams(**deep_fields)
    dims = sorted({parse_model_name(m)[1] for m in plan})
    xs = batch_tensors(list(batch), dims, params)
    out = {}
    for m, sel in plan.items():
        ext = _worker_extractor(m, weights[parse_model_name(m)[0]], seed, params.device)
        x = xs[ext.dim]
        t = time.perf_counter()
        feats = ext.features(x if len(sel) == len(batch) else x[list(sel)]).numpy()
        out[m] = (feats, time.perf_counter() - t)
    return out


def _dask_deep_init(threads: Mapping[str, int], dask_worker=None) -> None:
    """On every worker before its first batch: the Dask set-up of the radiomics workers (the
    nanny's malloc setting undone, the profiler stopped) and torch's threads set to the
    worker's share of its host's cores (two workers on 2 cores: one thread each, not two)."""
    dask_worker_setup(dask_worker)
    if dask_worker is not None and dask_worker.address in threads:
        torch.set_num_threads(int(threads[dask_worker.address]))


def worker_threads(client) -> dict[str, int]:
    """Torch threads per worker: its host's cores divided among the worker processes there."""
    workers = client.scheduler_info()["workers"]
    cores = client.run(_cpu_count)
    per_host: dict[str, int] = {}
    for info in workers.values():
        per_host[info.get("host", "")] = per_host.get(info.get("host", ""), 0) + 1
    return {addr: max(1, int(cores.get(addr, 1)) // per_host[info.get("host", "")])
            for addr, info in workers.items()}


DASK_TIMEOUT_S = 20.0  # how long to wait for deep.dask_scheduler to answer


def _batches_on_dask(address, cases, plans, deep_params, seed, log):
    """(batch, plan, {model: features}) per batch as the cluster finishes them: one task per
    batch; the workers must see the manifest's files under the same paths."""
    client = dask_client(address, DASK_TIMEOUT_S, setting="deep.dask_scheduler")
    from dask.distributed import as_completed

    try:
        client.run(_dask_deep_init, worker_threads(client))
        fields = deep_params.model_dump()
        weights = dict(log.weights)
        futures = [client.submit(dask_batch, [cases[i] for i in idx], plan, fields, weights, seed, pure=False)
                   for idx, plan in plans]
        where = {f.key: k for k, f in enumerate(futures)}
        for fut in as_completed(futures):
            idx, plan = plans[where[fut.key]]
            res = fut.result()
            fut.release()
            for m, (_, sec) in res.items():
                log.forward_s[m] = log.forward_s.get(m, 0.0) + sec
            yield idx, plan, {m: feats for m, (feats, _) in res.items()}
    finally:
        client.close()


def features_frame(cases: Sequence[Case], arr: np.ndarray, sequences: Sequence[str] = SEQUENCES) -> pd.DataFrame:
    """``(cases, 2048)`` -> patients x ``<SEQ>_F<i>`` (one rater's cases, patient order kept)."""
    patients = list(dict.fromkeys(c.patient_id for c in cases))
    pos = {p: i for i, p in enumerate(patients)}
    blocks, names = [], []
    for seq in sequences:
        rows = [(pos[c.patient_id], k) for k, c in enumerate(cases) if c.sequence == seq]
        if not rows:
            continue
        block = np.full((len(patients), arr.shape[1]), np.nan, dtype=np.float64)
        for p, k in rows:
            block[p] = arr[k]
        blocks.append(block)
        names += [deep_feature_name(seq, i) for i in range(arr.shape[1])]
    data = np.hstack(blocks) if blocks else np.zeros((len(patients), 0))
    return pd.DataFrame(data, index=pd.Index(patients, name="patient_id"), columns=names)


def extract_study(study: pd.DataFrame, deep_params, cache_dir: str | Path, seed: int, *,
                  models: Sequence[str] | None = None, sequences: Sequence[str] = SEQUENCES,
                  warn: Callable[[str], None] | None = None, progress: bool = True,
                  log: ExtractionLog | None = None) -> dict[str, pd.DataFrame]:
    """Deep features of every patient: ``{model name: DataFrame}`` (index patient_id,
    columns ``<SEQ>_F<i>``, reader-1 masks), computed or read from the feature store.

    ``warn`` receives the warnings that must reach the report (e.g. ``Artifacts.warn``):
    random weights used in place of unavailable ImageNet weights.
    """
    cases = study_cases(study, sequences, ("r1",))
    arrays = extract_cases(cases, deep_params, cache_dir, seed, models=models, warn=warn,
                           progress=progress, log=log)
    return {m: features_frame(cases, a, sequences) for m, a in arrays.items()}


def extract_raters(study: pd.DataFrame, deep_params, cache_dir: str | Path, seed: int, *,
                   models: Sequence[str] | None = None, sequences: Sequence[str] = SEQUENCES,
                   warn: Callable[[str], None] | None = None, progress: bool = True,
                   log: ExtractionLog | None = None) -> dict[str, dict[str, pd.DataFrame]]:
    """Features of the reproducibility subset for each reader:
    ``{model: {"r1": df, "r2": df, "rep": df}}`` over the patients that have reader-2 or
    repeat masks (empty frames when none do)."""
    cases = study_cases(study, sequences, RATERS)
    extra = {c.patient_id for c in cases if c.rater != "r1"}
    cases = [c for c in cases if c.patient_id in extra]
    models = list(models if models is not None else deep_params.models)
    if not cases:
        return {m: {r: pd.DataFrame() for r in RATERS} for m in models}
    arrays = extract_cases(cases, deep_params, cache_dir, seed, models=models, warn=warn,
                           progress=progress, log=log)
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for m, arr in arrays.items():
        out[m] = {}
        for r in RATERS:
            idx = [k for k, c in enumerate(cases) if c.rater == r]
            out[m][r] = features_frame([cases[k] for k in idx], arr[idx], sequences)
    return out


def extract_for_model(table: pd.DataFrame, model: str, prep: Mapping[str, Any],
                      weights: Mapping[str, Any] | str | None, cache_dir: str | Path, *,
                      sequences: Sequence[str] = SEQUENCES, progress: bool = True) -> pd.DataFrame:
    """Features of new patients for one stored model (``dlrc predict``).

    ``prep``: the stored ``deep.*`` preprocessing settings; ``weights``: the stored weights
    record (:func:`dlrc_lib.scores.deep_models.weights_record`) or a ``deep.weights`` setting.
    The weights found now must be the ones the model was fitted with (same identity),
    otherwise the features would not match its coefficients: refused with the reason.
    """
    record = dict(weights) if isinstance(weights, Mapping) else {"spec": weights or prep.get("weights", "auto")}
    seed = int(record.get("seed", 0))
    spec = "random" if record.get("source") == "random" else str(record.get("spec") or prep.get("weights", "auto"))
    fields = {k: v for k, v in prep.items() if k in DeepParams.model_fields and k not in ("models", "weights")}
    params = DeepParams(**fields, models=[model], weights=spec)
    arch, _ = parse_model_name(model)
    info = resolve_weights(arch, spec, seed)
    stored = record.get("identity")
    if stored and info.identity != stored:
        raise DlrcError(f"model {model}: fitted with weights {stored}, but deep.weights={spec!r} gives "
                        f"{info.identity} here; provide the same weights file")
    log = ExtractionLog(weights={arch: info})
    return extract_study(table, params, cache_dir, seed, models=[model], sequences=sequences,
                         progress=progress, log=log)[model]
