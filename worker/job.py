"""One job: list, select, guard, cancel, repeat until nothing new is selected; never raises.

``plan`` and ``run`` share every step and differ only in whether ``cancel_all`` is called.
With ``--ids-file`` the listing is replaced by one GET per id (one pass); with ``--plan`` a
selected run not named by the plan is kept with reason ``not_in_plan``; ``plan --plan-out``
writes the selection for a later ``run --plan`` (``worker.planfile``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

import structlog

from worker.auth import Auth, LegacyAuth, OAuth
from worker.cancel import cancel_all, reconcile
from worker.client import ApiClient, RetryPolicy
from worker.config import Settings
from worker.control import Counters, JobControl
from worker.errors import GuardRefused, InternalError, WorkerError
from worker.http import Transport
from worker.idsource import fetch_runs, read_ids
from worker.listing import LOOKAHEAD, iter_pages
from worker.models import TERMINAL_STATUSES, Outcome, ReportRun
from worker.pacer import Pacer, PacerConfig, RetryBudget
from worker.planfile import Plan, check_options, load_plan, write_plan
from worker.records import RunRecord
from worker.selection import Verdict, judge

log = structlog.get_logger("worker.job")
PHASES = ("listing", "cancelling")
CONFLICTING = "conflicting_status"  # listed in progress and in a terminal status by one job


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
    warnings: list[str] = field(default_factory=list)
    pacer: Pacer | None = None  # how pacing went, for the report
    phase_seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(PHASES, 0.0))  # wall time per phase, all passes

    @property
    def listed_anything(self) -> bool:
        return bool(self.records)


@dataclass
class JobDeps:
    """What tests inject: the clock, the retry policy, stdin, and per-run callbacks."""

    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    policy: RetryPolicy | None = None
    on_done: Callable[[RunRecord], None] | None = None
    on_selected: Callable[[int], None] | None = None
    control: JobControl | None = None
    result: JobResult | None = None  # owned by the caller, so a cancelled job keeps its state
    stdin: TextIO | None = None  # read by --ids-file - (default: sys.stdin)


@dataclass(frozen=True, slots=True)
class JobInputs:
    """What is read before any network call: explicit run ids and the plan to apply."""

    ids: list[str] | None = None
    plan: Plan | None = None


def prepare(settings: Settings, deps: JobDeps) -> JobInputs:
    """Check options and read --ids-file and --plan; raise ConfigError / GuardRefused."""
    check_options(settings)
    plan = load_plan(settings, deps.now())
    ids = read_ids(settings.run.ids_file, deps.stdin) if settings.run.ids_file else None
    if ids == []:
        log.warning("ids.empty", path=settings.run.ids_file)
    return JobInputs(ids=ids, plan=plan)


async def run_job(settings: Settings, deps: JobDeps | None = None) -> JobResult:
    """Run one job to the end and return its result; errors are kept in ``result.error``."""
    deps = deps or JobDeps()
    result = deps.result or JobResult(mode="plan" if settings.dry_run else "run",
                                      started_at=deps.now())
    control = deps.control or JobControl(settings.pacing.deadline)
    result.job_id, result.counters = control.job_id, control.counters
    try:
        inputs = prepare(settings, deps)
        await _with_client(settings, _Job(settings, result, deps, inputs), control)
    except WorkerError as exc:
        result.error = exc
    except Exception as exc:  # a bug: still report what is known (the caller writes it)
        result.error = InternalError.of(exc)
        log.error("job.internal_error", error=str(result.error), traceback=result.error.trace)
    if control.stop_reason and result.error is None:
        result.stop_reason, result.stop_exit = control.stop_reason, control.stop_exit
    result.finished_at = deps.now()
    return result


async def _with_client(settings: Settings, job: _Job, control: JobControl) -> None:
    pacing = settings.pacing
    async with Transport(limit=pacing.concurrency, attempt_timeout=pacing.attempt_timeout,
                         network=settings.network) as tr:
        auth = make_auth(settings, tr, control.track_id)
        pacer = Pacer(PacerConfig(rate=pacing.rate, concurrency=pacing.concurrency,
                                  quota_share=pacing.quota_share))
        job.result.pacer = pacer
        client = ApiClient(settings.target.api_root, tr, auth, pacer,
                           RetryBudget(capacity=pacing.retry_budget), control,
                           job.deps.policy or RetryPolicy(max_attempts=pacing.max_attempts))
        try:
            await job.passes(client)
            job.hand_off(client.control)
        except WorkerError as exc:
            job.result.error = exc
        finally:
            job.result.token_requests = auth.token_requests


def make_auth(settings: Settings, transport: Transport,
              track_id: Callable[[], str] | None = None) -> Auth:
    if settings.target.auth == "legacy":
        return LegacyAuth(settings.credentials)
    return OAuth(settings.target, settings.credentials, transport, track_id=track_id)


@dataclass
class _Job:
    """One job's moving parts: list (or fetch ids) -> judge -> plan filter -> guard -> act."""

    settings: Settings
    result: JobResult
    deps: JobDeps
    inputs: JobInputs
    terminal: set[str] = field(default_factory=set)  # ids listed in a terminal status
    live: set[str] = field(default_factory=set)  # ids listed in another status

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        """Add the wall time of the block to ``result.phase_seconds[name]``."""
        start = time.monotonic()
        try:
            yield
        finally:
            self.result.phase_seconds[name] += time.monotonic() - start

    async def passes(self, client: ApiClient) -> None:
        if self.inputs.ids is not None:  # explicit ids: one pass, no listing
            self.result.passes = 1
            with self._phase("listing"):
                fresh = await self._fetch_and_select(client)
            await self._act(client, fresh)
            return
        passes = 1 if self.settings.dry_run else self.settings.listing.max_passes
        for pass_no in range(1, passes + 1):
            if client.control.is_stopping():
                return
            self.result.passes = pass_no
            with self._phase("listing"):
                fresh = await self._list_and_select(client, pass_no)
            log.info("pass.selected", pass_no=pass_no, listed=len(self.result.records),
                     selected=len(fresh))
            if not fresh or not await self._act(client, fresh):
                return

    async def _act(self, client: ApiClient, fresh: list[RunRecord]) -> bool:
        """Guard, then cancel (run) or mark would_cancel (plan); True when another pass helps."""
        if not fresh:
            return False
        _guard_max_cancel(self.settings, self.result, fresh)
        if self.settings.dry_run:
            for rec in fresh:
                rec.outcome = Outcome.WOULD_CANCEL
            return False
        if self.deps.on_selected:
            self.deps.on_selected(len(fresh))
        workers = self.settings.pacing.concurrency * 4
        with self._phase("cancelling"):
            await cancel_all(client, fresh, workers=workers, on_done=self.deps.on_done)
            await reconcile(client, fresh, workers)
        return True

    async def _list_and_select(self, client: ApiClient, pass_no: int) -> list[RunRecord]:
        """List every page; record new runs; return the runs selected for the first time."""
        fresh: dict[str, RunRecord] = {}
        selection = self.settings.selection
        anonymous = 0  # id-less runs are keyed by their order, so each pass re-finds them
        pages = iter_pages(client, selection.filters.statuses, self.settings.listing,
                           lookahead=min(LOOKAHEAD, self.settings.pacing.concurrency))
        async with contextlib.aclosing(pages):
            async for page in pages:
                anonymous = self._select_page(page.runs, fresh, pass_no, anonymous)
        return list(fresh.values())

    def _select_page(self, runs: list[ReportRun], fresh: dict[str, RunRecord], pass_no: int,
                     anonymous: int) -> int:
        """Record and judge one page's new runs; return the running count of id-less runs."""
        records = self.result.records
        now = self.deps.now()
        for run in runs:
            anonymous += run.id is None
            key = run.id if run.id is not None else f"#unparseable-{anonymous}"
            if run.id is not None:
                self._note_status(run, fresh)
            known = records.get(key)
            if known is not None and (known.selected or key in fresh):
                continue  # already handled by this job (or seen twice in this pass)
            rec = self._judge(run, key, pass_no, now)
            records[key] = rec
            if rec.selected:
                fresh[key] = rec
        return anonymous

    async def _fetch_and_select(self, client: ApiClient) -> list[RunRecord]:
        """GET each explicit id, judge it like a listed run; return the selected ones."""
        assert self.inputs.ids is not None
        fetched = await fetch_runs(client, self.inputs.ids,
                                   workers=self.settings.pacing.concurrency * 4)
        now = self.deps.now()
        for item in fetched:
            rec = (RunRecord(item.run, item.requested, 1, False, item.reason) if item.reason
                   else self._judge(item.run, item.requested, 1, now))
            self.result.records[item.requested] = rec
        log.info("ids.selected", requested=len(self.inputs.ids), fetched=len(fetched),
                 selected=sum(1 for r in self.result.records.values() if r.selected))
        return [r for r in self.result.records.values() if r.selected]

    def _note_status(self, run: ReportRun, fresh: dict[str, RunRecord]) -> None:
        """A run listed both in a terminal status and in another one, on any page of any pass,
        is never cancelled in this job: a selection not yet acted on is withdrawn."""
        assert run.id is not None
        (self.terminal if run.status in TERMINAL_STATUSES else self.live).add(run.id)
        if self._conflicting(run.id):
            rec = fresh.pop(run.id, None)
            if rec is not None and rec.outcome is None:
                rec.selected, rec.reason, rec.rule = False, CONFLICTING, None

    def _conflicting(self, run_id: str) -> bool:
        return run_id in self.terminal and run_id in self.live

    def _judge(self, run: ReportRun, key: str, pass_no: int, now: datetime) -> RunRecord:
        verdict = judge(run, self.settings.selection, now)
        plan = self.inputs.plan
        if run.id is not None and self._conflicting(run.id):
            verdict = Verdict.no(CONFLICTING)
        if verdict.selected and plan is not None and run.id not in plan.run_ids:
            verdict = Verdict.no("not_in_plan")
        return RunRecord(run, key, pass_no, verdict.selected, verdict.reason, verdict.rule)

    def hand_off(self, control: JobControl) -> None:
        """Plan mode: write --plan-out (only after a complete, uninterrupted selection)."""
        plan = self.inputs.plan
        if plan is not None:
            seen = {r.run.id for r in self.result.records.values()}
            missing = sorted(plan.run_ids - seen)
            if missing:
                log.warning("plan.runs_not_listed", count=len(missing), run_ids=missing[:20])
        if not (self.settings.dry_run and self.settings.run.plan_out):
            return
        if control.is_stopping():
            log.warning("plan.not_written", path=self.settings.run.plan_out,
                        reason=control.stop_reason)
            return
        count = write_plan(self.settings, self.result.records.values(), self.deps.now())
        log.info("plan.written", path=self.settings.run.plan_out, runs=count)


def _guard_max_cancel(settings: Settings, result: JobResult, fresh: list[RunRecord]) -> None:
    total = sum(1 for r in result.records.values() if r.selected)
    if total <= settings.max_cancel:
        return
    if settings.dry_run:  # a plan cancels nothing, but must say that run would refuse
        result.warnings.append(
            f"run would refuse: {total} runs selected, more than --max-cancel "
            f"{settings.max_cancel}; raise it with --max-cancel {total} if the selection is right")
        log.warning("plan.over_max_cancel", selected=total, max_cancel=settings.max_cancel)
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

