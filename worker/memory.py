"""Memory across jobs, the job's side: how long a run has not changed, a person's spare, a
notice before the cancel; and what a job leaves in the state store (``worker.state``).

A run the pure selection (``worker.selection``) picked is then, in this order:

- ``spared`` while a spare (``zuora-reaper spare``) is in force: never selected;
- with ``--stalled-for D``: kept unless its status and ``updatedOn`` are what an earlier job
  saw for at least D (``first_sighting``: never seen before; ``not_stalled``: it moved, or not
  long enough; ``no_updated_on``: the server did not say, and a guess would be silent);
- with ``--notice D``: a run without a notice gets one instead of a cancel (outcome
  ``noticed``; a plan shows ``would_notice``); a noticed run is cancelled only by a job that
  starts at least D after the notice was recorded (``notice_pending`` before). A notice is sent
  once per run.

Times are this host's clock: a notice, a spare and a sighting are all stamped by it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from worker.config import Settings
from worker.durations import format_duration
from worker.errors import StateError, StateUnavailable
from worker.models import UNSUCCESSFUL, JobResult, Outcome, ReportRun, RunRecord
from worker.report import filters_doc, iso
from worker.state.store import Known, Spare, Store

STUCK_REASONS = frozenset({"spared", "noticed", "notice_pending", "would_notice",
                           "notice_deferred", "notice_unsent"})
"""Reasons of runs the selection matched but memory held back: they were stuck all the same."""
MAX_NOTICES = 500  # per job: one webhook message carries them all; the rest wait a job


def stamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


class Memory:
    """One job's view of the state store for one target."""

    def __init__(self, store: Store, settings: Settings, started_at: datetime) -> None:
        self.store, self.settings = store, settings
        self.target = settings.identity.key
        self.started = started_at.timestamp()
        try:
            self.spared = {s.run_id: s for s in store.spares(self.target, self.started)}
        except StateError as exc:  # before any request: the store cannot be used
            raise StateUnavailable(str(exc)) from exc
        self.known: dict[str, Known] = {}
        self.noticing: set[str] = set()  # runs this job decided to notice

    def recall(self, runs: Iterable[ReportRun]) -> None:
        """Read what the store knows of these runs (one page's) before they are judged."""
        self.known = self.store.recall(self.target, [r.id for r in runs if r.id is not None])

    def judge(self, rec: RunRecord, now: datetime) -> None:
        """Note what memory says of ``rec`` and hold it back when a spare, the stalled test
        or a notice says so (``now``: the clock the run's age was read on)."""
        run = rec.run
        known = self.known.get(run.id) if run.id is not None else None
        rec.seen_at = now
        rec.unchanged_s = unchanged_for(run, known, now)
        if not rec.selected or run.id is None:
            return
        spare = self.spared.get(run.id)
        if spare is not None:
            rec.withdraw("spared")
            rec.note = spare_note(spare)
            return
        stalled_for = self.settings.selection.stalled_for
        if stalled_for is not None:
            reason = stalled_miss(run, rec.unchanged_s, stalled_for)
            if reason is not None:
                rec.withdraw(reason)
                return
        if self.settings.selection.notice is not None:
            self._notice(rec, known)

    def _notice(self, rec: RunRecord, known: Known | None) -> None:
        """Hold back a run without a notice: ``noticed`` (the job gives the notice once the
        max-cancel guard let it, ``worker.job``), ``would_notice`` in a plan, and
        ``notice_deferred`` past ``MAX_NOTICES`` in one job."""
        notice = self.settings.selection.notice
        assert notice is not None
        if known is None or known.noticed_at is None or known.cancel_after is None:
            key = rec.run.id or rec.key
            full = key not in self.noticing and len(self.noticing) >= MAX_NOTICES
            if full and not self.settings.dry_run:
                rec.withdraw("notice_deferred")
                rec.note = f"over {MAX_NOTICES} notices in one job: a later job gives it"
                return
            self.noticing.add(key)
            rec.withdraw("would_notice" if self.settings.dry_run else "noticed")
            rec.cancel_after = datetime.now(UTC) + timedelta(seconds=notice)  # set on record
            rec.note = f"no notice yet: cancelled only {format_duration(notice)} after one"
            return
        due = datetime.fromtimestamp(known.cancel_after, UTC)
        rec.cancel_after = due
        noticed = iso(datetime.fromtimestamp(known.noticed_at, UTC))
        if self.started < known.cancel_after:
            rec.withdraw("notice_pending")
            rec.note = f"noticed at {noticed}; a job starting after {iso(due)} cancels it"
        else:
            rec.note = f"noticed at {noticed}"


def same_state(known: Known, status: str | None, updated_on: float | None) -> bool:
    """Whether a sighting shows the state ``known`` holds. A sighting without ``updatedOn``
    (a job that did not ask for it, a server that dropped it) is judged on the status alone:
    it cannot tell of a change, so it neither resets nor proves one."""
    if updated_on is None:
        return known.status == status
    return (known.status, known.updated_on) == (status, updated_on)


def unchanged_for(run: ReportRun, known: Known | None, now: datetime) -> float | None:
    """How long the run's status and ``updatedOn`` have been what they are, from the first
    sighting of that state by any job; 0 when they changed; None at a first sighting."""
    if known is None:
        return None
    if not same_state(known, run.status, stamp(run.updated_on)):
        return 0.0
    return max(0.0, now.timestamp() - known.state_since)


def stalled_miss(run: ReportRun, unchanged_s: float | None, stalled_for: float) -> str | None:
    """Why a run is not stalled for ``stalled_for`` (None when it is)."""
    if run.updated_on is None:
        return "no_updated_on"
    if unchanged_s is None:
        return "first_sighting"
    return "not_stalled" if unchanged_s < stalled_for else None


def spare_note(spare: Spare) -> str:
    until = iso(datetime.fromtimestamp(spare.until, UTC))
    why = f": {spare.reason}" if spare.reason else ""
    return f"spared by {spare.by_user} until {until}{why}"


# ---------------------------------------------------------------- what a job leaves behind


def record_job(store: Store, settings: Settings, result: JobResult, exit_code: int,
               now: datetime | None = None) -> None:
    """Write the job, a sighting per listed run and the runs' state; stamp the notices given
    (``cancel_after`` counts from ``now``: the notice is recorded, then sent); and prune what
    is older than ``--keep``."""
    now = now or datetime.now(UTC)
    notice = settings.selection.notice or 0.0
    for rec in result.records.values():
        if rec.outcome is Outcome.NOTICED:
            rec.cancel_after = now + timedelta(seconds=notice)
    target = settings.identity.key
    store.record(job_row(settings, result, exit_code), sighting_rows(target, result),
                 now.timestamp(), prune_before=now.timestamp() - settings.state.keep)


def _text(value: str | None) -> str | None:
    """A server's text as a database keeps it: PostgreSQL refuses NUL in text (SQLite would
    keep it), so both store U+FFFD in its place."""
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value


def confirm_notices(store: Store, settings: Settings, result: JobResult,
                    now: datetime | None = None) -> None:
    """The job's notices were sent (or, without a webhook, are in the report): from now,
    a job starting ``--notice`` later may cancel those runs."""
    due = (now or datetime.now(UTC)) + timedelta(seconds=settings.selection.notice or 0.0)
    store.confirm_notices(settings.identity.key, result.job_id, due.timestamp())
    for rec in result.records.values():
        if rec.outcome is Outcome.NOTICED:
            rec.cancel_after = due


def unnotice(result: JobResult) -> None:
    """Take back the notices of a job that could not record or send them."""
    for rec in result.records.values():
        if rec.outcome is Outcome.NOTICED:
            rec.settle_none()
            rec.withdraw("notice_unsent")
            rec.note = "the notice could not be recorded or sent: a later job gives it"


def job_row(settings: Settings, result: JobResult, exit_code: int) -> dict[str, Any]:
    ident = settings.identity
    records = result.records.values()
    outcomes = [rec.outcome for rec in records]
    return {
        "job_id": result.job_id, "target": ident.key, "base_url": ident.base_url,
        "principal": ident.principal, "entity_id": ident.entity_id, "mode": result.mode,
        "started_at": result.started_at.timestamp(),
        "finished_at": stamp(result.finished_at), "exit_code": exit_code,
        "listed": len(result.records), "selected": sum(1 for r in records if r.selected),
        "cancelled": outcomes.count(Outcome.CANCELLED),
        "noticed": outcomes.count(Outcome.NOTICED),
        "spared": sum(1 for r in records if r.reason == "spared"),
        "failed": sum(1 for o in outcomes if o in UNSUCCESSFUL),
        "thresholds": orjson.dumps(filters_doc(settings)).decode(),
    }


def is_stuck(rec: RunRecord) -> bool:
    """Whether the selection matched the run (cancelled or not, spared, noticed...)."""
    return rec.selected or rec.outcome is not None or rec.reason in STUCK_REASONS


def sighting_rows(target: str, result: JobResult) -> Iterator[dict[str, Any]]:
    """One row per listed run with an id: what was seen, the verdict, the outcome."""
    fallback = result.age_clock(result.started_at)
    written: set[str] = set()
    for rec in result.records.values():
        run = rec.run
        if run.id is None or run.id in written:  # one sighting per run and job (an id asked
            continue  # for twice, under two spellings the server took as one)
        written.add(run.id)
        seen = rec.seen_at or fallback
        yield {
            "job_id": result.job_id, "target": target, "run_id": run.id,
            "seen_at": seen.timestamp(), "status": _text(run.status),
            "updated_on": stamp(run.updated_on), "started_on": stamp(run.started_on),
            "owner": _text(run.created_by), "report_id": _text(run.report_id),
            "report_name": _text(run.report_name), "report_type": _text(run.report_type),
            "reason": rec.reason[:40], "rule": _text(rec.rule),
            "outcome": rec.outcome.value if rec.outcome is not None else None,
            "stuck": is_stuck(rec), "age_s": rec.age_s(seen), "unchanged_s": rec.unchanged_s,
        }
