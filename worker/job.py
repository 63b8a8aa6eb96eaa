"""One job: list, select, guard, cancel, repeat until nothing new is selected; never raises.

``plan`` and ``run`` share every step and differ only in whether ``cancel_all`` is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from worker.auth import Auth, LegacyAuth, OAuth
from worker.cancel import cancel_all
from worker.client import ApiClient, RetryPolicy
from worker.config import Settings
from worker.control import Counters, JobControl
from worker.errors import GuardRefused, WorkerError
from worker.http import Transport
from worker.listing import iter_pages
from worker.models import Outcome
from worker.pacer import Pacer, PacerConfig, RetryBudget
from worker.records import RunRecord
from worker.selection import judge

log = structlog.get_logger("worker.job")


@dataclass
class JobResult:
    """Everything the report, the summary and the exit code are made from."""

    mode: str
    started_at: datetime
    finished_at: datetime | None = None
    records: dict[str, RunRecord] = field(default_factory=dict)
    passes: int = 0
    error: WorkerError | None = None
    stop_reason: str | None = None
    stop_exit: int = 0
    counters: Counters = field(default_factory=Counters)
    token_requests: int = 0
    job_id: str = ""

    @property
    def listed_anything(self) -> bool:
        return bool(self.records)


@dataclass
class JobDeps:
    """What tests inject: the clock, the retry policy, and a per-run callback."""

    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    policy: RetryPolicy | None = None
    on_done: Callable[[RunRecord], None] | None = None
    on_selected: Callable[[int], None] | None = None
    control: JobControl | None = None
    result: JobResult | None = None  # owned by the caller, so a cancelled job keeps its state


async def run_job(settings: Settings, deps: JobDeps | None = None) -> JobResult:
    """Run one job to the end and return its result; errors are kept in ``result.error``."""
    deps = deps or JobDeps()
    result = deps.result or JobResult(mode="plan" if settings.dry_run else "run",
                                      started_at=deps.now())
    control = deps.control or JobControl(settings.pacing.deadline)
    result.job_id, result.counters = control.job_id, control.counters
    pacing = settings.pacing
    async with Transport(limit=pacing.concurrency, attempt_timeout=pacing.attempt_timeout) as tr:
        auth = make_auth(settings, tr)
        pacer = Pacer(PacerConfig(rate=pacing.rate, concurrency=pacing.concurrency,
                                  quota_share=pacing.quota_share))
        client = ApiClient(settings.target.api_root, tr, auth, pacer,
                           RetryBudget(capacity=pacing.retry_budget), control,
                           deps.policy or RetryPolicy(max_attempts=pacing.max_attempts))
        try:
            await _passes(settings, client, result, deps)
        except WorkerError as exc:
            result.error = exc
        finally:
            result.token_requests = auth.token_requests
    if control.stop_reason and result.error is None:
        result.stop_reason, result.stop_exit = control.stop_reason, control.stop_exit
    result.finished_at = deps.now()
    return result


def make_auth(settings: Settings, transport: Transport) -> Auth:
    if settings.target.auth == "legacy":
        return LegacyAuth(settings.credentials)
    return OAuth(settings.target, settings.credentials, transport)


async def _passes(settings: Settings, client: ApiClient, result: JobResult,
                  deps: JobDeps) -> None:
    passes = 1 if settings.dry_run else settings.listing.max_passes
    for pass_no in range(1, passes + 1):
        if client.control.is_stopping():
            return
        result.passes = pass_no
        fresh = await _list_and_select(settings, client, result, pass_no, deps)
        log.info("pass.selected", pass_no=pass_no, listed=len(result.records),
                 selected=len(fresh))
        if not fresh:
            return
        _guard_max_cancel(settings, result, fresh)
        if settings.dry_run:
            for rec in fresh:
                rec.outcome = Outcome.WOULD_CANCEL
            return
        if deps.on_selected:
            deps.on_selected(len(fresh))
        await cancel_all(client, fresh, workers=settings.pacing.concurrency * 4,
                         on_done=deps.on_done)


async def _list_and_select(settings: Settings, client: ApiClient, result: JobResult,
                           pass_no: int, deps: JobDeps) -> list[RunRecord]:
    """List every page; record new runs; return the runs selected for the first time."""
    fresh: dict[str, RunRecord] = {}
    selection = settings.selection
    async for page in iter_pages(client, selection.filters.statuses, settings.listing):
        now = deps.now()
        for run in page.runs:
            key = run.id if run.id is not None else f"#unparseable-{len(result.records)}"
            known = result.records.get(key)
            if known is not None and (known.selected or key in fresh):
                continue  # already handled by this job (or seen twice in this pass)
            verdict = judge(run, selection, now)
            rec = RunRecord(run, key, pass_no, verdict.selected, verdict.reason, verdict.rule)
            result.records[key] = rec
            if rec.selected:
                fresh[key] = rec
    return list(fresh.values())


def _guard_max_cancel(settings: Settings, result: JobResult, fresh: list[RunRecord]) -> None:
    total = sum(1 for r in result.records.values() if r.selected)
    if settings.dry_run or total <= settings.max_cancel:
        return
    for rec in fresh:
        rec.outcome = Outcome.NOT_ATTEMPTED
    raise GuardRefused(
        f"{total} runs matched, more than --max-cancel {settings.max_cancel}: cancelled none "
        f"of them. Check the filters with 'zuora-reaper plan', then raise the cap with "
        f"--max-cancel {total} (or safety.max_cancel / ZUORA_REAPER_MAX_CANCEL)")


def finalize_not_attempted(result: JobResult) -> None:
    """Give every selected run without an outcome ``not_attempted`` (the job stopped first)."""
    for rec in result.records.values():
        if rec.selected and rec.outcome is None:
            rec.outcome = Outcome.NOT_ATTEMPTED

