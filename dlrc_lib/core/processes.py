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

__all__ = ["die_with_parent", "worker_pool"]


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
