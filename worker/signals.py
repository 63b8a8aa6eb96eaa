"""SIGTERM and SIGINT, from the job's start to the process's exit.

- While the job works (in its event loop), the first signal stops it through the one stop
  switch (in-flight calls get the grace period), and a second one cuts it at once.
- After the job's loop ended, while the report, the metrics and the webhook go out, a signal is
  noted (``job.signal_while_finishing``) and does not stop them: each is bounded (the
  Pushgateway 10 s, the webhook two attempts of 5 s), and they carry the exit code already
  settled, which is also the process's. Before, such a signal killed the process (SIGTERM,
  losing the metrics) or printed a KeyboardInterrupt traceback (SIGINT).

Off the main thread (tests calling the CLI from a thread) there is nothing to hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import structlog

from worker.control import JobControl
from worker.errors import Kind

log = structlog.get_logger("worker.signals")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def stopper(control: JobControl) -> Callable[[str], None]:
    """The job's handler: the first signal stops the job, a second cuts it at once."""
    received: list[str] = []

    def on_signal(name: str) -> None:
        received.append(name)
        if len(received) > 1:
            log.warning("job.interrupted_again", signal=name)
            control.abort()  # a second signal: do not wait for in-flight calls
            return
        log.warning("job.interrupted", signal=name, grace_s=control.grace_s)
        control.request_stop(f"interrupted by {name}", Kind.INTERRUPTED)

    return on_signal


def install(loop: asyncio.AbstractEventLoop, handler: Callable[[str], None]) -> bool:
    """Hand SIGTERM and SIGINT to ``handler`` in the job's loop; False off the main thread."""
    if not _main_thread():
        return False
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, handler, sig.name)
    return True


def hand_over(loop: asyncio.AbstractEventLoop) -> None:
    """The job's work is over: from now until the process exits, a signal is only noted.

    The signals are blocked while the loop's handlers are swapped for ours, so none arrives
    in between with the default action (which would kill the process).
    """
    if not _main_thread():
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
            signal.signal(sig, _note)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


LATE: list[str] = []  # signals noted while finishing, logged by report_late()


def _note(signum: int, _frame: FrameType | None) -> None:
    """Only remember it: a handler that logged could wait forever on the lock of a log write
    it interrupted (a slow stderr), and nothing could stop the process but SIGKILL."""
    LATE.append(signal.Signals(signum).name)


def report_late() -> None:
    """Log the signals noted while finishing (outside any handler)."""
    while LATE:
        log.warning("job.signal_while_finishing", signal=LATE.pop(0),
                    note="the report, metrics and webhook were still sent; the exit code stays")


@contextlib.contextmanager
def restored() -> Iterator[None]:
    """Put the process's own handlers back when the job command is over."""
    if not _main_thread():
        yield
        return
    saved: dict[signal.Signals, Any] = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
