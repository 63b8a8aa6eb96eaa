"""One job: list, select, guard, cancel, repeat until nothing new is selected; never raises.

``plan`` and ``run`` share every step and differ only in whether ``cancel_all`` is called.
With ``--ids-file`` the listing is replaced by one GET per id (one pass); with ``--plan`` a
selected run not named by the plan is kept with reason ``not_in_plan``; ``plan --plan-out``
writes the selection for a later ``run --plan`` (``worker.planfile``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

import structlog

from worker.cancel import cancel_all, reconcile
from worker.client import ApiClient, connect
from worker.config import Settings
from worker.control import JobControl
from worker.errors import GuardRefused, InternalError, Interrupted, WorkerError
from worker.listing import LOOKAHEAD, columns_for, fetch_runs, iter_pages, read_ids
from worker.memory import Memory
from worker.models import TERMINAL_STATUSES, JobResult, Outcome, ReportRun, RunRecord
from worker.planfile import Plan, check_options, load_plan, write_plan
from worker.retry import RetryPolicy
from worker.selection import (
    CHANGED,
    CONFLICTING,
    Sighting,
    Verdict,
    guard_max_cancel,
    judge,
    missing_field_warnings,
    unknown_field_warnings,
    unmatched_exclusions,
)

log = structlog.get_logger("worker.job")


@dataclass
class JobDeps:
    """What callers inject: the clock, the retry policy, stdin, the stop switch, callbacks."""

    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    policy: RetryPolicy | None = None
    on_done: Callable[[RunRecord], None] | None = None
    on_selected: Callable[[int], None] | None = None
    on_page: Callable[[int, int], None] | None = None  # (pages listed, runs listed so far)
    control: JobControl | None = None  # the caller's, so it can stop the job (signals)
    # Asked before each pass's cancels with the runs about to be cancelled; False refuses.
    confirm: Callable[[list[RunRecord]], Awaitable[bool]] | None = None
    stdin: TextIO | None = None  # read by --ids-file - (default: sys.stdin)
    memory: Memory | None = None  # the state store's view of this target (worker.memory)


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
    job = Job(settings, deps or JobDeps())
    await job.run()
    return job.result


class Job:
    """One job's moving parts: list (or fetch ids) -> judge -> plan filter -> guard -> act.

    Create it in the running event loop. ``result`` exists from the start, so a job cut at a
    stop (the grace period ran out, or a second signal) still reports every outcome set.
    """

    def __init__(self, settings: Settings, deps: JobDeps) -> None:
        self.settings, self.deps = settings, deps
        self.control = deps.control or JobControl(settings.pacing.deadline, now=deps.now)
        self.result = JobResult(mode="plan" if settings.dry_run else "run",
                                started_at=deps.now(), job_id=self.control.job_id,
                                counters=self.control.counters)
        self.inputs = JobInputs()
        self.terminal: set[str] = set()  # ids listed in a terminal status
        self.live: set[str] = set()  # ids listed in another status
        # (id, report id, report type, owner) of every sighting; an id seen with two is changed
        self.sightings: dict[str, Sighting] = {}
        self.changed: dict[str, set[Sighting]] = {}

    async def run(self) -> None:
        """Run to the end; a WorkerError (or a bug) ends up in ``result.error``. A stop
        (deadline, signal, budget) cuts the work after the grace period (``JobControl``)."""
        with contextlib.suppress(Interrupted):  # cut at a stop: the result holds every
            await self.control.bounded(self._work())  # outcome set so far
        self.ended()

    async def _work(self) -> None:
        try:  # on the loop's executor: --ids-file may be a pipe that never ends
            loop = asyncio.get_running_loop()
            self.inputs = await loop.run_in_executor(None, prepare, self.settings, self.deps)
            async with connect(self.settings, self.control, policy=self.deps.policy) as client:
                try:
                    await self.passes(client)
                    self._warn_about_selection()
                    self.hand_off(self.control)
                finally:
                    self.result.token_requests = client.auth.token_requests
                    self.result.pacing = client.pacer.summary()
        except WorkerError as exc:
            if not (isinstance(exc, Interrupted) and self.control.is_stopping()):
                self.result.error = exc  # an Interrupted of the stop itself is the stop's
        except Exception as exc:  # a bug: still report what is known (the caller writes it)
            self.result.error = InternalError.of(exc)
            log.error("job.internal_error", error=str(self.result.error),
                      traceback=self.result.error.trace)

    def ended(self) -> None:
        """Record why the job stopped (when it was told to), the clock ages were read on, and
        when it finished."""
        control, result = self.control, self.result
        if control.stop_reason and result.error is None:
            result.stop_reason, result.stop_kind = control.stop_reason, control.stop_kind
        result.clock = control.clock.summary()
        result.age_skew_s = (control.clock.now() - self.deps.now()).total_seconds()
        skewed = control.clock.warning()
        if skewed and skewed not in result.warnings:
            result.warnings.append(skewed)
            log.warning("clock.skewed", skew_s=result.clock["skew_s"], warning=skewed)
        result.finished_at = self.deps.now()

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
            if not await self._act(client, fresh):  # notices are given even with no cancel
                return

    async def _act(self, client: ApiClient, fresh: list[RunRecord]) -> bool:
        """Guard (the runs to cancel and those to notice), give the notices, then cancel (run)
        or mark would_cancel (plan); True when another pass helps."""
        notices = self._pending_notices()
        if not fresh and not notices:
            return False
        self._guard(fresh, notices)
        if not self.settings.dry_run:
            for rec in notices:
                rec.settle(Outcome.NOTICED)
        if not fresh:
            return False
        if self.settings.dry_run:
            for rec in fresh:
                rec.settle(Outcome.WOULD_CANCEL)
            return False
        await self._confirmed(fresh)
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
                           lookahead=min(LOOKAHEAD, self.settings.pacing.concurrency),
                           columns=columns_for(selection))
        async with contextlib.aclosing(pages):
            async for page in pages:
                for note in page.notes:
                    self._warn("listing.paging", note)
                await self._recall(page.runs)
                anonymous = self._select_page(page.runs, fresh, pass_no, anonymous)
                if self.deps.on_page:
                    self.deps.on_page(page.number, len(self.result.records))
        return list(fresh.values())

    def _select_page(self, runs: list[ReportRun], fresh: dict[str, RunRecord], pass_no: int,
                     anonymous: int) -> int:
        """Record and judge one page's new runs; return the running count of id-less runs."""
        records = self.result.records
        now = self.control.clock.now()
        for run in runs:
            anonymous += run.id is None
            key = run.id if run.id is not None else f"#unparseable-{anonymous}"
            if run.id is not None:
                self._note_sighting(run, fresh)
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
        await self._recall([item.run for item in fetched])
        now = self.control.clock.now()
        for item in fetched:
            rec = (RunRecord(item.run, item.requested, 1, False, item.reason) if item.reason
                   else self._judge(item.run, item.requested, 1, now))
            self.result.records[item.requested] = rec
        log.info("ids.selected", requested=len(self.inputs.ids), fetched=len(fetched),
                 selected=sum(1 for r in self.result.records.values() if r.selected))
        return [r for r in self.result.records.values() if r.selected]

    async def _recall(self, runs: list[ReportRun]) -> None:
        """What the state store knows of these runs, read on the loop's executor: a store
        that is slow to answer never holds the stop (deadline, signal) back."""
        if self.deps.memory is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self.deps.memory.recall, runs)

    def _note_sighting(self, run: ReportRun, fresh: dict[str, RunRecord]) -> None:
        """A run listed both in a terminal status and in another one, or with another report,
        report type or owner, on any page of any pass, is never cancelled in this job (an
        exclusion judged on one sighting could be passed on the other): a selection not yet
        acted on is withdrawn."""
        assert run.id is not None
        (self.terminal if run.status in TERMINAL_STATUSES else self.live).add(run.id)
        seen = (run.id, run.report_id, run.report_type, run.created_by)
        if self.sightings.setdefault(run.id, seen) != seen:
            self.changed.setdefault(run.id, set()).add(seen)
        reason = self._conflict(run.id)
        if reason is not None:
            rec = fresh.pop(run.id, None)
            if rec is not None and rec.outcome is None:
                rec.withdraw(reason)

    def _conflict(self, run_id: str) -> str | None:
        if run_id in self.terminal and run_id in self.live:
            return CONFLICTING
        return CHANGED if run_id in self.changed else None

    def _judge(self, run: ReportRun, key: str, pass_no: int, now: datetime) -> RunRecord:
        verdict = judge(run, self.settings.selection, now)
        plan = self.inputs.plan
        conflict = self._conflict(run.id) if run.id is not None else None
        if conflict is not None:
            verdict = Verdict.no(conflict)
        if verdict.selected and plan is not None and run.id not in plan.run_ids:
            verdict = Verdict.no("not_in_plan")
        rec = RunRecord(run, key, pass_no, verdict.selected, verdict.reason, verdict.rule)
        if self.deps.memory is not None:
            self.deps.memory.judge(rec, now)
        return rec

    async def _confirmed(self, fresh: list[RunRecord]) -> None:
        """Ask the person at the terminal (when the caller asks); a no cancels nothing."""
        if self.deps.confirm is None or await self.deps.confirm(fresh):
            return
        for rec in fresh:
            rec.settle(Outcome.NOT_ATTEMPTED)
        raise GuardRefused(f"not confirmed: cancelled none of the {len(fresh)} selected runs "
                           "(answer yes to go on, or pass --yes)")

    def _pending_notices(self) -> list[RunRecord]:
        """Runs memory holds back for a notice not yet given (``would_notice`` in a plan)."""
        reason = "would_notice" if self.settings.dry_run else "noticed"
        return [r for r in self.result.records.values()
                if r.reason == reason and r.outcome is None]

    def _guard(self, fresh: list[RunRecord], notices: list[RunRecord]) -> None:
        """The max-cancel guard over every run selected so far and every run to notice (a
        notice announces a cancel the guard must allow): a plan warns, a run refuses (the
        fresh runs are not attempted, and no notice is given)."""
        records = self.result.records.values()  # notices given by earlier passes count too
        selected = sum(1 for r in records
                       if r.selected or r.outcome is Outcome.NOTICED) + len(notices)
        try:
            warning = guard_max_cancel(selected, self.settings.max_cancel, self.settings.dry_run)
        except GuardRefused:
            for rec in fresh:
                rec.settle(Outcome.NOT_ATTEMPTED)
            for rec in notices:
                rec.withdraw("would_notice")
                rec.note = "no notice given: the job refused over --max-cancel"
            raise
        if warning:
            self.result.warnings.append(warning)
            log.warning("plan.over_max_cancel", selected=selected,
                        max_cancel=self.settings.max_cancel)

    def _warn_about_selection(self) -> None:
        """After a whole listing, warnings in the report and on the console: an exclusion that
        matched no listed run, and runs left alone because a field a filter or exclusion names
        was unknown."""
        records = self.result.records.values()
        if not records:
            return
        seen = {*(_fields(rec.run) for rec in records), *self.sightings.values(),
                *(s for variants in self.changed.values() for s in variants)}
        for warning in unmatched_exclusions(self.settings.selection, seen):
            self._warn("selection.exclusion_unmatched", warning)
        for warning in unknown_field_warnings(rec.reason for rec in records):
            self._warn("selection.unknown_fields", warning)
        for warning in missing_field_warnings(self.settings.selection,
                                              (rec.run for rec in records)):
            self._warn("selection.field_missing", warning)
        noticed = sum(1 for rec in records if rec.outcome is Outcome.NOTICED)
        if noticed and not self.settings.output.notify_webhook:
            self._warn("notice.no_webhook", f"{noticed} run(s) got a notice, but no "
                       "--notify-webhook is set to send it: it is only in the report and the "
                       "state store")

    def _warn(self, event: str, warning: str) -> None:
        """A warning in the report (once, however many passes or pages say it) and on the
        console."""
        if warning not in self.result.warnings:
            self.result.warnings.append(warning)
            log.warning(event, warning=warning)

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


def _fields(run: ReportRun) -> Sighting:
    return (run.id, run.report_id, run.report_type, run.created_by)
