"""The job's stop switch: the first reason wins, the deadline stops with kind interrupted."""

from __future__ import annotations

import asyncio

from worker.control import JobControl
from worker.errors import Kind


async def test_the_first_stop_reason_wins():
    control = JobControl()
    control.request_stop("3 cancels in a row failed with 403", Kind.AUTH)
    control.request_stop("interrupted by SIGTERM", Kind.INTERRUPTED)
    assert (control.stop_reason, control.stop_kind) == (
        "3 cancels in a row failed with 403", Kind.AUTH)
    assert control.is_stopping()


async def test_the_deadline_stops_the_job_as_interrupted():
    control = JobControl(deadline_s=0.01)
    assert not control.is_stopping()
    await asyncio.sleep(0.02)
    assert control.is_stopping()
    assert (control.stop_reason, control.stop_kind) == ("deadline reached", Kind.INTERRUPTED)


async def test_track_ids_carry_the_job_id_and_a_sequence():
    control = JobControl(job_id="0123456789abcdef")
    assert [control.track_id() for _ in range(2)] == [
        "zr-0123456789abcdef-1", "zr-0123456789abcdef-2"]
