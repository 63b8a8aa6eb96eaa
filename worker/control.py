"""Job-wide control: the one stop switch (signals, deadline, budgets), track ids, counters and
the clock run ages are read on.

Every stop goes through :meth:`JobControl.request_stop`: a signal, the deadline (a timer set
when the control is made, so a stalled call cannot hide it), the retry budget, a systemic
refusal. Once stopped, nothing new is sent; :meth:`JobControl.bounded` gives the calls in
flight ``GRACE_SECONDS`` to be answered, then cancels the work, so a job ends within its
deadline plus the grace period whatever a call is waiting for.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import structlog

from worker.clock import ServerClock, utc_now
from worker.errors import Interrupted, Kind
from worker.models import Counters

log = structlog.get_logger("worker.control")

GRACE_SECONDS = 5.0  # how long in-flight calls may take to be answered once the job stops
SETTLE_SECONDS = 0.05  # after the last answer: let its caller record the outcome
DEADLINE_REACHED = "deadline reached"

T = TypeVar("T")


class DaemonExecutor(ThreadPoolExecutor):
    """An event loop's default executor whose work never keeps the process alive: each call on
    a daemon thread of its own, and a shutdown that waits for none of them.

    aiohttp resolves host names with ``getaddrinfo`` on the loop's executor, and a job reads
    ``--ids-file`` (a pipe, a FIFO) there too; ``asyncio.run`` waits for the default executor's
    threads when it ends, and the interpreter for every ThreadPoolExecutor thread. A stalled
    lookup or read would then hold the process long after a stop cut the job (the deadline's
    bound, signals) while the job's own work is over.
    """

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to whoever awaits the future
                future.set_exception(exc)

        threading.Thread(target=work, name="zuora-reaper-io", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Wait for nothing: what is still running is abandoned with its daemon thread."""


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run``, with a ``DaemonExecutor`` as the loop's default executor."""
    with asyncio.Runner() as runner:
        runner.get_loop().set_default_executor(DaemonExecutor(max_workers=1))
        return runner.run(main)


class InFlight:
    """The one count of requests in flight (a pacer's slot held): the pacer's concurrency
    limit bounds it, and a stop's grace period waits for it to fall to zero."""

    def __init__(self) -> None:
        self.count = self.peak = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def begin(self) -> None:
        self.count += 1
        self.peak = max(self.peak, self.count)
        self._idle.clear()

    def end(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


def new_job_id() -> str:
    """A job id: 16 hex digits, on every log line, in the report and in every Zuora-Track-Id."""
    return uuid.uuid4().hex[:16]


class JobControl:
    """Shared by every coroutine of a job: says whether to stop, why, and of which kind.

    Create it in the running event loop; the deadline counts from then.
    """

    def __init__(self, deadline_s: float | None = None, job_id: str | None = None,
                 grace_s: float | None = None,
                 now: Callable[[], datetime] = utc_now) -> None:
        self.job_id = job_id or new_job_id()
        self.clock = ServerClock(now)  # the time run ages are read at (worker.clock)
        self.grace_s = GRACE_SECONDS if grace_s is None else grace_s
        self._seq = itertools.count(1)
        self.stop_reason: str | None = None
        self.stop_kind: Kind | None = None
        self.stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + deadline_s if deadline_s is not None else None
        self._timer = (loop.call_at(self.deadline, self.request_stop, DEADLINE_REACHED,
                                    Kind.INTERRUPTED) if self.deadline is not None else None)
        self.counters = Counters()
        self.flights = InFlight()
        self._work: asyncio.Task[Any] | None = None

    def track_id(self) -> str:
        """A Zuora-Track-Id: the job id and a sequence number (<= 64 ASCII chars, no ':;\"')."""
        return f"zr-{self.job_id}-{next(self._seq)}"

    def is_stopping(self) -> bool:
        return self.stopped.is_set()

    def request_stop(self, reason: str, kind: Kind) -> None:
        """Stop dispatching new work. The first reason wins."""
        if not self.stopped.is_set():
            self.stop_reason, self.stop_kind = reason, kind
            self.stopped.set()

    def abort(self) -> None:
        """Cancel the work now, without the grace period (a second signal)."""
        if self._work is not None:
            self._work.cancel()

    async def bounded(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` under the stop switch and return its result.

        Once the job is told to stop, the calls in flight get ``grace_s`` to be answered; then
        ``work`` is cancelled (runs waiting for a pacer slot or a backoff were never sent) and
        Interrupted is raised with the stop's reason.
        """
        task = asyncio.ensure_future(work)
        self._work = task
        watcher = asyncio.ensure_future(self._cut_after_grace(task))
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                raise Interrupted(self.stop_reason or "stopped") from None
            raise
        finally:
            watcher.cancel()
            self._work = None
            if self._timer is not None:
                self._timer.cancel()

    async def _cut_after_grace(self, task: asyncio.Task[Any]) -> None:
        await self.stopped.wait()
        try:
            async with asyncio.timeout(self.grace_s):
                while True:
                    await self.flights.wait_idle()
                    await asyncio.sleep(SETTLE_SECONDS)  # let answered calls record outcomes
                    if self.in_flight == 0:
                        break
        except TimeoutError:
            if self.in_flight:
                log.warning("job.grace_expired", in_flight=self.in_flight, grace_s=self.grace_s)
        task.cancel()

    @property
    def in_flight(self) -> int:
        """Requests in flight (``flights.count``)."""
        return self.flights.count
