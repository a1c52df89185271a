"""A Dask cluster on SLURM for ``radiomics.dask_scheduler`` / ``deep.dask_scheduler`` (dask-jobqueue).

dlrc itself only needs the address of a Dask scheduler whose workers can read the study's
files. On a SLURM cluster, dask-jobqueue starts the scheduler in the calling process (a login
node or a small job) and the workers as batch jobs; :func:`slurm_cluster` configures it the
way dlrc's work wants it:

- one thread per worker process (``processes == cores``): PyRadiomics holds the GIL, and deep
  features get their torch threads from dlrc (the host's cores shared among its workers);
- the virtual environment activated in the job script, so that the workers import the same
  ``dlrc_lib``, PyRadiomics and torch as the scheduler's side;
- the workers' scratch on the node's local disk (``$TMPDIR``), not the shared file system;
- no dashboard unless asked for.

::

    from dlrc_lib.core.cluster import slurm_cluster
    cluster = slurm_cluster(cores=32, memory="120GB", walltime="04:00:00", account="radiology")
    cluster.scale(jobs=8)                 # 8 nodes x 32 single-threaded workers
    print(cluster.scheduler_address)      # -> radiomics.dask_scheduler in the parameter file

docs/scaling.md has the whole recipe and the scaling to expect.
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from dlrc_lib.core.errors import DlrcError


def slurm_job_kwargs(*, cores: int = 32, memory: str = "120GB", walltime: str = "04:00:00",
                     queue: str | None = None, account: str | None = None,
                     venv: str | os.PathLike | None = None, local_directory: str = "$TMPDIR",
                     log_directory: str | None = "dask-logs", dashboard: bool = False,
                     extra_directives: Sequence[str] = ()) -> dict[str, Any]:
    """The keyword arguments of ``dask_jobqueue.SLURMCluster`` for dlrc's workers.

    ``cores`` and ``memory`` are one job's (one node, or the share of a node a job gets);
    ``venv`` is the virtual environment the job activates (default: the one running this).
    """
    if cores < 1:
        raise ValueError("cores must be >= 1")
    venv = Path(venv) if venv else Path(sys.prefix)
    prologue = [f"source {shlex.quote(str(venv / 'bin' / 'activate'))}",
                "export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1"]
    kwargs: dict[str, Any] = {
        "cores": int(cores), "processes": int(cores), "memory": memory, "walltime": walltime,
        "queue": queue, "account": account, "python": str(venv / "bin" / "python"),
        "job_script_prologue": prologue, "local_directory": local_directory,
        "log_directory": log_directory, "job_extra_directives": list(extra_directives),
        "scheduler_options": {} if dashboard else {"dashboard_address": None},
    }
    return kwargs


def slurm_cluster(**kwargs: Any):
    """A ``dask_jobqueue.SLURMCluster`` configured by :func:`slurm_job_kwargs` (no job is
    submitted until ``cluster.scale(jobs=...)`` or ``cluster.adapt(...)``)."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:  # pragma: no cover - a dev requirement
        raise DlrcError("a SLURM cluster needs dask-jobqueue: pip install dask-jobqueue") from None
    return SLURMCluster(**slurm_job_kwargs(**kwargs))
