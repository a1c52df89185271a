"""Deep-feature extraction throughput: end-to-end against the bare forward pass.

For each model, in one process and on the same batch shapes:

- *bare*: the network's forward pass alone on ready-made tensors (after one warm-up batch);
- *end-to-end*: one :func:`dlrc_lib.features.deep.extract.extract_cases` call for all the models on
  a cold feature store, as a run does it (hashing the files, reading and cropping each
  volume once in the prefetch thread for all models of its dimension, the forward passes,
  writing every case to the store, compaction, reading the features back).

``ratio = sum of bare times / end-to-end time`` (target >= 0.85); ``ratio_steady`` leaves
out building the networks (weight initialisation or loading, a one-off per run);
``ratio_cpu`` compares the CPU seconds of the two phases (both building their networks),
which other processes sharing the cores do not distort. Per
model: bare images/s, images/s of its forward passes inside the pipeline, and end-to-end
images/s (the end-to-end time shared in proportion to the bare times). Cases come from a study
manifest (``--manifest``) or from synthetic volumes written to a temporary folder.

    python benchmarks/deep_throughput.py --params params/quick.yaml --patients 24
    python benchmarks/deep_throughput.py --tiny          # seconds; used by the test suite
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from dlrc_lib.features import store as fs
from dlrc_lib.core.config import DeepParams
from dlrc_lib.features.deep import extract as dx
from dlrc_lib.features.deep.networks import build_extractor, parse_model_name


def synthetic_cases(root: Path, n: int, shape=(12, 64, 64), spacing=(0.8, 0.8, 4.0), seed: int = 0):
    """``n`` patients x 3 sequences of noisy volumes with an ellipsoid tumour."""
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    cases = []
    for i in range(n):
        c = np.array(shape) / 2 + rng.uniform(-2, 2, 3) * (0.5, 3, 3)
        r = np.array([2.5, 8, 10]) * rng.uniform(0.8, 1.2, 3)
        mask = ((((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2) <= 1).astype(np.uint8)
        for s, seq in enumerate(dx.SEQUENCES):
            paths = []
            for arr, tag in ((rng.normal(100 + 20 * s, 15, shape).astype(np.float32) + 80 * mask, "img"),
                             (mask, "mask")):
                im = sitk.GetImageFromArray(arr)
                im.SetSpacing(spacing)
                p = root / f"P{i:04d}_{seq}_{tag}.nii.gz"
                sitk.WriteImage(im, str(p))
                paths.append(str(p))
            cases.append(dx.Case(f"P{i:04d}", seq, "r1", *paths))
    return cases


def manifest_cases(manifest: str, n: int):
    from dlrc_lib.study.manifest import load_study

    study = load_study(manifest).head(n)
    return dx.study_cases(study)


def bare_forward(model: str, params: DeepParams, n_cases: int, seed: int) -> tuple[float, float]:
    """Seconds for the forward passes of ``n_cases`` inputs in batches of batch_size (and the build)."""
    t0 = time.perf_counter()
    ext = build_extractor(model, "random", seed, params.device)
    build_s = time.perf_counter() - t0
    _, dim = parse_model_name(model)
    shape = (3, params.input_size, params.input_size) if dim == "2D" else (3, *params.shape_3d)
    sizes = [min(params.batch_size, n_cases - i) for i in range(0, n_cases, params.batch_size)]
    gen = torch.Generator().manual_seed(0)
    batches = [ext.prepare(torch.randn(b, *shape, generator=gen)) for b in dict.fromkeys(sizes)]
    by_size = {b.shape[0]: b for b in batches}
    ext.forward(by_size[sizes[0]])  # warm-up
    if ext.device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for b in sizes:
        ext.forward(by_size[b])
    if ext.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, build_s


def run(cases, params: DeepParams, models, seed: int, workdir: Path) -> dict:
    """Bare forward passes of every model, then one cold end-to-end extraction of all of
    them (as ``extract_study`` runs: each batch is prepared once for all models of its
    dimension)."""
    n = len(cases)
    c0 = time.process_time()
    bare = {m: bare_forward(m, params, n, seed)[0] for m in models}
    cpu_bare_all = time.process_time() - c0  # includes building the networks
    log = dx.ExtractionLog()
    orig = dx.build_extractor
    build = {"s": 0.0}

    def timed_build(*a, **k):
        t = time.perf_counter()
        try:
            return orig(*a, **k)
        finally:
            build["s"] += time.perf_counter() - t

    dx.build_extractor = timed_build
    fs._digest_memo.clear()  # hash the files as a fresh run would
    c0 = time.process_time()
    t0 = time.perf_counter()
    try:
        dx.extract_cases(cases, params, workdir / "cache", seed, models=models, progress=False, log=log)
    finally:
        dx.build_extractor = orig
    e2e_s = time.perf_counter() - t0
    cpu_e2e = time.process_time() - c0
    steady_s = e2e_s - build["s"]
    tot_bare = sum(bare.values())
    rows = []
    for m in models:
        fwd = log.forward_s.get(m, float("nan"))
        # the model's share of the end-to-end time, in proportion to its bare forward time
        share = e2e_s * bare[m] / tot_bare
        rows.append({"model": m, "cases": n, "bare_s": round(bare[m], 3), "bare_img_s": round(n / bare[m], 2),
                     "pipeline_forward_img_s": round(n / fwd, 2), "e2e_img_s": round(n / share, 2)})
        print(f"{m:13s} bare {n / bare[m]:8.2f} img/s   in-pipeline forward {n / fwd:8.2f} img/s   "
              f"end-to-end {n / share:8.2f} img/s", flush=True)
    return {
        "device": str(dx.build_extractor.__globals__["select_device"](params.device)),
        "torch_threads": torch.get_num_threads(),
        "settings": {"input_size": params.input_size, "shape_3d": list(params.shape_3d),
                     "batch_size": params.batch_size, "workers": params.workers},
        "cases": n, "models": rows,
        "bare_total_s": round(tot_bare, 3), "e2e_total_s": round(e2e_s, 3), "build_s": round(build["s"], 3),
        "ratio": round(tot_bare / e2e_s, 3), "ratio_steady": round(tot_bare / steady_s, 3),
        # CPU seconds (all threads) of both phases, networks' construction included in both:
        # insensitive to other processes sharing the cores
        "cpu_bare_s": round(cpu_bare_all, 2), "cpu_e2e_s": round(cpu_e2e, 2),
        "ratio_cpu": round(cpu_bare_all / cpu_e2e, 3),
        "load_average": list(__import__("os").getloadavg()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", help="take the deep: settings from this parameter file")
    ap.add_argument("--manifest", help="study manifest (default: synthetic volumes)")
    ap.add_argument("--patients", type=int, default=16, help="patients (x 3 sequences)")
    ap.add_argument("--models", nargs="+", help="models (default: the parameter file's)")
    ap.add_argument("--tiny", action="store_true", help="2 patients, tiny inputs, ResNet50 only")
    ap.add_argument("--device", help="override deep.device")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)

    params = DeepParams(**(yaml.safe_load(Path(args.params).read_text()) or {}).get("deep", {})) if args.params \
        else DeepParams()
    upd = {"weights": "random"}
    if args.tiny:
        upd.update(input_size=64, shape_3d=(2, 32, 32), batch_size=3)
        args.patients = 2
        args.models = args.models or ["ResNet50_2D", "ResNet50_3D"]
    if args.device:
        upd["device"] = args.device
    params = params.model_copy(update=upd)
    models = args.models or list(params.models)
    with tempfile.TemporaryDirectory(prefix="dlrc-bench-") as tmp:
        tmp = Path(tmp)
        cases = manifest_cases(args.manifest, args.patients) if args.manifest else synthetic_cases(tmp, args.patients)
        res = run(cases, params, models, args.seed, tmp)
    print(f"end-to-end / bare throughput: {res['ratio']:.3f} ({res['ratio_steady']:.3f} without building the "
          f"networks, {res['build_s']:.1f} s); end-to-end {res['e2e_total_s']:.1f} s for {len(cases)} images x "
          f"{len(models)} models, bare {res['bare_total_s']:.1f} s; CPU-time ratio {res['ratio_cpu']:.3f}; "
          f"load average {res['load_average'][0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
