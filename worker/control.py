"""Job-wide control: the stop switch (signals, deadline, budgets), track ids and counters."""

from __future__ import annotations

import asyncio
import itertools
import uuid

from worker.errors import Kind
from worker.models import Counters


def new_job_id() -> str:
    """A job id: 16 hex digits, on every log line, in the report and in every Zuora-Track-Id."""
    return uuid.uuid4().hex[:16]


class JobControl:
    """Shared by every coroutine of a job: says whether to stop, why, and of which kind."""

    def __init__(self, deadline_s: float | None = None, job_id: str | None = None) -> None:
        self.job_id = job_id or new_job_id()
        self._seq = itertools.count(1)
        self.stop_reason: str | None = None
        self.stop_kind: Kind | None = None
        self.stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + deadline_s if deadline_s is not None else None
        self.counters = Counters()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def track_id(self) -> str:
        """A Zuora-Track-Id: the job id and a sequence number (<= 64 ASCII chars, no ':;\"')."""
        return f"zr-{self.job_id}-{next(self._seq)}"

    def is_stopping(self) -> bool:
        if not self.stopped.is_set() and self.deadline is not None \
                and asyncio.get_running_loop().time() >= self.deadline:
            self.request_stop("deadline reached", Kind.INTERRUPTED)
        return self.stopped.is_set()

    def request_stop(self, reason: str, kind: Kind) -> None:
        """Stop dispatching new work. The first reason wins."""
        if not self.stopped.is_set():
            self.stop_reason, self.stop_kind = reason, kind
            self.stopped.set()

    def time_left(self) -> float | None:
        if self.deadline is None:
            return None
        return self.deadline - asyncio.get_running_loop().time()

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered (or failed)."""
        return self._in_flight

    def begin_send(self) -> None:
        """One HTTP attempt starts (pair with :meth:`end_send` in a ``finally``)."""
        self._in_flight += 1
        if self._in_flight == 1:
            self._idle.clear()

    def end_send(self) -> None:
        """One HTTP attempt ended, answered or not."""
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return when no request is in flight."""
        await self._idle.wait()
