"""``check --capture FILE``: what the API's answers look like, never what they say.

The shape of the first listing page and of one GET of a run: each field's name, the JSON types
it came in, and how many of the listed runs carried it; the answers' status and header names.
Every value is replaced by its type, so the file holds no run, owner, secret or token and can be
sent to whoever supports the tool ("send us this when something looks off", README).

Names are data too (a server may key an object by run id or owner, and a name that reads like
a field, ``john_smith``, may be one): a field name is kept only when it is one Zuora's answers
or this tool use; any other is shown by its length alone. A header name is kept only when it
is a known one; the others are counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from worker import __version__
from worker.files import write_atomic
from worker.http import Response

CAPTURE_VERSION = 1
MAX_DEPTH = 8  # nested deeper is "…" (a hostile body cannot make the file deep)
MAX_FIELDS = 200  # an object with more fields is summarised (a map keyed by data)
KNOWN_FIELDS = frozenset({
    "success", "response", "content", "totalElements", "totalPages", "currentPage",
    "pageSize", "size", "offset", "total", "page", "reasons", "code", "message", "processId",
    "requestId", "id", "reportId", "reportID", "reportName", "reportType", "status",
    "startedOn", "updatedOn", "createdOn", "completedOn", "createdByUserProfile", "username",
    "name", "reportDefinition", "dataSource", "type", "error", "errors", "data", "items",
    "runs", "results", "records", "timestamp", "path", "createdBy", "createdById",
    "userId", "userName", "owner", "user", "reportRunId", "runId", "count", "limit"})
KNOWN_HEADERS = frozenset({
    "content-type", "content-length", "content-encoding", "date", "server", "vary",
    "connection", "transfer-encoding", "cache-control", "expires", "pragma", "etag",
    "set-cookie", "strict-transport-security", "x-content-type-options", "x-frame-options",
    "retry-after", "ratelimit", "ratelimit-policy", "ratelimit-limit", "ratelimit-remaining",
    "ratelimit-reset", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
    "concurrency-limit-type", "concurrency-limit-limit", "concurrency-limit-remaining",
    "zuora-request-id", "zuora-track-id", "x-request-id", "x-correlation-id", "via",
    "access-control-allow-origin", "keep-alive", "location", "www-authenticate"})


def type_of(value: object) -> str:
    """The JSON type of a parsed value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


class Names:
    """Field names as the capture may show them (see the module docstring)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = [s for s in secrets if len(s) >= 4]

    def field(self, key: object) -> str:
        name = str(key)
        if name in KNOWN_FIELDS and not any(s in name for s in self._secrets):
            return name
        return f"<a name of {len(name)} characters>"

    def headers(self, names: Iterable[str]) -> dict[str, Any]:
        lowered = {name.lower() for name in names}
        known = sorted(lowered & KNOWN_HEADERS)
        return {"header_names": known, "other_header_names": len(lowered) - len(known)}


def shape(value: object, names: Names, depth: int = 0) -> Any:
    """``value`` with every leaf replaced by its type; a list by the merged shape of its
    items and their count; an object by its fields' shapes (by its size, past
    ``MAX_FIELDS``)."""
    if depth >= MAX_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        if len(value) > MAX_FIELDS:
            return {"object_of_fields": len(value)}
        return _merged((names.field(key), shape(item, names, depth + 1))
                       for key, item in value.items())
    if isinstance(value, list):
        return {"array_of": items_shape(value, names, depth + 1), "length": len(value)}
    return type_of(value)


def _merged(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Fields by shown name; names hidden alike are told apart by a number."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        key, n = name, 1
        while key in out:
            n += 1
            key = f"{name} #{n}"
        out[key] = value
    return out


def items_shape(items: Iterable[object], names: Names, depth: int = 0) -> dict[str, Any]:
    """The fields of a list of objects: for each, how many items carried it, the types it
    came in, and (for objects) its own fields; non-objects counted by type."""
    carried: Counter[str] = Counter()
    types: dict[str, Counter[str]] = {}
    nested: dict[str, list[object]] = {}
    others: Counter[str] = Counter()
    for item in items:
        if not isinstance(item, Mapping):
            others[type_of(item)] += 1
            continue
        if len(item) > MAX_FIELDS:
            others["object of many fields"] += 1
            continue
        for raw, value in item.items():
            key = names.field(raw)
            carried[key] += 1
            types.setdefault(key, Counter())[type_of(value)] += 1
            if isinstance(value, Mapping):
                nested.setdefault(key, []).append(value)
    fields = {key: {"carried_by": carried[key], "types": sorted(types[key]),
                    **({"fields": items_shape(nested[key], names, depth + 1)["fields"]}
                       if key in nested and depth < MAX_DEPTH else {})}
              for key in sorted(carried)}
    return {"fields": fields, **({"non_objects": dict(others)} if others else {})}


def answer_shape(resp: Response | None, names: Names) -> dict[str, Any] | None:
    """One answer: its status, header names (values are not kept) and body shape."""
    if resp is None:
        return None
    return {"status": resp.status, **names.headers(resp.headers), "json": resp.is_json,
            "body": shape(resp.body, names) if resp.is_json else None}


def write_capture(path: str, listing: Response, items: list[object], get: Response | None,
                  secrets: Iterable[str] = ()) -> None:
    """Write the capture file atomically; ``secrets`` (credentials, the token) never show,
    even as a name."""
    names = Names(secrets)
    doc = {"capture_version": CAPTURE_VERSION, "tool_version": __version__,
           "captured_at": datetime.now(UTC).isoformat(timespec="seconds"),
           "listing": {**(answer_shape(listing, names) or {}), "runs": len(items),
                       "run_fields": items_shape(items, names)["fields"]},
           "get": answer_shape(get, names)}
    write_atomic(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
