"""List report runs page by page until an empty page, strictly and tolerantly at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog

from worker.client import ApiClient
from worker.config import Listing
from worker.errors import ApiUnreachable, AuthError, TransientError, UnusableResponse
from worker.http import Response
from worker.models import ReportRun, describe_error, extract_items, parse_run

log = structlog.get_logger("worker.listing")

COLUMNS = ["id", "reportId", "reportName", "startedOn", "updatedOn", "reportType",
           "createdByUserProfile.username", "status"]


@dataclass(frozen=True, slots=True)
class Page:
    number: int
    runs: list[ReportRun]
    raw_count: int


def list_body(page: int, size: int) -> dict[str, object]:
    """The JSON body of one listing request (zuora-api.md §6.4, corrected)."""
    return {"columns": COLUMNS, "pagination": {"currentPage": page, "pageSize": size},
            "sort": [{"field": "startedOn", "direction": "asc", "priority": 0}]}


async def iter_pages(client: ApiClient, statuses: tuple[str, ...],
                     listing: Listing) -> AsyncIterator[Page]:
    """Yield pages until one comes back empty; raise when the page cap is passed.

    A short page does not end the listing (a server may cap the page size). Errors:
    UnusableResponse for an unreadable body, ApiUnreachable when the API cannot be reached.
    """
    params = [("status", s) for s in statuses]
    for number in range(1, listing.max_pages + 2):
        if number > listing.max_pages:
            raise UnusableResponse(f"listing passed the page cap of {listing.max_pages} pages "
                                   "without an empty page; raise --max-pages if that is real")
        resp = await fetch_page(client, params, number, listing.page_size)
        items = page_items(resp, listing.list_items_field, number)
        if not items:
            return
        log.debug("runs.page_fetched", page=number, items=len(items))
        yield Page(number, [parse_run(item) for item in items], len(items))


async def fetch_page(client: ApiClient, params: list[tuple[str, str]], number: int,
                 size: int) -> Response:
    try:
        resp = await client.request("POST", "/reportruns", params=params,
                                    json_body=list_body(number, size))
    except TransientError as exc:
        raise ApiUnreachable(f"listing page {number} failed after retries: {exc}",
                             status=exc.status) from exc
    if resp.status == 403:
        raise AuthError(f"listing refused (403): {describe_error(resp.body)}; the API "
                             "user needs the Reporting API enabled and read access", status=403)
    if not 200 <= resp.status < 300:
        raise UnusableResponse(f"listing page {number} answered HTTP {resp.status}: "
                               f"{describe_error(resp.body) if resp.is_json else _snippet(resp)}",
                               status=resp.status)
    return resp


def page_items(resp: Response, field: str | None, number: int) -> list[object]:
    if resp.truncated:
        raise UnusableResponse(f"listing page {number} body exceeded the size cap")
    if not resp.is_json:
        raise UnusableResponse(f"listing page {number} is not JSON "
                               f"({resp.header('Content-Type')}): {_snippet(resp)}")
    try:
        return extract_items(resp.body, field)
    except UnusableResponse as exc:
        raise UnusableResponse(f"listing page {number}: {exc}") from exc


def _snippet(resp: Response) -> str:
    return " ".join(resp.text[:120].split()) or "empty body"
