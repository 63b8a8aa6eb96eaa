"""The promise of memory across jobs as an invariant (Hypothesis): over any sequence of jobs,
runs that come and go and change, spares and notices, every cancel satisfies a plain
predicate computed from what the jobs saw (not from the store), and no run gets two notices.

The jobs are simulated on a clock of their own (``worker.memory`` takes the job's times); the
store is a real SQLite file, written and read by the code the CLI runs.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import examples

from worker.config import load_settings
from worker.memory import Memory, confirm_notices, record_job
from worker.models import JobResult, Outcome, ReportRun, RunRecord
from worker.state.location import resolve
from worker.state.store import Spare, open_store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RUNS = ("r0", "r1", "r2", "r3")
STATUSES = ("STARTED", "QUERYDATA", "PROCESSINGDATA")
ENV = {"ZUORA_CLIENT_ID": "id", "ZUORA_CLIENT_SECRET": "secret"}

# per job: the gap since the previous one, and per run: absent (None) or (status, updatedOn)
job_st = st.tuples(st.sampled_from([1.0, 5.0, 30.0, 40.0, 120.0, 500.0, 700.0]),
                   st.tuples(*[st.none() | st.tuples(st.sampled_from(STATUSES),
                                                     st.integers(0, 2))
                               for _ in RUNS]))
spare_st = st.tuples(st.integers(0, 7), st.sampled_from(RUNS),
                     st.sampled_from([3.0, 60.0, 1000.0]))


@dataclass
class Seen:
    """What the simulation itself observed (the oracle), never read from the store."""

    sightings: dict[str, list[tuple[float, tuple[str, int]]]] = field(default_factory=dict)
    notices: dict[str, float] = field(default_factory=dict)  # run -> when the notice was given
    # run -> (from, until): the latest spare replaces an earlier one (spare again to shorten)
    spares: dict[str, tuple[float, float]] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)


def _run(run_id: str, state: tuple[str, int]) -> ReportRun:
    status, updated = state
    return ReportRun(run_id, "rep", "Detail", status, T0 - timedelta(days=1),
                     T0 + timedelta(seconds=updated), "a@example.com")


def _stalled_since(seen: Seen, run_id: str, state: tuple[str, int]) -> float | None:
    """When the run's current state was first seen, if an earlier sighting saw it (the
    unbroken stretch of sightings ending now); None at a first sighting of that state."""
    history = seen.sightings.get(run_id, [])
    since = None
    for moment, was in reversed(history):
        if was != state:
            break
        since = moment
    return since


def _may_cancel(seen: Seen, run_id: str, state: tuple[str, int], start: float, now: float,
                stalled_for: float | None, notice: float | None) -> bool:
    """The plain predicate: not spared at the job's start; stalled for ``stalled_for`` across
    earlier jobs; noticed at least ``notice`` before the job started."""
    since, until = seen.spares.get(run_id, (0.0, 0.0))
    if since <= start < until:
        return False
    if stalled_for is not None:
        since = _stalled_since(seen, run_id, state)
        if since is None or now - since < stalled_for:
            return False
    return notice is None or (run_id in seen.notices and start >= seen.notices[run_id] + notice)


@functools.cache
def _template() -> str:
    folder = tempfile.mkdtemp(prefix="reaper-state-template-")
    path = str(Path(folder) / "state.db")
    open_store(resolve(path, {})).close()
    return path


@settings(max_examples=examples(40, 400), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(jobs=st.lists(job_st, min_size=1, max_size=8),
       stalled_for=st.sampled_from([None, 30.0, 500.0]),
       notice=st.sampled_from([None, 30.0, 500.0]),
       spares=st.lists(spare_st, max_size=3))
def test_every_cancel_satisfies_the_predicate(jobs, stalled_for, notice, spares) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "state.db")
        shutil.copyfile(_template(), path)  # migrated once: an example costs no migration
        flags = {"target.base_url": "https://rest.zuora.com", "filters.older_than": "1h",
                 "state.url": path}
        if stalled_for is not None:
            flags["filters.stalled_for"] = f"{stalled_for:g}s"
        if notice is not None:
            flags["safety.notice"] = f"{notice:g}s"
        config = load_settings("run", flags, ENV, None)
        store = open_store(resolve(path, {}))
        try:
            _simulate(store, config, jobs, spares, stalled_for, notice)
        finally:
            store.close()


def _simulate(store, config, jobs, spares, stalled_for, notice) -> None:
    seen, clock = Seen(), 0.0
    for index, (gap, states) in enumerate(jobs):
        clock += gap
        # binary fractions: the oracle's offsets and the store's epoch seconds subtract
        # exactly alike, so a window met to the last bit is met on both sides
        start, look, end = clock, clock + 0.125, clock + 0.5
        for at, run_id, length in spares:
            if at == index:
                epoch = T0.timestamp() + start
                store.add_spares([Spare(config.identity.key, run_id, epoch + length, "me",
                                        None, epoch)])
                seen.spares[run_id] = (start, start + length)
        memory = Memory(store, config, T0 + timedelta(seconds=start))
        result = JobResult(mode="run", started_at=T0 + timedelta(seconds=start),
                           job_id=f"job-{index}")
        listed = [(run_id, state) for run_id, state in zip(RUNS, states, strict=True)
                  if state is not None and run_id not in seen.cancelled]
        memory.recall(_run(run_id, state) for run_id, state in listed)
        for run_id, state in listed:
            rec = RunRecord(_run(run_id, state), run_id, 1, True, "selected")
            memory.judge(rec, T0 + timedelta(seconds=look))
            if rec.selected:
                assert _may_cancel(seen, run_id, state, start, look, stalled_for, notice), (
                    run_id, index)
                rec.settle(Outcome.CANCELLED)
                seen.cancelled.add(run_id)
            if rec.reason == "noticed":  # what the job does once the guard let it
                rec.settle(Outcome.NOTICED)
                assert run_id not in seen.notices, f"{run_id} noticed twice"
                seen.notices[run_id] = end
            result.records[run_id] = rec
        result.finished_at = T0 + timedelta(seconds=end)
        record_job(store, config, result, 0, now=T0 + timedelta(seconds=end))
        confirm_notices(store, config, result, now=T0 + timedelta(seconds=end))  # sent
        for run_id, state in listed:
            seen.sightings.setdefault(run_id, []).append((look, state))


def test_the_predicate_is_not_vacuous() -> None:
    """The same simulation without memory's rules would break the predicate: a run selected
    at its first sighting, with --stalled-for, may not be cancelled."""
    assert not _may_cancel(Seen(), "r0", ("STARTED", 0), 10.0, 10.1, 30.0, None)
    assert not _may_cancel(Seen(), "r0", ("STARTED", 0), 10.0, 10.1, None, 30.0)
    spared = Seen(spares={"r0": (0.0, 100.0)})
    assert not _may_cancel(spared, "r0", ("STARTED", 0), 10.0, 10.1, None, None)
