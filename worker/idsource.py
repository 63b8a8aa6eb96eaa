"""Explicit run ids (``--ids-file``): read them, then fetch each run with a GET.

Fetched runs go through the same ``judge()`` and guards as listed runs, so an id naming a
finished, excluded or too-young run is never cancelled. An id the API does not know (404) is
kept with reason ``not_found`` and is never selected.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

import structlog

from worker.client import ApiClient
from worker.errors import (
    ApiUnreachable,
    AuthError,
    ConfigError,
    TransientError,
    WorkerError,
)
from worker.files import IDS_CAP, read_capped
from worker.models import ReportRun, check_run_id, describe, parse_run, run_path, run_payload
from worker.pool import drain

log = structlog.get_logger("worker.idsource")

KEY = "run.ids_file"


@dataclass(frozen=True, slots=True)
class Fetched:
    """One requested id: the run as read, and a reason when it could not be judged."""

    requested: str
    run: ReportRun
    reason: str | None = None  # "not_found" / "fetch_refused"; None means judge it


def read_ids(path: str, stdin: TextIO | None = None) -> list[str]:
    """Read run ids, one per line (``-`` is stdin); blanks and ``#`` comments are skipped.

    Duplicates are dropped (the first occurrence keeps its place).

    Raises:
        ConfigError: the file cannot be read, or a line holds more than one token.
    """
    if path == "-":
        try:
            text = (stdin or sys.stdin).read(IDS_CAP + 1)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(KEY, f"cannot read ids from standard input: {exc}") from exc
        if len(text) > IDS_CAP:
            raise ConfigError(KEY, f"standard input holds more than {IDS_CAP // 2**20} MiB "
                                   "of ids; refusing to read it")
    else:
        text = read_capped(KEY, path, IDS_CAP, "ids file")
    ids: dict[str, None] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        token = line.split("#", 1)[0].strip()
        if not token:
            continue
        problem = check_run_id(token)[1] if len(token.split()) == 1 else "more than one token"
        if problem:
            raise ConfigError(KEY, f"{path} line {number}: expected one run id per line, "
                                   f"got {token[:60]!r} ({problem})")
        ids[token] = None
    return list(ids)


async def fetch_runs(client: ApiClient, ids: list[str], workers: int) -> list[Fetched]:
    """GET every id (paced and retried by the client); return them in the order given.

    Raises:
        AuthError: a GET was refused with 403 (no permission to read runs).
        ApiUnreachable: a GET still failed after its retries (nothing is cancelled then).
    """
    results: dict[str, Fetched] = {}
    errors: list[WorkerError] = []

    async def handle(run_id: str) -> None:
        try:
            results[run_id] = await fetch_one(client, run_id)
        except WorkerError as exc:  # kept, so the caller sees it unwrapped
            errors.append(exc)

    await drain(ids, workers, handle, lambda: bool(errors) or client.control.is_stopping())
    if errors:
        raise errors[0]
    return [results[i] for i in ids if i in results]


async def fetch_one(client: ApiClient, run_id: str) -> Fetched:
    """GET one run and read it; a 404 or another refusal is a Fetched with a reason."""
    try:
        resp = await client.request("GET", run_path(run_id))
    except TransientError as exc:
        raise ApiUnreachable(f"GET of run {run_id} failed after retries: {exc}",
                             status=exc.status) from exc
    if resp.status == 404:
        return Fetched(run_id, _blank(run_id, "not found (404)"), "not_found")
    if resp.status == 403:
        raise AuthError(f"GET of run {run_id} refused (403): {describe(resp)}; the "
                        "API user needs read access to report runs", status=403)
    body = resp.body
    if not 200 <= resp.status < 300 or not isinstance(body, Mapping) \
            or body.get("success") is False:
        detail = f"HTTP {resp.status}: {describe(resp)}"
        return Fetched(run_id, _blank(run_id, detail), "fetch_refused")
    run = parse_run(run_payload(body))
    if not run.parseable:  # keep the id that was asked for, never cancel it
        run = _blank(run_id, f"GET answer unreadable: {run.problem}")
    elif run.id != run_id:  # never act on a run other than the one asked for
        run = _blank(run_id, f"GET answered run {run.id!r}")
    return Fetched(run_id, run)


def _blank(run_id: str, problem: str) -> ReportRun:
    return ReportRun(run_id, None, None, None, None, None, None, problem=problem)
