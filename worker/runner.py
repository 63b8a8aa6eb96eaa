"""Run a job command end to end: logging, lock, signals, the job, report, output, exit code."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from worker import __version__
from worker.config import Settings
from worker.control import JobControl, new_job_id
from worker.errors import WorkerError
from worker.job import JobDeps, JobResult, finalize_not_attempted, run_job
from worker.lock import job_lock
from worker.logs import (
    REDACTOR,
    bind_job,
    configure_logging,
    redact_data,
    scrubbed_std_streams,
    summary_level,
)
from worker.outcome import exit_status
from worker.progress import progress_for
from worker.publish import publish
from worker.report import build_header, counts, report_chunks, run_lines, write_report
from worker.secrets import url_secrets
from worker.summary import render_table, summary_line

log = structlog.get_logger("worker.runner")
GRACE_SECONDS = 5.0  # how long in-flight calls may take to finish once the job stops
SETTLE_SECONDS = 0.05


def execute(settings: Settings) -> int:
    """Run ``settings.command`` and return the process exit code; everything it prints goes
    through the one redactor."""
    out = settings.output
    configure_logging(out.log_format, out.log_level, secrets=job_secrets(settings))
    with scrubbed_std_streams():
        return _execute(settings)


def _execute(settings: Settings) -> int:
    job_id = new_job_id() if settings.command in ("plan", "run") else None
    bind_job(job_id=job_id, target=settings.target.base_url, mode=settings.command,
             version=__version__)
    if settings.command == "explain":
        from worker.explain import render_explain
        print(render_explain(settings))
        return 0
    if settings.command == "check":
        from worker.check import run_check
        return asyncio.run(run_check(settings))
    log.info("job.start", command=settings.command, target=settings.target.base_url,
             environment=settings.target.environment, auth=settings.target.auth,
             dry_run=settings.dry_run)
    try:
        with job_lock(settings):
            result = asyncio.run(_run_with_signals(settings, job_id))
    except WorkerError as exc:  # the lock is held by another job
        print(f"zuora-reaper: {exc}", file=sys.stderr)
        return exc.exit_code
    return finish(settings, result)


async def _run_with_signals(settings: Settings, job_id: str | None = None) -> JobResult:
    control = JobControl(settings.pacing.deadline, job_id)
    result = JobResult(mode="plan" if settings.dry_run else "run", started_at=datetime.now(UTC))
    progress = progress_for(settings)
    deps = JobDeps(control=control, result=result, on_selected=progress.selected,
                   on_done=progress.finished)
    loop = asyncio.get_running_loop()
    job = asyncio.ensure_future(run_job(settings, deps))
    job.add_done_callback(lambda _: progress.close())

    received: list[str] = []

    def on_signal(name: str) -> None:
        received.append(name)
        if len(received) > 1:
            log.warning("job.interrupted_again", signal=name)
            job.cancel()  # a second signal: do not wait for in-flight calls
            return
        log.warning("job.interrupted", signal=name, grace_s=GRACE_SECONDS)
        control.request_stop(f"interrupted by {name}", 5)

    handled = _install_signals(loop, on_signal)
    watcher = loop.create_task(_cancel_when_stopped(job, control))
    try:
        return await _await_job(job, result, control)
    finally:
        watcher.cancel()
        for sig in handled:
            loop.remove_signal_handler(sig)


async def _cancel_when_stopped(job: asyncio.Future[JobResult], control: JobControl) -> None:
    """Once the job is told to stop, let in-flight calls finish (up to the grace period), then
    cancel what is left: runs still waiting for a pacer slot or a backoff were never sent."""
    await control.stopped.wait()
    try:
        async with asyncio.timeout(GRACE_SECONDS):
            while True:
                await control.wait_idle()
                await asyncio.sleep(SETTLE_SECONDS)  # let answered calls record their outcome
                if control.in_flight == 0:
                    break
    except TimeoutError:
        log.warning("job.grace_expired", in_flight=control.in_flight)
    job.cancel()


def _install_signals(loop: asyncio.AbstractEventLoop,
                     handler: Callable[[str], None]) -> list[signal.Signals]:
    """SIGTERM and SIGINT stop the job; off the main thread (tests) there is nothing to hook."""
    if threading.current_thread() is not threading.main_thread():
        return []
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handler, sig.name)
    return [signal.SIGTERM, signal.SIGINT]


async def _await_job(job: asyncio.Future[JobResult], result: JobResult,
                     control: JobControl) -> JobResult:
    try:
        return await job
    except asyncio.CancelledError:
        if not control.is_stopping():
            raise
        # Cancelled by _cancel_when_stopped: the result object still holds every outcome set
        # so far (cancel_one records a run cancelled in flight as failed, unsent as
        # not_attempted).
        result.stop_reason = control.stop_reason or "interrupted"
        result.stop_exit = control.stop_exit or 5
        result.finished_at = datetime.now(UTC)
        return result


def job_secrets(settings: Settings) -> list[str]:
    """Every secret known before the job starts: credentials, proxy and webhook credentials
    (the access tokens are added as they are received)."""
    return [*settings.credentials.secrets(), *settings.network.secrets(),
            *url_secrets(settings.output.notify_webhook)]


def finish(settings: Settings, result: JobResult) -> int:
    """Write the report, print the output, log the summary; return the exit code."""
    finalize_not_attempted(result)
    code, reason = exit_status(result)
    reason = REDACTOR.scrub(reason) if reason is not None else None
    doc = redact_data(build_header(settings, result, code, reason))
    report_file = settings.output.report_file
    if report_file and (result.listed_anything or code == 0) \
            and not _save_report(report_file, doc, result):
        code, reason = code or 1, reason or "the report file could not be written"
    if settings.output.output == "json":
        sys.stdout.writelines(report_chunks(doc, run_lines(result), one_line=True))
    else:
        render_table(result, datetime.now(UTC), sys.stdout)
        print(summary_line(result))
    log.log(summary_level(code), "job.summary", exit_code=code, reason=reason,
            mode=result.mode, passes=result.passes, requests=result.counters.requests,
            rate_limited=dict(result.counters.limited), retries=result.counters.retries,
            token_requests=result.token_requests, **counts(result))
    publish(settings, result, code, doc)
    if code:
        print(f"zuora-reaper: exit {code}: {reason}", file=sys.stderr)
    return code


def _save_report(path: str, doc: dict[str, Any], result: JobResult) -> bool:
    """Write the report atomically; when that fails the previous file is left whole."""
    try:
        write_report(path, doc, run_lines(result))
    except OSError as exc:
        log.error("report.write_failed", path=path, error=str(exc))
        print(f"zuora-reaper: could not write the report to {path}: {exc}", file=sys.stderr)
        return False
    return True
