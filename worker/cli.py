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
import dataclasses
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from worker import __version__, signals
from worker.commands import check, explain
from worker.config import BY_STATUS, Settings, load_settings, require_basis, split_by_status
from worker.control import JobControl, new_job_id, run_loop
from worker.errors import ConfigError, Kind, WorkerError
from worker.fallback import settings_despite
from worker.finish import finish, finish_unstarted
from worker.job import Job, JobDeps
from worker.lock import job_lock
from worker.logs import (
    Redactor,
    bind_job,
    configure_logging,
    is_terminal,
    url_secrets,
)
from worker.memory import Memory
from worker.models import JobResult, RunRecord
from worker.options import UnknownCommand, command_args, given_flags, normalise, parse
from worker.progress import Progress, progress_for
from worker.screen import ask
from worker.secrets import env_secrets
from worker.state.location import state_secrets
from worker.state.store import Store, open_for

log = structlog.get_logger("worker.cli")

EXIT_CODES: dict[Kind, int] = {
    Kind.OK: 0, Kind.FAILED: 1, Kind.CONFIG: 2, Kind.AUTH: 3, Kind.GUARD: 4,
    Kind.INTERRUPTED: 5, Kind.UNUSABLE: 6,
}


def _on_demand(module: str) -> Callable[..., Kind]:
    """The ``main`` of a command no job needs: ``demo`` and ``emulator`` (they bring the
    emulator and aiohttp's server in), ``spare`` and ``history``; loaded when asked for, so no
    job pays for them at start-up (tests/test_layout.py checks ``import worker.cli`` stays
    free of the emulator)."""
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
    settings: Settings | None = None
    try:
        settings = load_settings(ns.command, flags_from(ns), os.environ, ns.config)
        settings = dataclasses.replace(settings, args=command_args(ns))
        require_basis(settings)
    except ConfigError as exc:
        return config_failed(ns, settings, exc)
    return execute(settings)


def config_failed(ns: argparse.Namespace, settings: Settings | None, exc: ConfigError) -> int:
    """Exit 2: said on stderr, and for ``plan`` and ``run`` also on the outputs the settings
    name usably (``worker.fallback``): the summary line, --output json and the metrics."""
    message = Redactor(env_secrets(os.environ)).scrub(str(exc))
    error = ConfigError(exc.key, message.removeprefix(f"{exc.key}: "))
    if ns.command in ("plan", "run") and settings is None:
        settings = settings_despite(ns.command, flags_from(ns), os.environ, ns.config, exc)
    if settings is None or ns.command not in ("plan", "run"):
        print(f"zuora-reaper: config error: {message}", file=sys.stderr)
        return exit_code_of(error)
    job_id = start_logging(settings)
    assert job_id is not None  # plan and run have one
    return finish_unstarted(settings, error, job_id, exit_code_of)


# ---------------------------------------------------------------- running a job command


def start_logging(settings: Settings) -> str | None:
    """Configure logging for ``settings`` and bind the job's fields to every line; return the
    job id (plan and run have one)."""
    out = settings.output
    configure_logging(out.log_format, out.log_level, secrets=job_secrets(settings))
    job_id = new_job_id() if settings.command in ("plan", "run") else None
    bind_job(job_id=job_id, target=settings.target.base_url, target_id=settings.identity.key,
             mode=settings.command, version=__version__)
    return job_id


def execute(settings: Settings) -> int:
    """Run ``settings.command`` and return the process exit code. Nothing it prints is
    scrubbed as text: secrets were scrubbed where foreign text entered (``worker.logs``)."""
    job_id = start_logging(settings)
    if settings.command == "explain":
        print(explain.render_explain(settings))
        return 0
    if settings.command == "check":
        return exit_code_of(run_loop(check.run_check(settings, exit_code_of)))
    if settings.command in ("spare", "history"):
        return exit_code_of(_on_demand(f"worker.commands.{settings.command}")(settings))
    log.info("job.start", command=settings.command, identity=settings.identity.describe(),
             environment=settings.target.environment, auth=settings.target.auth,
             dry_run=settings.dry_run)
    with signals.restored(), contextlib.ExitStack() as stack:
        try:
            store = open_for(settings, os.environ)
            if store is not None:
                stack.callback(store.close)
            _single_flight(stack, settings, store)
            memory = Memory(store, settings, datetime.now(UTC)) if store else None
        except WorkerError as exc:  # a state store refused, or another job holds the lock
            return finish_unstarted(settings, exc, job_id or "", exit_code_of)
        result = run_loop(_run_with_signals(settings, job_id, memory))
        return finish(settings, result, exit_code_of, store=store)


def _single_flight(stack: contextlib.ExitStack, settings: Settings, store: Store | None) -> None:
    """``run``'s locks: the lock file (every job on this host, whatever its store), and a
    PostgreSQL advisory lock when the state is there (every host and pod of the fleet);
    ``plan`` cancels nothing and takes none."""
    if settings.dry_run:
        return
    stack.enter_context(job_lock(settings))
    if store is not None and store.is_postgresql:
        stack.enter_context(store.lock(settings.identity.key, settings.identity.describe()))


def job_secrets(settings: Settings) -> list[str]:
    """Every secret known before the job starts: credentials, proxy and webhook credentials
    (the access tokens are added as they are received)."""
    return [*settings.credentials.secrets(), *settings.network.secrets(),
            *url_secrets(settings.output.notify_webhook), *state_secrets(settings.state.url)]


# ---------------------------------------------------------------- signals


async def _run_with_signals(settings: Settings, job_id: str | None = None,
                            memory: Memory | None = None) -> JobResult:
    control = JobControl(settings.pacing.deadline, job_id)
    progress = progress_for(settings)
    job = Job(settings, JobDeps(control=control, on_selected=progress.selected,
                                on_done=progress.finished, on_page=progress.page,
                                confirm=_confirm_for(settings, progress, control),
                                memory=memory))
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
