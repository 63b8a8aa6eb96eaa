"""A live progress line on stderr: while listing (pages and runs so far), then while
cancelling (done, failed, rate, ETA).

Shown when stderr is a terminal (``--progress auto``, unless logs are forced to JSON), or when
forced with ``--progress always``; never with ``--progress never``. It is redrawn at most
``1 / MIN_INTERVAL_S`` times a second, log lines scroll above it, and it is erased at the end.
"""

from __future__ import annotations

import functools
import logging
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import structlog

from worker.config import Settings
from worker.durations import format_duration
from worker.logs import is_terminal
from worker.models import UNSUCCESSFUL, RunRecord

MIN_INTERVAL_S = 0.2
BAR_WIDTH = 20
CLEAR = "\r\x1b[2K"


def wants_progress(mode: str, log_format: str, stream: TextIO) -> bool:
    """``always``/``never`` decide; ``auto`` means a terminal that does not get JSON logs."""
    if mode in ("always", "never"):
        return mode == "always"
    return log_format != "json" and is_terminal(stream)


class Progress:
    """Counts selected and finished cancels; draws the line when ``enabled``."""

    def __init__(self, stream: TextIO, *, enabled: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled, self.total, self.done, self.failed = enabled, 0, 0, 0
        self.pages, self.listed = 0, 0
        self._stream, self._clock = stream, clock
        self._started: float | None = None
        self._last_draw = -1e9
        self._shown = False
        self._restore: list[Callable[[], None]] = []
        self._attached = False

    def page(self, pages: int, listed: int) -> None:
        """One more listing page was read (JobDeps.on_page)."""
        self.pages, self.listed = pages, listed
        self._attach_logging()
        self._draw()

    def selected(self, count: int) -> None:
        """A pass selected ``count`` more runs to cancel (JobDeps.on_selected)."""
        self.total += count
        if self._started is None:
            self._started = self._clock()
            self._attach_logging()
        self._draw(force=True)

    def finished(self, rec: RunRecord) -> None:
        """One cancel has its outcome (JobDeps.on_done)."""
        self.done += 1
        self.failed += rec.outcome in UNSUCCESSFUL
        self._draw(force=self.done >= self.total)

    def close(self) -> None:
        """Erase the line and give the log stream back; safe to call more than once."""
        self.erase()
        for undo in reversed(self._restore):
            undo()
        self._restore.clear()
        self._attached = False

    def line(self) -> str:
        """The text of the progress line: ``listing: page 3, 250 runs so far`` until runs are
        selected, then ``cancelling [####----] 8/20 done, 0 failed, 4.0/s, ETA 3s``."""
        if self._started is None:
            return f"listing: page {self.pages}, {self.listed} runs so far"
        elapsed = max(self._clock() - (self._started or self._clock()), 1e-9)
        rate = self.done / elapsed
        left = self.total - self.done
        eta = format_duration(left / rate) if rate > 0 else "?"
        filled = BAR_WIDTH * self.done // self.total if self.total else 0
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        return (f"cancelling [{bar}] {self.done}/{self.total} done, {self.failed} failed, "
                f"{rate:.1f}/s, ETA {eta if left else '0s'}")

    def _draw(self, *, force: bool = False) -> None:
        now = self._clock()
        if not self.enabled or (not force and now - self._last_draw < MIN_INTERVAL_S):
            return
        self._last_draw = now
        self.redraw()

    def redraw(self) -> None:
        """Draw the line now."""
        width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
        self._stream.write(CLEAR + self.line()[:width])
        self._stream.flush()
        self._shown = True

    def erase(self) -> bool:
        """Erase the line if it is shown; return whether it was."""
        shown, self._shown = self._shown, False
        if shown:
            self._stream.write(CLEAR)
            self._stream.flush()
        return shown

    def _attach_logging(self) -> None:
        """Route log lines that go to our stream through a proxy that keeps the line below
        (once, and only when the line is drawn at all)."""
        if not self.enabled or self._attached:
            return
        self._attached = True
        proxy = _LineKeeper(self._stream, self)
        factory = structlog.get_config()["logger_factory"]
        if getattr(factory, "_file", None) is self._stream:  # the logger factory's stream
            structlog.configure(logger_factory=structlog.PrintLoggerFactory(proxy))  # type: ignore[arg-type]
            self._restore.append(lambda: structlog.configure(logger_factory=factory))
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is self._stream:
                handler.setStream(proxy)
                self._restore.append(functools.partial(handler.setStream, self._stream))


class _LineKeeper:
    """A stream wrapper: erase the progress line, write the log line, draw the line again."""

    def __init__(self, inner: TextIO, progress: Progress) -> None:
        self._inner, self._progress = inner, progress
        self._hidden = False  # erased for a log line that has not ended yet

    def write(self, text: str) -> int:
        self._hidden = self._progress.erase() or self._hidden
        written = self._inner.write(text)
        if self._hidden and text.endswith("\n"):  # print() writes the newline on its own
            self._hidden = False
            self._progress.redraw()
        return written

    def flush(self) -> None:
        self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def progress_for(settings: Settings, stream: TextIO | None = None) -> Progress:
    """The progress line of a job: enabled or not by ``output.progress`` and the stream."""
    out = stream or sys.stderr
    out_settings = settings.output
    return Progress(out, enabled=wants_progress(out_settings.progress, out_settings.log_format,
                                                out))
