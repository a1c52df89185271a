"""The SLURM configuration of docs/scaling.md, constructed and checked without a SLURM."""
from __future__ import annotations

import sys

import pytest

from dlrc_lib.core.cluster import slurm_cluster, slurm_job_kwargs


def test_the_slurm_job_script_runs_single_threaded_dlrc_workers_from_this_environment(tmp_path):
    pytest.importorskip("dask_jobqueue")
    cluster = slurm_cluster(cores=32, memory="120GB", walltime="04:00:00", queue="cpu", account="radiology",
                            venv=tmp_path / "venv", log_directory=str(tmp_path / "logs"),
                            extra_directives=["--constraint=avx512"])
    try:
        script = cluster.job_script()
        assert cluster.scheduler_address.startswith("tcp://")
        assert len(cluster.workers) == 0  # nothing submitted before scale()
    finally:
        cluster.close()
    lines = script.splitlines()
    assert lines[0].startswith("#!")
    for directive in ("#SBATCH --cpus-per-task=32", "#SBATCH --mem=112G", "#SBATCH -t 04:00:00",
                      "#SBATCH -p cpu", "#SBATCH -A radiology", "#SBATCH --constraint=avx512"):
        assert directive in lines, directive
    assert f"source {tmp_path / 'venv' / 'bin' / 'activate'}" in lines
    command = lines[-1]
    assert command.startswith(str(tmp_path / "venv" / "bin" / "python") + " -m distributed.cli.dask_worker")
    assert cluster.scheduler_address in command
    # 32 single-threaded worker processes per job, scratch on the node's disk
    assert "--nthreads 1" in command and "--nworkers 32" in command
    assert "--local-directory $TMPDIR" in command


def test_slurm_defaults_use_this_environment():
    kw = slurm_job_kwargs(cores=4)
    assert kw["processes"] == kw["cores"] == 4 and kw["python"] == f"{sys.prefix}/bin/python"
    with pytest.raises(ValueError):
        slurm_job_kwargs(cores=0)
