"""The kernel manager of the runner's notebooks: a kernel shut down without an interrupt.

jupyter_client shuts a kernel down by first interrupting it (SIGINT to its process group), then
asking it to shut down. A kernel that has just finished a notebook is idle, so the interrupt
stops nothing; but when it lands while ipykernel is still handling a message, ipykernel logs
``KeyboardInterrupt caught in kernel.`` on its stderr, which is the console of ``dlrc run``
(nearly every notebook). :class:`QuietShutdownKernelManager` leaves out that interrupt when
shutting down; an interrupt asked for at any other time (a cell's timeout) is sent as before,
and a kernel that does not stop on the shutdown request is still killed by jupyter_client.
"""
from __future__ import annotations

from jupyter_client import AsyncKernelManager

__all__ = ["QuietShutdownKernelManager"]


class QuietShutdownKernelManager(AsyncKernelManager):
    """:class:`~jupyter_client.AsyncKernelManager` that shuts a kernel down without interrupting it."""

    async def _async_interrupt_kernel(self) -> None:
        if self.shutting_down:  # set by the shutdown itself: a shutdown request follows
            return
        await super()._async_interrupt_kernel()
