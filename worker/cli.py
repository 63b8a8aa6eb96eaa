"""The command line: parse, dispatch, lock, signals, finish, and the only map to exit codes.

Everything else says how a job ended with a :class:`~worker.errors.Kind`; :data:`EXIT_CODES`
turns a kind into the process exit code (README, "Outcomes and exit codes"):

0 every selected run ended well (or nothing to do); 1 some failed; 2 usage or config error
(before any network call); 3 authentication or permission failure; 4 refused by a safety guard
or another job's lock; 5 interrupted, deadline or retry budget reached; 6 the API answered
something unusable or could not be reached (or a bug: an internal error).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from worker import __version__, signals
from worker.commands import check, explain
from worker.config import BY_STATUS, Settings, load_settings, require_basis, split_by_status
from worker.control import JobControl, new_job_id, run_loop
from worker.errors import ConfigError, Kind, WorkerError
from worker.job import Job, JobDeps
from worker.lock import job_lock
from worker.logs import (
    Redactor,
    bind_job,
    configure_logging,
    is_terminal,
    url_secrets,
)
from worker.metrics import push_metrics, sample_of, write_metrics_file
from worker.models import JobResult, RunRecord
from worker.notify import build_payload, post_webhook, should_notify
from worker.options import UnknownCommand, given_flags, normalise, parse
from worker.progress import Progress, progress_for
from worker.report import (
    build_header,
    counts,
    failed_ids,
    report_chunks,
    run_lines,
    verdict,
    write_report,
)
from worker.screen import ask, render
from worker.secrets import env_secrets

log = structlog.get_logger("worker.cli")

EXIT_CODES: dict[Kind, int] = {
    Kind.OK: 0, Kind.FAILED: 1, Kind.CONFIG: 2, Kind.AUTH: 3, Kind.GUARD: 4,
    Kind.INTERRUPTED: 5, Kind.UNUSABLE: 6,
}
SUMMARY_LEVELS: dict[Kind, int] = {
    Kind.OK: logging.INFO, Kind.FAILED: logging.WARNING, Kind.GUARD: logging.WARNING,
    Kind.INTERRUPTED: logging.WARNING,
}  # every other kind: error


def _on_demand(module: str) -> Callable[..., Kind]:
    """The ``main`` of a command that brings the emulator (and aiohttp's server) in: ``demo``
    and ``emulator`` load it when asked for, so no job pays for it at start-up (the one module
    loaded on demand; tests/test_layout.py checks ``import worker.cli`` stays free of it)."""
    main: Callable[..., Kind] = importlib.import_module(module).main
    return main


def exit_code_of(ended: Kind | WorkerError | None) -> int:
    """The exit code of a kind, or of an error by its kind; None is success."""
    if ended is None:
        return 0
    return EXIT_CODES[ended if isinstance(ended, Kind) else ended.kind]


# ---------------------------------------------------------------- parsing


def flags_from(ns: argparse.Namespace) -> dict[str, Any]:
    """Flags given on the command line, by key name; ``--older-than S=D`` goes per status."""
    flags = given_flags(ns)
    plain, by_status = split_by_status(flags.pop("filters.older_than", None) or ())
    if plain:
        flags["filters.older_than"] = plain[-1]
    if by_status:
        flags[BY_STATUS] = by_status
    return flags


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zuora-reaper`` console script; returns the exit code."""
    try:
        args = normalise(sys.argv[1:] if argv is None else argv)
    except UnknownCommand as exc:
        print(f"zuora-reaper: {exc}", file=sys.stderr)
        return exit_code_of(Kind.CONFIG)
    try:
        if args[0] == "emulator":
            return exit_code_of(_on_demand("worker.emulator.cli")(args[1:]))
        if args[0] == "demo":
            return exit_code_of(_on_demand("worker.commands.demo")(args[1:], exit_code_of))
        ns = parse(args)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code or 0)
    except ConfigError as exc:
        print(f"zuora-reaper {args[0]}: config error: {exc}", file=sys.stderr)
        return exit_code_of(exc)
    try:
        settings = load_settings(ns.command, flags_from(ns), os.environ, ns.config)
        require_basis(settings)
    except ConfigError as exc:
        message = Redactor(env_secrets(os.environ)).scrub(str(exc))
        print(f"zuora-reaper: config error: {message}", file=sys.stderr)
        return exit_code_of(exc)
    return execute(settings)


# ---------------------------------------------------------------- running a job command


def execute(settings: Settings) -> int:
    """Run ``settings.command`` and return the process exit code. Nothing it prints is
    scrubbed as text: secrets were scrubbed where foreign text entered (``worker.logs``)."""
    out = settings.output
    configure_logging(out.log_format, out.log_level, secrets=job_secrets(settings))
    return _execute(settings)


def _execute(settings: Settings) -> int:
    job_id = new_job_id() if settings.command in ("plan", "run") else None
    bind_job(job_id=job_id, target=settings.target.base_url, target_id=settings.identity.key,
             mode=settings.command, version=__version__)
    if settings.command == "explain":
        print(explain.render_explain(settings))
        return 0
    if settings.command == "check":
        return exit_code_of(run_loop(check.run_check(settings, exit_code_of)))
    log.info("job.start", command=settings.command, identity=settings.identity.describe(),
             environment=settings.target.environment, auth=settings.target.auth,
             dry_run=settings.dry_run)
    with signals.restored():
        try:
            with job_lock(settings) if not settings.dry_run else contextlib.nullcontext():
                result = run_loop(_run_with_signals(settings, job_id))
        except WorkerError as exc:  # the lock is held by another job
            print(f"zuora-reaper: {exc}", file=sys.stderr)
            return exit_code_of(exc)
        return finish(settings, result)


def job_secrets(settings: Settings) -> list[str]:
    """Every secret known before the job starts: credentials, proxy and webhook credentials
    (the access tokens are added as they are received)."""
    return [*settings.credentials.secrets(), *settings.network.secrets(),
            *url_secrets(settings.output.notify_webhook)]


# ---------------------------------------------------------------- signals


async def _run_with_signals(settings: Settings, job_id: str | None = None) -> JobResult:
    control = JobControl(settings.pacing.deadline, job_id)
    progress = progress_for(settings)
    job = Job(settings, JobDeps(control=control, on_selected=progress.selected,
                                on_done=progress.finished, on_page=progress.page,
                                confirm=_confirm_for(settings, progress, control)))
    loop = asyncio.get_running_loop()
    hooked = signals.install(loop, signals.stopper(control))
    try:
        await job.run()
    finally:
        progress.close()
        if hooked:
            signals.hand_over(loop)
    return job.result


def _confirm_for(settings: Settings, progress: Progress,
                 control: JobControl) -> Callable[[list[RunRecord]], Awaitable[bool]] | None:
    """On a terminal, ``run`` asks before it cancels (unless --yes); off one it never asks."""
    asks = settings.command == "run" and not settings.run.yes
    if not (asks and is_terminal(sys.stdin) and is_terminal(sys.stderr)):
        return None

    async def confirm(records: list[RunRecord]) -> bool:
        progress.erase()  # the question gets the screen's last line
        return await _answer(records, control.clock.now())  # ages as the selection read them

    return confirm


async def _answer(records: list[RunRecord], now: datetime) -> bool:
    """Ask on the loop's executor, whose daemon threads (``control.run_loop``) do not keep the
    process alive when a signal stops the job while the question waits."""
    def read() -> bool:
        try:
            return ask(records, now, sys.stdin, sys.stderr)
        except (OSError, ValueError):  # the terminal went away: no answer is a no
            return False

    return await asyncio.get_running_loop().run_in_executor(None, read)


# ---------------------------------------------------------------- finishing


def finish(settings: Settings, result: JobResult) -> int:
    """Write the report, print the output, log the summary, publish; return the exit code.

    The exit code and reason are settled before anything shows them, so stdout, the report,
    the log summary, the metrics and the webhook all carry the same ones.
    """
    result.settle_unattempted()
    kind, doc = _report(settings, result)
    code = exit_code_of(kind)
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
            sys.stdout.writelines(report_chunks(doc, run_lines(result), one_line=True))
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


def _report(settings: Settings, result: JobResult) -> tuple[Kind, dict[str, Any]]:
    """How the job ended and its report document, written to ``--report-file`` when asked,
    for every job that started (also one that listed nothing: the previous job's report must
    not stand for this one). A job that went well but whose report could not be written ends
    FAILED, and the document says so."""
    kind, reason = verdict(result)
    doc = _document(settings, result, kind, reason)
    path = settings.output.report_file
    if not path:
        return kind, doc
    if not _save_report(path, doc, result) and kind is Kind.OK:
        kind, reason = Kind.FAILED, "the report file could not be written"
        doc = _document(settings, result, kind, reason)
    return kind, doc


def _document(settings: Settings, result: JobResult, kind: Kind,
              reason: str | None) -> dict[str, Any]:
    """The report header with the exit code and its reason."""
    return build_header(settings, result, exit_code_of(kind), reason)


def _save_report(path: str, doc: dict[str, Any], result: JobResult) -> bool:
    """Write the report atomically; when that fails the previous file is left whole."""
    try:
        write_report(path, doc, run_lines(result))
    except OSError as exc:
        log.error("report.write_failed", path=path, error=str(exc))
        print(f"zuora-reaper: could not write the report to {path}: {exc}", file=sys.stderr)
        return False
    return True


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
