"""``check --capture FILE``: what the API's answers look like, never what they say.

The shape of the first listing page and of one GET of a run: each field's name, the JSON types
it came in, and how many of the listed runs carried it; the answers' status and header names.
Every value is replaced by its type, so the file holds no run, owner, secret or token and can be
sent to whoever supports the tool ("send us this when something looks off", README).
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


def shape(value: object, depth: int = 0) -> Any:
    """``value`` with every leaf replaced by its type; a list by the merged shape of its
    items and their count; an object by its fields' shapes."""
    if depth >= MAX_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        return {str(key): shape(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return {"array_of": items_shape(value, depth + 1), "length": len(value)}
    return type_of(value)


def items_shape(items: Iterable[object], depth: int = 0) -> dict[str, Any]:
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
        for key, value in item.items():
            carried[str(key)] += 1
            types.setdefault(str(key), Counter())[type_of(value)] += 1
            if isinstance(value, Mapping):
                nested.setdefault(str(key), []).append(value)
    fields = {key: {"carried_by": carried[key], "types": sorted(types[key]),
                    **({"fields": items_shape(nested[key], depth + 1)["fields"]}
                       if key in nested and depth < MAX_DEPTH else {})}
              for key in sorted(carried)}
    return {"fields": fields, **({"non_objects": dict(others)} if others else {})}


def answer_shape(resp: Response | None) -> dict[str, Any] | None:
    """One answer: its status, header names (values are not kept) and body shape."""
    if resp is None:
        return None
    return {"status": resp.status, "header_names": sorted({name.lower() for name in resp.headers}),
            "json": resp.is_json, "body": shape(resp.body) if resp.is_json else None}


def write_capture(path: str, listing: Response, items: list[object],
                  get: Response | None) -> None:
    """Write the capture file atomically."""
    doc = {"capture_version": CAPTURE_VERSION, "tool_version": __version__,
           "captured_at": datetime.now(UTC).isoformat(timespec="seconds"),
           "listing": {**(answer_shape(listing) or {}), "runs": len(items),
                       "run_fields": items_shape(items)["fields"]},
           "get": answer_shape(get)}
    write_atomic(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
