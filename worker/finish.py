"""How a job's ending is shown: the report file, the result on stdout, the ``job.summary``
log line, the metrics and the webhook, all carrying one exit code and reason. Also for a job
that ended before it ran (another job holds the lock): it still tells its scheduler, on every
output configured, but leaves the report file to the job that runs."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from worker import signals
from worker.config import Settings
from worker.control import run_loop
from worker.errors import Kind, StateError, WorkerError
from worker.memory import confirm_notices, record_job, unnotice
from worker.metrics import push_metrics, sample_of, write_metrics_file
from worker.models import JobResult
from worker.notify import build_payload, notice_payload, notices, post_webhook, should_notify
from worker.report import (
    build_header,
    counts,
    failed_ids,
    run_lines,
    stdout_lines,
    verdict,
    write_report,
)
from worker.screen import render
from worker.state.store import Store

log = structlog.get_logger("worker.finish")

SUMMARY_LEVELS: dict[Kind, int] = {
    Kind.OK: logging.INFO, Kind.FAILED: logging.WARNING, Kind.GUARD: logging.WARNING,
    Kind.INTERRUPTED: logging.WARNING,
}  # every other kind: error


CodeOf = Callable[[Kind], int]  # the CLI's table of exit codes (only the CLI maps kinds)

def finish(settings: Settings, result: JobResult, code_of: CodeOf, *,
           started: bool = True, store: Store | None = None) -> int:
    """Write the report, print the output, log the summary, publish; return the exit code.
    A job that never ``started`` writes no report file and prints no result table (only the
    ``--output json`` summary): it has neither.

    The exit code and reason are settled before anything shows them, so stdout, the report,
    the log summary, the metrics and the webhook all carry the same ones.
    """
    result.settle_unattempted()
    if store is not None and started:
        _remember(store, settings, result, code_of)
    kind, doc = _report(settings, result, code_of, write=started)
    code = code_of(kind)
    if started or settings.output.output == "json":
        _print_result(settings, result, doc)
    log.log(SUMMARY_LEVELS.get(kind, logging.ERROR), "job.summary", exit_code=code,
            reason=doc["exit_reason"], mode=result.mode, passes=result.passes,
            requests=result.counters.requests, rate_limited=dict(result.counters.limited),
            retries=result.counters.retries, token_requests=result.token_requests,
            **counts(result))
    publish(settings, result, code, doc)
    signals.report_late()
    if code:
        print(f"zuora-reaper: exit {code}: {doc['exit_reason']}", file=sys.stderr)
    return code


def _print_result(settings: Settings, result: JobResult, doc: dict[str, Any]) -> None:
    """The result on stdout. A reader that went away (``plan | head``) is not the job's
    failure: the report, summary, metrics and webhook still follow, with the job's own code."""
    try:
        if settings.output.output == "json":
            sys.stdout.writelines(stdout_lines(doc, result))
        else:
            render(result, result.age_clock(datetime.now(UTC)), sys.stdout, doc["selection"])
        sys.stdout.flush()
    except BrokenPipeError:
        log.warning("output.stdout_closed")
        _silence_stdout()


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # not a real file (tests capture it)
        pass
    finally:
        os.close(devnull)


def finish_unstarted(settings: Settings, error: WorkerError, job_id: str, code_of: CodeOf
                     ) -> int:
    """A job that ended before it ran (its settings refused, or another job holds the lock):
    its summary line, its ``--output json`` summary, its metrics and its webhook carry the
    exit code; the report file (the running job's, or the last one's) is left alone."""
    now = datetime.now(UTC)
    result = JobResult(mode="plan" if settings.dry_run else "run", started_at=now,
                       finished_at=now, error=error, job_id=job_id)
    return finish(settings, result, code_of, started=False)


def _remember(store: Store, settings: Settings, result: JobResult, code_of: CodeOf) -> None:
    """Record the job in the state store before anything shows it, then send the notices
    (``--notice``): a notice counts only once it is both recorded and sent. A job that could
    not be recorded gives no notice; a notice the webhook refused is withdrawn from the store.
    Either is said on every output, and the job is not "all well" (exit 1)."""
    try:
        record_job(store, settings, result, code_of(verdict(result)[0]))
    except StateError as exc:
        unnotice(result)
        _memory_failed(result, f"the job was not recorded in the state store: {exc}")
        return
    given = notices(result)
    if not given:
        return
    hook = settings.output.notify_webhook
    if hook and not run_loop(post_webhook(hook, notice_payload(settings, result, given),
                                          attempt_timeout=NOTICE_ATTEMPT_S,
                                          network=settings.network)):
        _withdraw(store, settings, result, code_of, [n["run_id"] for n in given])
        return
    try:
        confirm_notices(store, settings, result)
    except StateError as exc:  # unconfirmed notices count as none: the next job repeats them
        unnotice(result)
        _memory_failed(result, f"{len(given)} notice(s) were sent but could not be confirmed "
                               f"in the state: {exc}; the next job sends them again")


def _withdraw(store: Store, settings: Settings, result: JobResult, code_of: CodeOf,
              ids: list[str]) -> None:
    """The webhook refused the notices: none counts (an unconfirmed notice is none even if
    the withdrawal fails too); the job ends not well."""
    unnotice(result)
    message = (f"{len(ids)} notice(s) could not be sent (the webhook refused or did not "
               "answer): none was given, the next job tries again")
    _memory_failed(result, message)
    try:
        store.withdraw_notices(settings.identity.key, result.job_id, ids,
                               code_of(verdict(result)[0]))
    except StateError as exc:
        log.warning("state.withdraw_failed", error=str(exc))


def _memory_failed(result: JobResult, message: str) -> None:
    result.memory_error = message
    result.warnings.append(message)
    log.error("state.memory_failed", error=message)


def _report(settings: Settings, result: JobResult, code_of: CodeOf, *,
            write: bool) -> tuple[Kind, dict[str, Any]]:
    """How the job ended and its report document, written to ``--report-file`` when asked,
    for every job that started (also one that listed nothing: the previous job's report must
    not stand for this one). A job that went well but whose report could not be written ends
    FAILED, and the document says so."""
    kind, reason = verdict(result)
    doc = build_header(settings, result, code_of(kind), reason)
    path = settings.output.report_file
    if not (path and write):
        return kind, doc
    if not _save_report(path, doc, result) and kind is Kind.OK:
        kind, reason = Kind.FAILED, "the report file could not be written"
        doc = build_header(settings, result, code_of(kind), reason)
    return kind, doc


def _save_report(path: str, doc: dict[str, Any], result: JobResult) -> bool:
    """Write the report atomically; when that fails the previous file is left whole."""
    try:
        write_report(path, doc, run_lines(result))
    except OSError as exc:
        log.error("report.write_failed", path=path, error=str(exc))
        print(f"zuora-reaper: could not write the report to {path}: {exc}", file=sys.stderr)
        return False
    return True


NOTICE_ATTEMPT_S = 2.5  # two attempts: the notices never hold a job's end for long
PUBLISH_SECONDS = 10.0  # the Pushgateway and the webhook together, after the job's work


def publish(settings: Settings, result: JobResult, code: int, doc: dict[str, Any]) -> None:
    """Metrics file, Pushgateway, webhook, as the output settings ask; failures are only
    logged and never change the exit code. The two network calls share ``PUBLISH_SECONDS``,
    so a job ends by its deadline + the grace period + that (well inside a Kubernetes pod's
    30 s termination grace), however the gateway and the webhook hang."""
    out = settings.output
    notify = bool(out.notify_webhook) and should_notify(doc)
    if not (out.metrics_file or out.pushgateway or notify):
        return
    sample = sample_of(settings, result, code)
    if out.metrics_file:
        try:
            write_metrics_file(out.metrics_file, sample)
        except OSError as exc:
            log.warning("metrics.write_failed", path=out.metrics_file, error=str(exc))
    until = time.monotonic() + PUBLISH_SECONDS
    if out.pushgateway:
        push_metrics(out.pushgateway, sample, timeout=PUBLISH_SECONDS / 2 - 1.0,
                     network=settings.network)
    left = until - time.monotonic()
    if out.notify_webhook and notify and left > 1.0:  # the first test narrows the type
        payload = build_payload(doc, failed_ids(result), out.job_name, sample.duration_s)
        run_loop(post_webhook(out.notify_webhook, payload, attempt_timeout=(left - 0.5) / 2,
                              network=settings.network))
    elif out.notify_webhook and notify:
        log.warning("notify.skipped", reason="the time to publish was spent")


