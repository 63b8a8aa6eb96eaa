"""The list call: parse its body, then filter, sort and page the runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .model import IN_PROGRESS, EmuRun

SORT_KEYS: dict[str, Callable[[EmuRun], Any]] = {
    "startedOn": lambda r: r.started_on,
    "updatedOn": lambda r: r.updated_on,
    "id": lambda r: r.id,
    "reportId": lambda r: r.report_id,
    "reportName": lambda r: r.report_name,
    "reportType": lambda r: r.report_type,
    "status": lambda r: r.status,
    "createdByUserProfile.username": lambda r: r.created_by,
}


class BadListRequest(ValueError):
    """The list body cannot be understood (answered 400)."""


@dataclass(frozen=True)
class ListQuery:
    page: int
    page_size: int
    sort: tuple[tuple[str, bool], ...]  # (field, descending), most significant first


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadListRequest(f"pagination.{name} must be a positive integer")
    return value


def _parse_sort(raw: Any) -> tuple[tuple[str, bool], ...]:
    if raw is None:
        return (("startedOn", False),)
    if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
        raise BadListRequest("sort must be a list of objects")
    specs = sorted(raw, key=lambda s: s.get("priority", 0) if isinstance(s, dict) else 0)
    out: list[tuple[str, bool]] = []
    for spec in specs:
        name = spec.get("field", "startedOn")
        direction = str(spec.get("direction", "asc")).lower()
        if name not in SORT_KEYS or direction not in ("asc", "desc"):
            raise BadListRequest(f"unsupported sort {spec!r}")
        out.append((name, direction == "desc"))
    return tuple(out) or (("startedOn", False),)


def parse_list_body(body: Any, page_cap: int) -> ListQuery:
    """Read pagination and sort; pageSize above page_cap is silently capped."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadListRequest("the request body must be a JSON object")
    pagination = body.get("pagination") or {}
    if not isinstance(pagination, dict):
        raise BadListRequest("pagination must be an object")
    page = _positive_int(pagination.get("currentPage", 1), "currentPage")
    size = _positive_int(pagination.get("pageSize", page_cap), "pageSize")
    columns = body.get("columns")
    if columns is not None and not isinstance(columns, list):
        raise BadListRequest("columns must be a list")
    return ListQuery(page, min(size, page_cap), _parse_sort(body.get("sort")))


def wanted_statuses(values: Iterable[str]) -> set[str]:
    """Statuses from repeated ?status= (comma lists allowed); none means in progress."""
    wanted = {part.strip() for v in values for part in v.split(",") if part.strip()}
    return wanted or set(IN_PROGRESS)


def select(runs: Iterable[EmuRun], statuses: set[str], query: ListQuery) -> list[EmuRun]:
    """Matching runs in the requested order; ties broken by id ascending."""
    chosen = sorted((r for r in runs if r.status in statuses), key=lambda r: r.id)
    for name, descending in reversed(query.sort):
        chosen.sort(key=SORT_KEYS[name], reverse=descending)
    return chosen


def page_of(runs: list[EmuRun], query: ListQuery) -> list[EmuRun]:
    start = (query.page - 1) * query.page_size
    return runs[start : start + query.page_size]
