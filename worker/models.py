"""The domain: report runs, the record a job keeps of each, their outcomes, and the job result.

Plain data with no I/O. API bodies become :class:`ReportRun` in ``worker.api_bodies``; the job
(``worker.job``) fills a :class:`JobResult`; the report, metrics and exit code are made from it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from worker.errors import Kind, WorkerError

IN_PROGRESS = ("STARTED", "QUERYDATA", "PROCESSINGDATA")
CANCELLED_STATUSES = frozenset({"CANCELLED", "CANCELED"})
FINISHED_STATUSES = frozenset({"COMPLETED", "ERROR", "INVALID"})
TERMINAL_STATUSES = CANCELLED_STATUSES | FINISHED_STATUSES
PHASES = ("listing", "cancelling")


class Outcome(StrEnum):
    """How a selected run ended. Every selected run gets exactly one."""

    CANCELLED = "cancelled"
    ALREADY_CANCELLED = "already_cancelled"
    ALREADY_FINISHED = "already_finished"
    NOT_FOUND = "not_found"
    FAILED = "failed"
    WOULD_CANCEL = "would_cancel"
    NOT_ATTEMPTED = "not_attempted"
    STILL_RUNNING = "still_running"  # a DELETE without a definitive answer; a GET saw it running
    UNKNOWN = "unknown"  # a DELETE without a definitive answer, and no GET could tell
    NOTICED = "noticed"  # --notice: warned instead of cancelled (the run is not selected)


UNSUCCESSFUL = frozenset({Outcome.FAILED, Outcome.STILL_RUNNING, Outcome.UNKNOWN})
"""Outcomes of a selected run that was not (or not surely) cancelled: exit code 1."""


@dataclass(frozen=True, slots=True)
class ReportRun:
    """One report run from a listing or a GET. ``problem`` is set when it cannot be validated."""

    id: str | None
    report_id: str | None
    report_type: str | None
    status: str | None
    started_on: datetime | None
    updated_on: datetime | None
    created_by: str | None
    problem: str | None = None
    report_name: str | None = None  # read when the server sends it (not a documented column)

    @property
    def parseable(self) -> bool:
        """True when id, status and startedOn were all read; only such runs may be cancelled."""
        return self.problem is None


@dataclass(slots=True)
class RunRecord:
    """One listed run. ``outcome`` stays None while the run is not selected; it is written
    only through :meth:`settle`, by the step that knows it."""

    run: ReportRun
    key: str
    pass_no: int
    selected: bool
    reason: str
    rule: str | None = None
    outcome: Outcome | None = None
    attempts: int = 0
    error: str | None = None
    latency_s: float | None = None
    unsure: bool = False  # a DELETE went out without a definitive answer: reconcile it
    reconciled: bool = False  # the outcome was read back with a GET after the cancels
    refused: bool = False  # the last answer refused the cancel (an earlier one was lost)
    # memory across jobs (worker.memory): when it was judged, how long its status and
    # updatedOn had not changed, a spare's or notice's words, when a notice lets it be cancelled
    seen_at: datetime | None = None
    unchanged_s: float | None = None
    note: str | None = None
    cancel_after: datetime | None = None

    def settle(self, outcome: Outcome, error: str | None = None, *, unsure: bool = False,
               reconciled: bool = False, refused: bool = False) -> None:
        """Give the run its outcome (and the error that explains it)."""
        self.outcome, self.error = outcome, error
        self.unsure = self.unsure or unsure
        self.reconciled, self.refused = reconciled, refused

    def settle_none(self) -> None:
        """Take an outcome back (a notice that could not be given)."""
        self.outcome, self.error = None, None

    def withdraw(self, reason: str) -> None:
        """Unselect a run not yet acted on (e.g. listed in two statuses)."""
        self.selected, self.reason, self.rule = False, reason, None

    def age_s(self, now: datetime) -> float | None:
        if self.run.started_on is None:
            return None
        return (now - self.run.started_on).total_seconds()


@dataclass
class Counters:
    """Request-level counters for the summary, the report and the metrics."""

    by_class: Counter[str] = field(default_factory=Counter)  # answers, by status class
    limited: Counter[str] = field(default_factory=Counter)  # "rate" / "concurrency"
    retries: int = 0
    network_errors: int = 0
    latency_sum: float = 0.0

    def count_status(self, status: int, elapsed: float) -> None:
        self.by_class[f"{status // 100}xx"] += 1
        self.latency_sum += elapsed

    @property
    def requests(self) -> int:
        """Requests answered (network errors are counted apart)."""
        return sum(self.by_class.values())

    @property
    def mean_latency(self) -> float:
        return self.latency_sum / self.requests if self.requests else 0.0


@dataclass
class JobResult:
    """Everything the report, the summary and the exit code are made from.

    ``error`` is what ended the job early; ``stop_reason``/``stop_kind`` say why it stopped
    dispatching (a signal, the deadline, the retry budget, a systemic refusal).
    """

    mode: str
    started_at: datetime
    finished_at: datetime | None = None
    records: dict[str, RunRecord] = field(default_factory=dict)
    passes: int = 0
    error: WorkerError | None = None
    stop_reason: str | None = None
    stop_kind: Kind | None = None
    counters: Counters = field(default_factory=Counters)
    token_requests: int = 0
    job_id: str = ""
    warnings: list[str] = field(default_factory=list)
    pacing: dict[str, Any] = field(default_factory=dict)  # ``Pacer.summary()``, for the report
    clock: dict[str, Any] = field(default_factory=dict)  # ``ServerClock.summary()``
    memory_error: str | None = None  # not recorded in the state store, or notices not sent
    age_skew_s: float = 0.0  # added to this host's clock where ages are read (worker.clock)
    phase_seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(PHASES, 0.0))  # wall time per phase, all passes

    @property
    def listed_anything(self) -> bool:
        return bool(self.records)

    def age_clock(self, moment: datetime) -> datetime:
        """``moment`` (this host's clock) on the clock run ages were read on."""
        return moment + timedelta(seconds=self.age_skew_s)

    def settle_unattempted(self) -> None:
        """Give every selected run without an outcome ``not_attempted`` (the job stopped)."""
        for rec in self.records.values():
            if rec.selected and rec.outcome is None:
                rec.settle(Outcome.NOT_ATTEMPTED)
