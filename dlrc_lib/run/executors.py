"""Where a sweep's variants run: each in its own ``dlrc run`` process here
(:func:`subprocess_executor`, :func:`run_variant_process`) or as a task on a Dask cluster
(:class:`DaskExecutor`); a variant left running by an interrupted sweep is ended
(:func:`stop_leftover`), and an interruption stops every running one (:data:`STOPPING`,
:func:`stop_running`)."""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Optional


from dlrc_lib.core.io import atomic_write_text
from dlrc_lib.core.processes import MALLOC_ENV, dask_client, dask_worker_setup, die_with_parent
from dlrc_lib.run.layout import project_root


Executor = Callable[[Path, Path, list[str], Path], tuple[bool, Optional[str]]]


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def stop_leftover(vdir: Path) -> None:
    """A variant process left by an interrupted sweep (its pid recorded in ``.pid``) is ended."""
    pidfile = vdir / ".pid"
    if not pidfile.exists():
        return
    try:
        pid = int(pidfile.read_text(encoding="utf-8").strip())
    except ValueError:
        pid = 0
    if pid > 0 and process_alive(pid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmd = ""
        if "dlrc_lib" in cmd and str(vdir) in cmd:
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                pass
            for _ in range(50):
                if not process_alive(pid):
                    break
                time.sleep(0.1)
    pidfile.unlink(missing_ok=True)


_RUNNING: dict[int, subprocess.Popen] = {}
_LOCK = threading.Lock()
STOPPING = threading.Event()  # set when the sweep is interrupted: unfinished variants leave no record


def _variant_command(vdir: Path, params_file: Path, only: list[str]) -> list[str]:
    return [sys.executable, "-m", "dlrc_lib.run.cli", "run", "--params", str(params_file),
            "--out", str(vdir), "--only", *only]


def run_in_subprocess(params_file: str | Path, only: list[str], out: Path, quiet: bool = True,
                      root: Optional[Path] = None) -> int:
    """``dlrc run --params P --only ... --out DIR`` in a child process (output kept in
    ``DIR/sweep.log``); its exit status."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "sweep.log", "w") as log:
        return subprocess.call(_variant_command(out, Path(params_file), list(only)), cwd=root or project_root(),
                               stdout=log, stderr=subprocess.STDOUT, env=_variant_env())


def _variant_env(threads: Optional[int] = None) -> dict[str, str]:
    """The environment of a variant's process: this package importable, ``threads`` BLAS/OpenMP
    threads, and none of the malloc tunables a Dask nanny sets (see
    :func:`~dlrc_lib.core.processes.undo_malloc_tuning`; the variant's kernel would inherit them)."""
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    pkg_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    return env


def _failure_message(vdir: Path, rc: int) -> str:
    text = (vdir / "sweep.log").read_text(errors="replace")
    errors = [ln for ln in text.splitlines() if ln.startswith("dlrc run: error:")]
    msg = errors[0][len("dlrc run: error: "):] if errors else f"exit status {rc}"
    if not errors:
        tail = [ln for ln in text.splitlines() if ln.strip()]
        msg += f": {tail[-1]}" if tail else ""
    return msg


def run_variant_process(cmd: list[str], cwd: str, env: dict[str, str], vdir: Path,
                        should_stop: Optional[Callable[[], bool]] = None) -> tuple[bool, Optional[str]]:
    """Run one variant's command in its own process group (output in ``<vdir>/sweep.log``,
    pid in ``<vdir>/.pid``); it ends with this process. ``should_stop``, polled every second,
    ends it early (the sweep was interrupted). Returns ``(ok, error)``."""
    vdir = Path(vdir)
    with open(vdir / "sweep.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=functools.partial(die_with_parent, os.getpid()))
        atomic_write_text(vdir / ".pid", f"{proc.pid}\n")
        with _LOCK:
            _RUNNING[proc.pid] = proc
        try:
            while True:
                try:
                    rc = proc.wait(timeout=1.0 if should_stop else None)
                    break
                except subprocess.TimeoutExpired:
                    if should_stop():
                        _terminate(proc)
        finally:
            with _LOCK:
                _RUNNING.pop(proc.pid, None)
    (vdir / ".pid").unlink(missing_ok=True)
    return (True, None) if rc == 0 else (False, _failure_message(vdir, rc))


def _terminate(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except OSError:
        pass


def subprocess_executor(threads: int = 1) -> Executor:
    """Run a variant's notebooks with ``python -m dlrc_lib.run.cli run`` in its own process group."""

    def execute(vdir: Path, params_file: Path, only: list[str], root: Path) -> tuple[bool, Optional[str]]:
        return run_variant_process(_variant_command(vdir, params_file, only), str(Path.cwd()),
                                   _variant_env(threads), vdir)

    return execute


# ------------------------------------------------------------------------- on Dask
def _variant_on_worker(cmd: list[str], cwd: str, vdir: str, stop_event: str,
                       threads_by_host: Mapping[str, int]) -> tuple[bool, Optional[str]]:
    """A Dask task: one variant's ``dlrc run`` as a child of the worker, with its share of the
    host's cores as BLAS threads; it ends when the sweep sets ``stop_event``."""
    from distributed import Event, get_worker

    worker = get_worker()
    threads = threads_by_host.get(_host(worker.address), 1)
    event = Event(stop_event)
    return run_variant_process(cmd, cwd, _variant_env(threads), Path(vdir), should_stop=event.is_set)


def _host(address: str) -> str:
    """``tcp://10.0.0.5:40123`` -> ``10.0.0.5``."""
    return address.split("://")[-1].rsplit(":", 1)[0]


class DaskExecutor:
    """Variants as tasks on a Dask cluster (``radiomics.dask_scheduler``): each task runs the
    variant's ``dlrc run`` on the worker it lands on (workers must see the same files: the
    cache, the study and the sweep folder). ``run_variant`` replaces the subprocess (tests)."""

    def __init__(self, address: str, timeout_s: float = 20.0,
                 run_variant: Optional[Callable[..., tuple[bool, Optional[str]]]] = None):

        self.client = dask_client(address, timeout_s)
        from distributed import Event

        self.address = address
        self.client.run(dask_worker_setup)  # the worker's profiler alone costs ~4 % of a core
        self._threads_by_host: Optional[dict[str, int]] = None
        self.stop_event = f"dlrc-sweep-stop-{os.getpid()}-{time.time_ns()}"
        self._event = Event(self.stop_event, client=self.client)
        self.run_variant = run_variant

    @property
    def threads(self) -> int:
        """Tasks the cluster runs at once (its worker threads)."""
        return max(1, sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values()))

    def threads_by_host(self) -> dict[str, int]:
        """BLAS/OpenMP threads for one variant on each host: its cores shared by every worker
        thread on it (2 workers x 1 thread on 2 cores: 1 each, as the local pool's variants)."""
        cores = self.client.run(os.cpu_count)  # worker address -> cores of its machine
        tasks: dict[str, int] = {}
        for addr, w in self.client.scheduler_info()["workers"].items():
            tasks[_host(addr)] = tasks.get(_host(addr), 0) + int(w.get("nthreads", 1))
        return {_host(a): max(1, int(c or 1) // max(1, tasks.get(_host(a), 1))) for a, c in cores.items()}

    def _host_threads(self) -> dict[str, int]:
        if self._threads_by_host is None:  # asked of the workers once per sweep
            self._threads_by_host = self.threads_by_host()
        return self._threads_by_host

    def __call__(self, vdir: Path, params_file: Path, only: list[str], root: Path) -> tuple[bool, Optional[str]]:
        if self.run_variant is not None:
            fut = self.client.submit(self.run_variant, vdir, params_file, only, root, pure=False)
        else:
            fut = self.client.submit(_variant_on_worker, _variant_command(vdir, params_file, only),
                                     str(Path.cwd()), str(vdir), self.stop_event, self._host_threads(),
                                     pure=False)
        return fut.result()

    def stop(self) -> None:
        """End the variants running on the workers (the sweep was interrupted)."""
        try:
            self._event.set()
        except Exception:  # noqa: BLE001 - the cluster may be gone already
            pass

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            pass


def stop_running() -> None:
    with _LOCK:
        procs = list(_RUNNING.values())
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            pass
