"""Reading the Reporting API's bodies: a run (a list item or a GET answer), error bodies, and
the path of a run.

Where the real API is undocumented (zuora-api.md §1.3, §7) parsing accepts every plausible
variant and rejects everything else loudly: an item that cannot be validated is kept as
``unparseable`` and never cancelled. The listing body itself is read by ``worker.listing``.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from worker.http import Response
from worker.logs import REDACTOR
from worker.models import ReportRun

# Epoch values above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_MS_THRESHOLD = 1e11
_ISO_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)


def parse_time(value: Any) -> datetime | None:
    """Read ``startedOn``/``updatedOn``: epoch seconds or ms, or ISO-8601 (``+0000``, ``Z``).

    Returns None for anything else (missing, bool, NaN, garbage, out of range, or before
    2000: a time that old is a broken value, and it would make a run look ancient).
    """
    parsed = _parse_time(value)
    if parsed is None or parsed < EARLIEST_TIME:
        return None
    return parsed


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, int | float):
            return _from_epoch(float(value))
        if isinstance(value, str):
            text = value.strip()
            if re.fullmatch(r"\d{9,16}(\.\d+)?", text):
                return _from_epoch(float(text))
            return _from_iso(text)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _from_epoch(value: float) -> datetime | None:
    if not math.isfinite(value) or value <= 0:
        return None
    seconds = value / 1000.0 if value > _MS_THRESHOLD else value
    return datetime.fromtimestamp(seconds, tz=UTC)


def _from_iso(text: str) -> datetime | None:
    text = text.replace("Z", "+00:00") if text.endswith("Z") else _ISO_OFFSET.sub(r"\1:\2", text)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return None  # a naive time is ambiguous: refuse rather than guess a zone
    return parsed.astimezone(UTC)


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


MAX_ID_LENGTH = 128
_BAD_ID_CHAR = re.compile(r"[\x00-\x20\x7f-\xa0\u1680\u2000-\u200f\u2028-\u202f\u205f-\u206f"
                          r"\u3000\ufeff\ud800-\udfff]")


def check_run_id(value: Any) -> tuple[str | None, str | None]:
    """(the id exactly as sent, None), or (None, why it is refused).

    An id is sent back as one path segment (``DELETE .../reportruns/<id>``), so it is taken
    exactly as the server sent it or not at all: never stripped or re-encoded (a JSON integer
    is read as its decimal spelling). Refused: another type, empty, ``.`` or ``..`` (they
    resolve to other paths), a control, white-space or invisible formatting character, a lone
    surrogate, more than ``MAX_ID_LENGTH`` characters.
    """
    if value is None:
        return None, None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), None  # a JSON integer has one exact decimal spelling
    if not isinstance(value, str):
        return None, f"id is {type(value).__name__}, not a string"
    if value in ("", ".", ".."):
        return None, f"id {value!r} is not a run id"
    if len(value) > MAX_ID_LENGTH:
        return None, f"id is longer than {MAX_ID_LENGTH} characters"
    bad = _BAD_ID_CHAR.search(value)
    if bad:
        return None, f"id holds the character U+{ord(bad.group()):04X}"
    return value, None


def _created_by(item: Mapping[str, Any]) -> str | None:
    profile = item.get("createdByUserProfile")
    if isinstance(profile, Mapping):
        name = _text(profile.get("username"))
        if name:
            return name
    for key in ("createdByUserProfile.username", "createdBy", "createdByUsername", "username"):
        name = _text(item.get(key))
        if name:
            return name
    return None


def parse_run(item: Any) -> ReportRun:
    """Turn one list item or GET payload into a ReportRun; never raises.

    A run whose id, status or startedOn cannot be read carries ``problem`` and is never
    cancelled. An unknown status is kept as read (it cannot match the in-progress filter).
    """
    if not isinstance(item, Mapping):
        return ReportRun(None, None, None, None, None, None, None,
                         problem=f"item is {type(item).__name__}, not an object")
    raw_id = item.get("id") if item.get("id") is not None else item.get("reportRunId")
    run_id, id_problem = check_run_id(raw_id)
    status = _text(item.get("status"))
    started = parse_time(item.get("startedOn"))
    missing = [name for name, value in (("id", run_id), ("status", status),
                                        ("startedOn", started)) if value is None]
    problem = id_problem or (f"unreadable {', '.join(missing)}" if missing else None)
    return _unechoed(ReportRun(
        id=run_id,
        report_id=_shared(_text(item.get("reportId")) or _text(item.get("reportID"))),
        report_type=_shared(_text(item.get("reportType"))),
        status=_shared(status.upper() if status else None),
        started_on=started,
        updated_on=parse_time(item.get("updatedOn")),
        created_by=_shared(_created_by(item)),
        problem=problem,
        report_name=_shared(_report_name(item)),
    ))


def _shared(value: str | None) -> str | None:
    """One copy of a value many runs share (a status, a report, an owner): 50,000 listed
    runs name a few hundred reports and owners, and each parsed page makes new strings."""
    return sys.intern(value) if value is not None and len(value) <= 256 else value


def _report_name(item: Mapping[str, Any]) -> str | None:
    """``reportName``, or the GET's ``reportDefinition.name``; None when neither is text."""
    definition = item.get("reportDefinition")
    name = item.get("reportName")
    if name is None and isinstance(definition, Mapping):
        name = definition.get("name")
    text = _text(name)
    return text[:200] if text else None


_TEXT_FIELDS = ("id", "report_id", "report_type", "status", "created_by", "report_name")


def _unechoed(run: ReportRun) -> ReportRun:
    """A run whose text fields hold a known secret (a server echoing what it was sent, or a
    secret so short it is part of a real value): the fields are scrubbed as they enter, and
    the run is never cancelled, since a scrubbed field could no longer match an exclusion."""
    values = {name: getattr(run, name) for name in _TEXT_FIELDS}
    joined = "\n".join(v for v in values.values() if v)
    if not REDACTOR.suspect(joined):
        return run
    leaked = [name for name, v in values.items() if v and REDACTOR.scrub(v) != v]
    if not leaked:
        return run
    def clean(name: str) -> str | None:
        value = values[name]
        return REDACTOR.scrub(value) if value and name in leaked else value

    return replace(run, id=None if "id" in leaked else run.id, report_id=clean("report_id"),
                   report_type=clean("report_type"), status=clean("status"),
                   created_by=clean("created_by"), report_name=clean("report_name"),
                   problem=f"{', '.join(leaked)} held a configured secret (an echo of what "
                           "was sent?): never cancelled")


def run_path(run_id: str) -> str:
    """The run's API path: its id, exactly as listed, as one percent-encoded segment."""
    return f"/reportruns/{quote(run_id, safe='')}"


def run_payload(body: Any) -> Any:
    """The run object of a GET answer: ``response`` of the ``{success, response}`` envelope
    (Zuora's example), or the body itself when it is a run without the envelope (Zuora's
    OpenAPI schema). None when it is neither."""
    if not isinstance(body, Mapping):
        return None
    if isinstance(body.get("response"), Mapping):
        return body["response"]
    if "response" not in body and "success" not in body and \
            ("id" in body or "reportRunId" in body):
        return body
    return None


def describe(resp: Response) -> str:
    """What an answer says of itself, for error messages: a JSON body's codes and messages
    (``describe_error``), else a one-line snippet of its text (an HTML page's title)."""
    return describe_error(resp.body) if resp.is_json else resp.snippet


def describe_error(body: Any) -> str:
    """A short description of an error body: Zuora's errorCode, message and reasons[], or
    problem+json's (RFC 9457) title and detail."""
    if not isinstance(body, Mapping):
        return REDACTOR.scrub_cut(str(body), 200)
    parts: list[str] = []
    for name in ("title", "detail"):  # problem+json, as gateways and mock servers answer
        if isinstance(body.get(name), str) and body[name] not in parts:
            parts.append(body[name])
    code = body.get("errorCode")
    if code is not None:
        parts.append(str(code))
    message = body.get("message") or body.get("Message")
    if isinstance(message, str):
        parts.append(message)
    reasons = body.get("reasons")
    if isinstance(reasons, list):
        for reason in reasons[:3]:
            if isinstance(reason, Mapping):
                parts.append(f"{reason.get('code')}: {reason.get('message')}")
    if not parts and isinstance(body.get("response"), str):
        parts.append(str(body["response"]))
    return REDACTOR.scrub_cut("; ".join(parts), 500) or "no error details"  # may echo one


def reason_codes(body: Any) -> list[str]:
    """Every error code in a body (``errorCode`` and ``reasons[].code``) as strings."""
    if not isinstance(body, Mapping):
        return []
    codes = [str(body["errorCode"])] if body.get("errorCode") is not None else []
    reasons = body.get("reasons")
    if isinstance(reasons, list):
        codes += [str(r.get("code")) for r in reasons if isinstance(r, Mapping)]
    return codes
