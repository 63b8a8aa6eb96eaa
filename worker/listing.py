"""Where a job's runs come from: the listing, page by page until any honest signal says it
ended (:class:`Paging`; strictly and tolerantly at once), or explicit run ids
(``--ids-file``), fetched with one GET each.

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
from worker.config import Listing, Selection
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
MAX_PAGE_RUNS = 1000  # a page larger than asked is read up to this many runs

# The columns Zuora's docs show for this call (zuora-api.md §6.4; items carry ``id`` unasked).
# A server may drop a column it does not know, or refuse the request: ask for no more than
# the docs show and what the selection needs (``columns_for``).
DOCUMENTED_COLUMNS = ("reportId", "startedOn", "reportType", "createdByUserProfile.username",
                      "status")


@dataclass(frozen=True, slots=True)
class Page:
    """One page of runs, with what it showed about the server's paging (warnings)."""

    number: int
    runs: list[ReportRun]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PageBody:
    """What a listing page's body holds: its items, and its totals when it gives them."""

    items: list[object]
    total_pages: int | None = None
    total_elements: int | None = None


def columns_for(selection: Selection) -> tuple[str, ...]:
    """The columns a listing asks for: the documented ones, and ``updatedOn`` when a filter
    or rule idles on it (``--idle-for``) or the stalled test reads it (``--stalled-for``)."""
    idle = selection.stalled_for is not None or any(
        f.idle_for is not None
        for f in (selection.filters, *(rule.filters for rule in selection.rules)))
    return (*DOCUMENTED_COLUMNS, *(("updatedOn",) if idle else ()))


def list_body(page: int, size: int, columns: tuple[str, ...] = DOCUMENTED_COLUMNS
              ) -> dict[str, object]:
    """The JSON body of one listing request (zuora-api.md §6.4, corrected)."""
    return {"columns": list(columns), "pagination": {"currentPage": page, "pageSize": size},
            "sort": [{"field": "startedOn", "direction": "asc", "priority": 0}]}


class Paging:
    """When a listing has ended (zuora-api.md §6.4: how paging ends is not documented, so
    every signal is read, and none is trusted alone where trusting it could drop runs):

    - a page that adds no run id not seen before (a server that answers a page past the end
      with an earlier page, or runs without ids): warned;
    - an empty page, unless its ``totalPages`` says pages remain, or a page shorter than an
      earlier one, unless its totals say more remain (a server that filters after paging:
      then the totals are followed; its ``totalElements`` may count runs it filtered away,
      so an empty page follows ``totalPages`` alone).

    Totals alone never end a listing (a server's totals may be off: counted from 0, on the
    size asked rather than served, per page): after a first page, short or not, or a full
    last page, one more page tells. A short first page cannot tell a short listing from a
    server that caps its pages below the size asked.
    """

    def __init__(self, asked: int) -> None:
        self.asked, self.largest, self.items = asked, 0, 0
        self.seen: set[str] = set()
        self.ended = self._oversize_noted = self._disagree_noted = False

    def read(self, number: int, body: PageBody, runs: list[ReportRun]) -> tuple[str, ...]:
        """Take one page (in order); return its warnings. Sets ``ended`` after the last."""
        ids = {run.id for run in runs if run.id is not None}
        notes: list[str] = []
        if len(runs) > self.asked and not self._oversize_noted:
            self._oversize_noted = True
            notes.append(f"the server answers pages of {len(runs)} runs, more than the "
                         f"{self.asked} asked for (pageSize ignored); read as they come")
        repeated = bool(runs) and ids <= self.seen  # no new id (also: no id at all)
        if repeated:
            notes.append(f"listing page {number} adds no run id not already listed (a server "
                         "that answers a page past the end with an earlier one, or runs "
                         "without ids): the listing ends here")
        self.seen |= ids
        self.items += len(runs)
        more = _totals_say_more(body, number, self.items)
        short = len(runs) < self.largest  # the first page has nothing to be shorter than
        if short and more and not self._disagree_noted:
            self._disagree_noted = True
            notes.append(f"listing page {number} is shorter than the pages before it (or "
                         "empty), but the page's totals say more remain: paging on as they say")
        pages_left = body.total_pages is not None and number < body.total_pages
        self.ended = repeated or (not runs and not pages_left) or (short and more is not True)
        self.largest = max(self.largest, len(runs))
        return tuple(notes)

    def ahead(self, number: int, body: PageBody, lookahead: int) -> int:
        """How many pages to have requested after page ``number``: ahead only as far as the
        page's ``totalPages`` says there are pages (guessing costs quota on every job)."""
        if body.total_pages is None:
            return 1
        return max(1, min(lookahead, body.total_pages - number))


def _totals_say_more(body: PageBody, number: int, seen: int) -> bool | None:
    """Whether the page's totals say pages remain after page ``number``; None without totals."""
    says = [number < body.total_pages] if body.total_pages is not None else []
    if body.total_elements is not None:
        says.append(seen < body.total_elements)
    return any(says) if says else None


async def iter_pages(client: ApiClient, statuses: tuple[str, ...], listing: Listing,
                     lookahead: int = LOOKAHEAD,
                     columns: tuple[str, ...] = DOCUMENTED_COLUMNS
                     ) -> AsyncGenerator[Page, None]:
    """Yield pages in order until the listing ends (:class:`Paging`); raise when the page cap
    is passed.

    Pages are requested ahead (through the pacer, like every call) only as far as the
    server's ``totalPages`` says there are pages; without totals, one at a time, so a server
    that repeats its last page costs at most one page more. Errors surface in page order:
    UnusableResponse for an unreadable body, ApiUnreachable when the API cannot be reached,
    AuthError on a 403. Close it with ``contextlib.aclosing`` so pages ahead are cancelled if
    the caller stops early.
    """
    params = [("status", s) for s in statuses]
    ahead: deque[tuple[int, asyncio.Task[Response]]] = deque()
    upcoming = iter(range(1, listing.max_pages + 2))  # the page past the cap tells it is one
    paging, window = Paging(listing.page_size), 1
    try:
        while not paging.ended:
            for number in itertools.islice(upcoming, max(0, window - len(ahead))):
                ahead.append((number, asyncio.ensure_future(
                    fetch_page(client, params, number, listing.page_size, columns))))
            number, task = ahead.popleft()
            body = page_body(await task, listing.list_items_field, number, listing.page_size)
            runs = [parse_run(item) for item in body.items]
            notes = paging.read(number, body, runs)
            if number > listing.max_pages and (runs or not paging.ended):
                raise UnusableResponse(
                    f"listing passed the page cap of {listing.max_pages} pages without "
                    "ending; raise --max-pages if that is real")
            window = paging.ahead(number, body, lookahead)
            log.debug("runs.page_fetched", page=number, items=len(runs))
            if runs or notes:
                yield Page(number, runs, notes)
        # Pages requested past the end are already on the wire: let them finish, so the
        # job's request counts stay true to what the server saw.
        await asyncio.gather(*(t for _, t in ahead), return_exceptions=True)
    finally:
        await _discard(task for _, task in ahead)


async def _discard(tasks: Iterable[asyncio.Task[Response]]) -> None:
    """Cancel pages requested ahead that are no longer wanted (error or early stop); reap them."""
    pending = list(tasks)
    for task in pending:
        task.cancel()  # a no-op on a finished task; gather still retrieves its exception
    await asyncio.gather(*pending, return_exceptions=True)


async def fetch_page(client: ApiClient, params: list[tuple[str, str]], number: int,
                     size: int, columns: tuple[str, ...] = DOCUMENTED_COLUMNS) -> Response:
    """One listing page; AuthError on a 403, UnusableResponse on another non-2xx answer."""
    try:
        resp = await client.request("POST", "/reportruns", params=params,
                                    json_body=list_body(number, size, columns),
                                    max_body=page_cap(size))
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
    """The most bytes a listing page of ``size`` runs may take (``BYTES_PER_RUN`` each): a
    page larger than asked is read within it (a listed run takes about a tenth of that)."""
    return size * BYTES_PER_RUN + ENVELOPE_BYTES


def page_body(resp: Response, field: str | None, number: int, size: int) -> PageBody:
    """The items and totals of one listing page; UnusableResponse when it is not JSON, has
    no list, or holds more than ``MAX_PAGE_RUNS`` items (and more than asked): a page that
    large is a hostile one. A page larger than asked is read (a server may ignore
    ``pageSize``); the listing says so in a warning."""
    if not resp.is_json:
        raise UnusableResponse(f"listing page {number} is not JSON "
                               f"({resp.header('Content-Type')}): {resp.snippet}")
    try:
        items = extract_items(resp.body, field)
    except UnusableResponse as exc:
        raise UnusableResponse(f"listing page {number}: {exc}") from exc
    if len(items) > max(size, MAX_PAGE_RUNS):
        raise UnusableResponse(f"listing page {number} holds {len(items)} runs, more than "
                               f"the {size} asked for (pageSize) and than the "
                               f"{MAX_PAGE_RUNS} any page may hold: the answer is unusable")
    payload = resp.body.get("response") if isinstance(resp.body, Mapping) else None
    totals = payload if isinstance(payload, Mapping) else {}
    return PageBody(items, _total(totals.get("totalPages")),
                    _total(totals.get("totalElements")))


def _total(value: object) -> int | None:
    """A page's total (a non-negative integer), else None: a total we cannot read is none."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None


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
