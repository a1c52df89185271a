"""What a run ran on, so that a slow run can say why: the CPU, its vector instruction set,
the instruction set torch actually uses, threads and load; and the checks on a finished stage.

The deep-learning stage is bound by oneDNN's convolution kernels, whose speed depends on the
vector instructions they may use: measured on 2 cores of an AVX-512 machine, the same ResNets ran
about 4x slower with oneDNN limited to SSE4.1-class kernels (docs/deep_learning.md). A shared
machine shows instead as wall time far above the CPU time the stage got.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

# Vector instruction sets, best first, by the /proc/cpuinfo flag that announces them.
ISA_FLAGS = (("AVX-512", "avx512f"), ("AVX2", "avx2"), ("AVX", "avx"), ("SSE4.2", "sse4_2"))
# torch.backends.cpu.get_cpu_capability() values at or above AVX2 (x86-64; other architectures
# have their own names and are not judged)
FAST_CAPABILITIES = ("AVX2", "AVX512", "AVX512_VNNI", "AVX512_BF16", "AMX")


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return info
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            info.setdefault(k.strip(), v.strip())
    return info


def cores_available() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def cpu_facts(torch_capability: bool = True) -> dict[str, Any]:
    """CPU model, its best vector instruction set, torch's CPU capability and threads, cores,
    load average."""
    info = _cpuinfo()
    flags = set(info.get("flags", info.get("Features", "")).split())
    isa = next((name for name, flag in ISA_FLAGS if flag in flags), None)
    cores = cores_available()
    facts: dict[str, Any] = {
        "cpu_model": info.get("model name") or platform.processor() or platform.machine(),
        "vector_isa": isa,
        "cores_available": cores,
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    if torch_capability:
        try:
            import torch

            facts["torch_cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
            facts["torch_threads"] = int(torch.get_num_threads())
            facts["onednn_isa_cap"] = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
        except Exception:  # noqa: BLE001 - torch missing or broken: the facts say so
            facts["torch_cpu_capability"] = None
    return facts


def children_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process's finished child processes (notebook kernels
    and, through them, their worker pools)."""
    t = os.times()
    return float(t.children_user + t.children_system)


def speed_warnings(stage: str, wall: float, cpu: float, facts: dict[str, Any], *, min_wall: float = 60.0) -> list[str]:
    """Why ``stage`` (a notebook of the run) may have been slower than this code can run: torch
    below AVX2, or a shared machine (wall time far above the CPU time the stage got)."""
    out = []
    cap = facts.get("torch_cpu_capability")
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    if x86 and cap and cap not in FAST_CAPABILITIES and stage.startswith("04"):
        out.append(f"torch runs with CPU capability {cap} (CPU {facts.get('cpu_model')}, best vector set "
                   f"{facts.get('vector_isa')}): below AVX2 the deep-learning stage is about 4x slower than this "
                   "code can run; use a machine whose torch reports AVX2 or AVX512, or a GPU (deep.device: cuda)")
    cores = max(1, int(facts.get("cores_available") or 1))
    # a stage that had a core to itself gets about its wall time in CPU (one thread) or more; far
    # less means it waited for the CPU. Child CPU time is not measured on Windows (always 0).
    if os.name != "nt" and wall >= min_wall and 0 < cpu < 0.5 * wall:
        out.append(f"{stage}: {wall:.0f} s wall time but only {cpu:.0f} s of CPU on {cores} core(s): the machine was "
                   f"shared or waiting (load average {facts.get('load_average')}); run on idle cores, or give the run "
                   "the cores it may use (radiomics.n_jobs, study.n_jobs)")
    return out
