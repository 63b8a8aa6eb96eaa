"""The job's one stop switch: the first reason wins, the deadline is a timer, and a stop cuts
the work after the grace period."""

from __future__ import annotations

import asyncio

import pytest

from worker.control import JobControl
from worker.errors import Interrupted, Kind


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


async def test_the_deadline_timer_stops_the_job_when_nobody_asks():
    """The deadline is a timer, not a check a worker makes when it next asks: a job whose every
    call is stalled is still stopped on time."""
    control = JobControl(deadline_s=0.05)
    await asyncio.wait_for(control.stopped.wait(), timeout=5)
    assert control.stop_reason == "deadline reached"


async def test_a_stalled_call_is_cut_after_the_grace_period():
    """Work stuck in an HTTP call (counted in flight) is cancelled once the grace period after
    the stop has passed, and bounded() raises Interrupted with the stop's reason."""
    control = JobControl(deadline_s=0.1, grace_s=0.2)
    loop = asyncio.get_running_loop()

    async def stalled() -> None:
        control.flights.begin()
        try:
            await asyncio.sleep(30)
        finally:
            control.flights.end()

    started = loop.time()
    with pytest.raises(Interrupted, match="deadline reached"):
        await control.bounded(stalled())
    took = loop.time() - started
    assert 0.3 <= took < 3.0  # deadline + grace, with room for a busy machine
    assert control.in_flight == 0


async def test_work_with_nothing_in_flight_is_cut_at_the_stop():
    """Nothing in flight (a wait for a pacer slot, a backoff): nothing to wait for."""
    control = JobControl(grace_s=5.0)
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, control.request_stop, "interrupted by SIGTERM", Kind.INTERRUPTED)
    started = loop.time()
    with pytest.raises(Interrupted, match="SIGTERM"):
        await control.bounded(asyncio.sleep(30))
    assert loop.time() - started < 2.0


async def test_abort_cuts_at_once_and_a_finished_job_returns_its_result():
    control = JobControl(grace_s=5.0)
    assert await control.bounded(asyncio.sleep(0, result="done")) == "done"

    async def in_flight_forever() -> None:
        control.flights.begin()
        await asyncio.sleep(30)

    loop = asyncio.get_running_loop()
    loop.call_later(0.05, control.request_stop, "interrupted by SIGINT", Kind.INTERRUPTED)
    loop.call_later(0.1, control.abort)  # a second signal: no grace
    started = loop.time()
    with pytest.raises(Interrupted):
        await control.bounded(in_flight_forever())
    assert loop.time() - started < 2.0
