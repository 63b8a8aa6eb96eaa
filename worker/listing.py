"""Where a job's runs come from: the listing, page by page until an empty page (strictly and
tolerantly at once), or explicit run ids (``--ids-file``), fetched with one GET each.

Fetched runs go through the same ``judge()`` and guards as listed runs, so an id naming a
finished, excluded or too-young run is never cancelled. An id the API does not know (404) is
kept with reason ``not_found`` and is never selected.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import structlog

from worker.api_bodies import (
    check_run_id,
    describe,
    describe_error,
    parse_run,
    run_path,
    run_payload,
)
from worker.client import ApiClient
from worker.config import Listing
from worker.errors import AuthError, ConfigError, UnusableResponse, WorkerError
from worker.files import IDS_CAP, read_capped
from worker.http import Response
from worker.models import ReportRun
from worker.pool import drain

log = structlog.get_logger("worker.listing")

LOOKAHEAD = 4  # listing pages requested ahead; bounded by the pacer like every call
# A listed run is ~400 bytes of JSON; a page's body may hold this much per run asked for (and
# the envelope) before it is refused unparsed: a page of a million tiny items is not a page.
BYTES_PER_RUN = 4096
ENVELOPE_BYTES = 65536

COLUMNS = ["id", "reportId", "reportName", "startedOn", "updatedOn", "reportType",
           "createdByUserProfile.username", "status"]


@dataclass(frozen=True, slots=True)
class Page:
    number: int
    runs: list[ReportRun]


def list_body(page: int, size: int) -> dict[str, object]:
    """The JSON body of one listing request (zuora-api.md §6.4, corrected)."""
    return {"columns": COLUMNS, "pagination": {"currentPage": page, "pageSize": size},
            "sort": [{"field": "startedOn", "direction": "asc", "priority": 0}]}


async def iter_pages(client: ApiClient, statuses: tuple[str, ...], listing: Listing,
                     lookahead: int = LOOKAHEAD) -> AsyncGenerator[Page, None]:
    """Yield pages in order until one comes back empty; raise when the page cap is passed.

    After a full page, up to ``lookahead`` pages are requested ahead (through the pacer, like
    every call), so a long listing costs about one page latency per ``lookahead`` pages. After
    a short page the end is near, so only the next page is asked for: a one-page listing costs
    two requests, as a serial one does, and spends no quota on guesses. A short page still does
    not end the listing (a server may cap the page size). Errors surface in page order:
    UnusableResponse for an unreadable body, ApiUnreachable when the API cannot be reached,
    AuthError on a 403. Close it with ``contextlib.aclosing`` so pages ahead are cancelled if
    the caller stops early.
    """
    params = [("status", s) for s in statuses]
    ahead: deque[tuple[int, asyncio.Task[Response]]] = deque()
    # --max-pages counts pages of runs: the empty page that ends the listing is one more
    upcoming = iter(range(1, listing.max_pages + 2))
    window = 1
    try:
        while True:
            for number in itertools.islice(upcoming, max(0, window - len(ahead))):
                ahead.append((number, asyncio.ensure_future(
                    fetch_page(client, params, number, listing.page_size))))
            number, task = ahead.popleft()
            items = page_items(await task, listing.list_items_field, number, listing.page_size)
            if not items:
                # Let pages requested past the end finish: they are already on the wire, and
                # their answers keep the job's request counts true to what the server saw.
                await asyncio.gather(*(t for _, t in ahead), return_exceptions=True)
                return
            if number > listing.max_pages:
                raise UnusableResponse(
                    f"listing passed the page cap of {listing.max_pages} pages without an "
                    "empty page; raise --max-pages if that is real")
            window = max(1, lookahead) if len(items) >= listing.page_size else 1
            log.debug("runs.page_fetched", page=number, items=len(items))
            yield Page(number, [parse_run(item) for item in items])
    finally:
        await _discard(task for _, task in ahead)


async def _discard(tasks: Iterable[asyncio.Task[Response]]) -> None:
    """Cancel pages requested ahead that are no longer wanted (error or early stop); reap them."""
    pending = list(tasks)
    for task in pending:
        task.cancel()  # a no-op on a finished task; gather still retrieves its exception
    await asyncio.gather(*pending, return_exceptions=True)


async def fetch_page(client: ApiClient, params: list[tuple[str, str]], number: int,
                     size: int) -> Response:
    """One listing page; AuthError on a 403, UnusableResponse on another non-2xx answer."""
    try:
        resp = await client.request("POST", "/reportruns", params=params,
                                    json_body=list_body(number, size), max_body=page_cap(size))
    except UnusableResponse as exc:
        if exc.code != "limit":
            raise
        raise UnusableResponse(f"listing page {number}: {exc}; a page of {size} runs takes "
                               f"at most {BYTES_PER_RUN // 1024} KiB a run", status=exc.status,
                               code=exc.code) from exc
    if resp.status == 403:
        raise AuthError(f"listing refused (403): {describe(resp)}; the API "
                             "user needs the Reporting API enabled and read access", status=403)
    if not 200 <= resp.status < 300:
        raise UnusableResponse(f"listing page {number} answered HTTP {resp.status}: "
                               f"{describe(resp)}", status=resp.status)
    return resp


def page_cap(size: int) -> int:
    """The most bytes a listing page of ``size`` runs may take (``BYTES_PER_RUN`` each)."""
    return size * BYTES_PER_RUN + ENVELOPE_BYTES


def page_items(resp: Response, field: str | None, number: int, size: int) -> list[object]:
    """The items of one listing page; UnusableResponse when it is not JSON, has no list, or
    holds more items than the ``size`` asked for (a server that ignores the page size cannot
    be paged safely, and a huge page is a hostile one)."""
    if not resp.is_json:
        raise UnusableResponse(f"listing page {number} is not JSON "
                               f"({resp.header('Content-Type')}): {resp.snippet}")
    try:
        items = extract_items(resp.body, field)
    except UnusableResponse as exc:
        raise UnusableResponse(f"listing page {number}: {exc}") from exc
    if len(items) > size:
        raise UnusableResponse(f"listing page {number} holds {len(items)} runs, more than the "
                               f"{size} asked for (pageSize): the answer is unusable")
    return items


def extract_items(body: Any, items_field: str | None = None) -> list[Any]:
    """Find the list of runs in a listing body (zuora-api.md §8).

    The items are ``response`` when it is a list, else ``response[items_field]`` when a field
    is configured, else the single list-valued field of the ``response`` object. Anything
    else raises UnusableResponse naming the keys seen: never read as "no runs".
    """
    if not isinstance(body, Mapping):
        raise UnusableResponse(f"listing body is {type(body).__name__}, expected a JSON object")
    if body.get("success") is False:
        raise UnusableResponse(f"listing answered success:false: {describe_error(body)}")
    payload = body.get("response")
    if isinstance(payload, list):
        return payload
    if not isinstance(payload, Mapping):
        raise UnusableResponse(
            f"listing body has no 'response' list or object; top-level keys: {sorted(body)}")
    if items_field is not None:
        items = payload.get(items_field)
        if isinstance(items, list):
            return items
        raise UnusableResponse(f"listing 'response' has no list field {items_field!r}; "
                               f"keys: {sorted(payload)}")
    lists = [key for key, value in payload.items() if isinstance(value, list)]
    if len(lists) == 1:
        items = payload[lists[0]]
        assert isinstance(items, list)
        return items
    raise UnusableResponse(
        f"listing 'response' has {len(lists)} list fields ({sorted(lists)}), expected exactly "
        f"one; keys: {sorted(payload)}; set list_items_field to choose")


# ---------------------------------------------------------------- explicit ids

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
    resp = await client.request("GET", run_path(run_id))
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
