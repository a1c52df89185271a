"""Worker processes that do not outlive the process that started them.

A notebook kernel (or ``dlrc sweep``) that is killed — even by ``SIGKILL``, which it cannot
handle — must not leave its pool workers running: they would keep computing for nobody, hold
the killed run's output pipes open (whoever waits for that run's end waits forever) and
write to the cache next to the rerun. On Linux each worker asks the kernel for a signal when
its parent dies (``PR_SET_PDEATHSIG``); elsewhere this is a no-op and the pool's own shutdown
is all there is.

>>> with worker_pool(2) as ex:          # a ProcessPoolExecutor whose workers die with us
...     list(ex.map(abs, [-1, -2]))
[1, 2]
"""
from __future__ import annotations

import functools
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Optional

from dlrc_lib.core.errors import DlrcError

__all__ = ["die_with_parent", "dask_worker_setup", "one_blas_thread", "single_thread_blas", "undo_malloc_tuning", "worker_pool",
           "MALLOC_ENV"]


def die_with_parent(parent_pid: Optional[int] = None, sig: int = signal.SIGTERM) -> None:
    """In a child process: be sent ``sig`` when the parent dies (Linux ``PR_SET_PDEATHSIG``).

    ``parent_pid``: the parent's pid as the parent saw it; if the parent is already gone by
    the time this runs (the child was re-parented), the signal is raised at once.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(sig))  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux (no prctl): nothing to ask for
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


def _init(parent_pid: int, initializer: Optional[Callable[..., Any]], initargs: tuple) -> None:
    die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


def worker_pool(max_workers: int, *, initializer: Optional[Callable[..., Any]] = None,
                initargs: tuple = (), mp_context=None) -> ProcessPoolExecutor:
    """A :class:`~concurrent.futures.ProcessPoolExecutor` whose workers end when this process
    ends, however it ends (see the module docstring); ``initializer`` runs after that."""
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=mp_context,
                               initializer=functools.partial(_init, os.getpid(), initializer, initargs))


# glibc's malloc tunables as environment variables. Dask's nanny sets MALLOC_TRIM_THRESHOLD_
# (65,536) in every worker it spawns (``distributed.nanny.pre-spawn-environ``), so that
# freed memory goes back to the OS at once.
MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's upper bound for its dynamic threshold (64-bit)
_TRIM_THRESHOLD = 2 * _MMAP_THRESHOLD  # the ratio glibc keeps when it adjusts both itself


def undo_malloc_tuning() -> bool:
    """Give this process back glibc's allocation behaviour for large blocks, and drop the
    malloc variables from ``os.environ`` so that processes it starts do not inherit them.

    Setting any malloc tunable switches off glibc's *dynamic* mmap threshold: every block of
    more than 128 KiB - each image, mask and filtered volume of a radiomics case - is then
    mapped fresh from the kernel and unmapped when freed, and every page of it is faulted
    in again. On a Dask worker with the nanny's default this costs PyRadiomics ~40x the page
    faults and a third more CPU per case. Fixing the thresholds where the dynamic rule ends up
    (32 MiB mmap, 64 MiB trim) restores the reuse. Returns whether anything was changed (only
    where a variable was set; a no-op off glibc).
    """
    present = [v for v in MALLOC_ENV if v in os.environ]
    if not present:
        return False
    for v in present:
        os.environ.pop(v, None)
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, _MMAP_THRESHOLD)) and bool(
            libc.mallopt(m_trim_threshold, _TRIM_THRESHOLD))
    except (OSError, AttributeError):  # not glibc
        return False


def dask_worker_setup(dask_worker=None) -> None:
    """Run on every worker of a Dask cluster before ``dlrc`` gives it work
    (``client.run(dask_worker_setup)``): undo the nanny's malloc setting
    (:func:`undo_malloc_tuning`) and stop the worker's statistical profiler.

    Every 10 ms a Dask worker's event loop samples the stack of the thread running the task
    (``distributed.worker.profile``, for the dashboard): for a long, GIL-holding PyRadiomics
    case each sample takes the GIL from it, and even a task that only waits for a sweep
    variant's process costs the worker ~4 % of a core in sampling. Nobody reads that profile
    here. (The workers stay changed after the run: the profiler is a dashboard feature.)
    """
    undo_malloc_tuning()
    if dask_worker is not None:
        for name in ("profile", "profile-cycle"):
            pc = dask_worker.periodic_callbacks.pop(name, None)
            if pc is not None:
                pc.stop()


_BLAS_LIMIT: Any = None


def one_blas_thread():
    """A context (or, kept open, a process-wide setting) in which NumPy's and SciPy's BLAS run
    on one thread; small least-squares problems also run fastest so on a busy machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def single_thread_blas() -> bool:
    """Run NumPy's and SciPy's BLAS on one thread in this process (and, through
    ``OPENBLAS_NUM_THREADS``, in the processes it starts).

    The same numbers must come out of a run on 2 cores, on 64, and inside a sweep that runs
    two variants at once: with more BLAS threads OpenBLAS splits some reductions (``X.T @ r``
    in the LASSO path, among others) differently, and the last bits of a coefficient change
    (the LASSO path on a 481 x 347 matrix differs between 1 and 2 threads; a cross-validated
    classifier downstream turned that into 1e-5 of an AUC). One thread gives every run the same
    summation order. The deep networks are not affected: PyTorch uses its own OpenMP threads.
    Returns whether a BLAS library was found and limited.
    """
    global _BLAS_LIMIT
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy  # noqa: F401  (load the BLAS libraries so that they can be limited now)
        import scipy.linalg  # noqa: F401
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - both are dependencies
        return False
    _BLAS_LIMIT = one_blas_thread()
    return any(i.get("user_api") == "blas" for i in threadpool_info())


def dask_client(address: str, timeout_s: float = 20.0, setting: str = "radiomics.dask_scheduler"):
    """A ``distributed.Client`` for the scheduler of ``setting``; a one-line
    :class:`~dlrc_lib.core.errors.DlrcError` when Dask is missing or the scheduler does not answer."""
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover
        raise DlrcError(f"{setting} is set but dask.distributed is not installed") from None
    try:
        return Client(address, timeout=f"{timeout_s}s")
    except Exception as exc:  # noqa: BLE001 - whatever the connection says
        text = str(exc).strip()
        raise DlrcError(f"{setting} {address}: cannot connect "
                        f"({text.splitlines()[0][:300] if text else type(exc).__name__})") from None
