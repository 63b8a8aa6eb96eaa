"""List report runs page by page until an empty page, strictly and tolerantly at once."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass

import structlog

from worker.client import ApiClient
from worker.config import Listing
from worker.errors import ApiUnreachable, AuthError, TransientError, UnusableResponse
from worker.http import Response
from worker.models import ReportRun, describe, extract_items, parse_run

log = structlog.get_logger("worker.listing")

LOOKAHEAD = 4  # listing pages requested ahead; bounded by the pacer like every call

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
    upcoming = iter(range(1, listing.max_pages + 1))
    window = 1
    try:
        while True:
            for number in itertools.islice(upcoming, max(0, window - len(ahead))):
                ahead.append((number, asyncio.ensure_future(
                    fetch_page(client, params, number, listing.page_size))))
            if not ahead:
                raise UnusableResponse(
                    f"listing passed the page cap of {listing.max_pages} pages without an "
                    "empty page; raise --max-pages if that is real")
            number, task = ahead.popleft()
            items = page_items(await task, listing.list_items_field, number, listing.page_size)
            if not items:
                # Let pages requested past the end finish: they are already on the wire, and
                # their answers keep the job's request counts true to what the server saw.
                await asyncio.gather(*(t for _, t in ahead), return_exceptions=True)
                return
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
    try:
        resp = await client.request("POST", "/reportruns", params=params,
                                    json_body=list_body(number, size))
    except TransientError as exc:
        raise ApiUnreachable(f"listing page {number} failed after retries: {exc}",
                             status=exc.status) from exc
    if resp.status == 403:
        raise AuthError(f"listing refused (403): {describe(resp)}; the API "
                             "user needs the Reporting API enabled and read access", status=403)
    if not 200 <= resp.status < 300:
        raise UnusableResponse(f"listing page {number} answered HTTP {resp.status}: "
                               f"{describe(resp)}", status=resp.status)
    return resp


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
