"""Progress bars that read well both in JupyterLab and in a headless ``dlrc run``.

In JupyterLab :func:`progress_bar` is ``tqdm.auto`` (a widget). Under the runner
(``DLRC_HEADLESS=1``) it is a plain-text bar on stderr, refreshed every few seconds, so the
executed notebook stays small and :class:`ConsoleEcho` can show the bar's latest state on
the console while a long cell runs (papermill hands it the kernel's stderr).
"""
from __future__ import annotations

import os
import re
import sys
import time
from typing import Any, Optional, TextIO

__all__ = ["headless", "progress_bar", "ConsoleEcho"]

HEADLESS_INTERVAL_S = 5.0


def headless() -> bool:
    """True under ``dlrc run`` (and the tests): no widgets, plain text."""
    return os.environ.get("DLRC_HEADLESS", "").strip().lower() in ("1", "true", "yes")


def progress_bar(iterable: Any = None, **kwargs: Any):
    """``tqdm`` with the right front end (see the module docstring)."""
    if headless():
        from tqdm import tqdm

        kwargs.setdefault("mininterval", HEADLESS_INTERVAL_S)
        kwargs.setdefault("file", sys.stderr)
        kwargs.setdefault("ascii", False)
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, **kwargs)


_BAR = re.compile(r"^(?P<desc>.*?)\s*\d+%\|")  # tqdm's "desc:  42%|####  | 12/30 [...]"


class ConsoleEcho:
    """File-like sink for a kernel's stderr that echoes progress bars to the console.

    Only progress-bar text is shown (the rest stays in the executed notebook), one line per
    bar state, at most every ``interval_s`` seconds per bar unless it finished; on a
    terminal the line is redrawn in place.
    """

    def __init__(self, stream: Optional[TextIO] = None, prefix: str = "      ", interval_s: float = 30.0):
        self.stream = stream if stream is not None else sys.stdout
        self.prefix = prefix
        self.interval_s = interval_s
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last: dict[str, float] = {}
        self._shown = ""

    def write(self, text: str) -> int:
        """Echo the progress-bar states in ``text``; never raises (a console that cannot
        show them must not fail the notebook)."""
        try:
            self._write(text)
        except Exception:  # e.g. a closed pipe, an encoding the console lacks
            pass
        return len(text)

    def _emit(self, s: str) -> None:
        try:
            self.stream.write(s)
        except UnicodeEncodeError:
            enc = getattr(self.stream, "encoding", None) or "ascii"
            self.stream.write(s.encode(enc, errors="replace").decode(enc))

    def _write(self, text: str) -> None:
        for seg in re.split(r"[\r\n]+", text):
            seg = seg.strip()
            m = _BAR.search(seg) if seg else None
            if m is None:
                continue
            name = m.group("desc")
            done = "100%|" in seg
            now = time.monotonic()
            if not self.tty and not done and now - self._last.get(name, -1e9) < self.interval_s:
                continue
            self._last[name] = now
            if self.tty:
                self._emit("\r\x1b[2K" + self.prefix + seg + ("\n" if done else ""))
            else:
                self._emit(self.prefix + seg + "\n")
            self._shown = "" if done else seg
        self.stream.flush()

    def flush(self) -> None:
        try:
            self.stream.flush()
        except Exception:
            pass

    def close(self) -> None:
        """End an unfinished bar's line on a terminal."""
        try:
            if self.tty and self._shown:
                self.stream.write("\n")
                self.stream.flush()
        except Exception:
            pass
        self._shown = ""
