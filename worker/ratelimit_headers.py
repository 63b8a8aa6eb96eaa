"""Pure parsers for the rate-limit, concurrency and Retry-After response headers.

Zuora follows the IETF ratelimit-headers draft -02 (`RateLimit-Limit`, `RateLimit-Remaining`,
`RateLimit-Reset`, all describing the window nearest exhaustion) and sends `Concurrency-Limit-*`
headers of its own. The newer draft form (-07 to -10: `RateLimit` + `RateLimit-Policy`) is accepted
as a fallback when none of the old fields is present.

Every parser follows the draft's client rules: header names are matched case-insensitively,
malformed or absurd values are ignored (never raised), and a response without usable fields
yields ``None``, since later responses need not carry the fields at all.
"""

from __future__ import annotations

import email.utils
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC

__all__ = [
    "ConcurrencyInfo",
    "RateLimitInfo",
    "parse_concurrency",
    "parse_limits",
    "parse_ratelimit",
    "parse_retry_after",
]

MAX_RESET_S = 86_400.0
"""A reset further away than one day is treated as malformed (draft: check values for sanity)."""
MAX_WINDOW_S = 366 * 86_400.0
"""The longest quota window accepted; Zuora's longest is one day."""
_MAX_FIELD_LEN = 1024
_NUM = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,9})?")
_SIGNED_NUM = re.compile(r"[+-]?[0-9]{1,15}(?:\.[0-9]{1,9})?")

_PREFIXES = ("ratelimit", "concurrency-limit-")  # the fields the parsers read (lower case)

_Params = dict[str, str]
_Policies = tuple[tuple[int, float], ...]


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What one response says about the tenant's rate quota.

    Attributes:
        limit: quota of the window nearest exhaustion (the first `RateLimit-Limit` item).
        window: that window's length in seconds, when the header names it.
        remaining: requests left in that window.
        reset: seconds until that window resets, relative to the response.
        policies: every ``(quota, window_seconds)`` pair announced, the nearest window included.
        malformed: the fields that were present but unusable (e.g. ``RateLimit-Limit:
            unlimited``), so the pacer can count what it ignored.
    """

    limit: int | None = None
    window: float | None = None
    remaining: int | None = None
    reset: float | None = None
    policies: tuple[tuple[int, float], ...] = ()
    malformed: tuple[str, ...] = ()

    @property
    def sustained_rate(self) -> float | None:
        """The lowest long-run rate (requests/s) any announced policy allows, or None if unknown."""
        rates = [quota / window for quota, window in self.policies]
        return min(rates) if rates else None


@dataclass(frozen=True, slots=True)
class ConcurrencyInfo:
    """Zuora's `Concurrency-Limit-Type`, `-Limit` and `-Remaining` for one response."""

    limit_type: str | None = None
    limit: int | None = None
    remaining: int | None = None


def parse_ratelimit(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """Parse the RateLimit fields of one response.

    Args:
        headers: response headers; any mapping, names matched case-insensitively.

    Returns:
        The draft -02 fields when any of them is present, else the newer `RateLimit` /
        `RateLimit-Policy` pair, else None. Malformed parts are dropped; returns None when nothing
        usable is left. Never raises.
    """
    return _ratelimit(_fold(headers))


def parse_concurrency(headers: Mapping[str, str]) -> ConcurrencyInfo | None:
    """Parse Zuora's `Concurrency-Limit-*` headers; None when none is usable. Never raises.

    A limit of 0 is treated as malformed (a tenant always allows one request).
    """
    return _concurrency(_fold(headers))


def parse_limits(
    headers: Mapping[str, str],
) -> tuple[RateLimitInfo | None, ConcurrencyInfo | None]:
    """``(parse_ratelimit(headers), parse_concurrency(headers))``, reading the headers once."""
    folded = _fold(headers)
    return _ratelimit(folded), _concurrency(folded)


def _ratelimit(folded: Mapping[str, str]) -> RateLimitInfo | None:
    old = _parse_draft02(folded)
    return old if old is not None else _parse_draft10(folded)


def _concurrency(folded: Mapping[str, str]) -> ConcurrencyInfo | None:
    return _concurrency_of(folded.get("concurrency-limit-type"),
                           folded.get("concurrency-limit-limit"),
                           folded.get("concurrency-limit-remaining"))


@functools.lru_cache(maxsize=256)  # few distinct triples: the limit is fixed, remaining small
def _concurrency_of(raw_type: str | None, raw_limit: str | None,
                    raw_remaining: str | None) -> ConcurrencyInfo | None:
    limit_type = raw_type.strip() or None if raw_type is not None else None
    limit = _positive_int(raw_limit)
    remaining = _int(raw_remaining)
    if limit_type is None and limit is None and remaining is None:
        return None
    return ConcurrencyInfo(limit_type=limit_type, limit=limit, remaining=remaining)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Parse a `Retry-After` value into seconds to wait.

    Args:
        value: the raw header, delta-seconds (decimals tolerated) or an HTTP-date.
        now: the current *wall-clock* time as a POSIX timestamp (``time.time()``), used for dates.

    Returns:
        Seconds to wait, clamped to >= 0 (a past date or a negative number gives 0.0), or None
        when the value is absent or malformed. Never raises.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if _SIGNED_NUM.fullmatch(text):
        return max(0.0, float(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" and asctime dates carry no zone; HTTP-dates are UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _parse_draft02(folded: Mapping[str, str]) -> RateLimitInfo | None:
    """`RateLimit-Limit: 50000, 50000;w=60, ...`, `RateLimit-Remaining: n`, `RateLimit-Reset: s`."""
    raw_limit = folded.get("ratelimit-limit")
    raw_remaining = folded.get("ratelimit-remaining")
    raw_reset = folded.get("ratelimit-reset")
    if raw_limit is None and raw_remaining is None and raw_reset is None:
        return None
    limit, window, policies = _parse_limit_list(raw_limit)
    remaining, reset = _int(raw_remaining), _reset(raw_reset)
    malformed = tuple(name for name, raw, ok in (
        ("RateLimit-Limit", raw_limit, limit is not None or bool(policies)),
        ("RateLimit-Remaining", raw_remaining, remaining is not None),
        ("RateLimit-Reset", raw_reset, reset is not None)) if raw is not None and not ok)
    return _info(limit, window, remaining, reset, policies, malformed)


@functools.lru_cache(maxsize=64)  # a server repeats the same RateLimit-Limit on every response
def _parse_limit_list(raw: str | None) -> tuple[int | None, float | None, _Policies]:
    """First item = quota nearest exhaustion; its window is its own `w`, else a later twin's `w`."""
    members = _members(raw)
    policies: list[tuple[int, float]] = []
    for item, params in members:
        quota, window = _positive_int(item), _window(params.get("w"))
        if quota is not None and window is not None:
            policies.append((quota, window))
    first = _positive_int(members[0][0]) if members else None
    if first is None:
        return None, None, tuple(policies)
    window = _window(members[0][1].get("w"))
    if window is None:
        later = (_window(p.get("w")) for item, p in members[1:] if _positive_int(item) == first)
        window = next((w for w in later if w is not None), None)
    return first, window, tuple(policies)


def _parse_draft10(folded: Mapping[str, str]) -> RateLimitInfo | None:
    """`RateLimit-Policy: "p";q=100;w=60` + `RateLimit: "p";r=40;t=12` (drafts -07 to -10).

    Among several `RateLimit` items, the one with the lowest ``r / max(t, 1)`` is the window
    nearest exhaustion.
    """
    raw_state, raw_policy = folded.get("ratelimit"), folded.get("ratelimit-policy")
    if raw_state is None and raw_policy is None:
        return None
    by_name: dict[str, tuple[int, float | None]] = {}
    for name, params in _members(raw_policy):
        quota = _positive_int(params.get("q"))
        if quota is not None:
            by_name.setdefault(name, (quota, _window(params.get("w"))))
    policies = tuple((q, w) for q, w in by_name.values() if w is not None)
    best: tuple[float, str, int, float | None] | None = None
    for name, params in _members(raw_state):
        remaining, reset = _int(params.get("r")), _reset(params.get("t"))
        if remaining is not None:
            key = remaining / max(reset if reset is not None else 1.0, 1.0)
            if best is None or key < best[0]:
                best = (key, name, remaining, reset)
    if best is None:
        return _info(None, None, None, None, policies)
    quota, window = by_name.get(best[1], (None, None))
    return _info(quota, window, best[2], best[3], policies)


def _info(
    limit: int | None,
    window: float | None,
    remaining: int | None,
    reset: float | None,
    policies: _Policies,
    malformed: tuple[str, ...] = (),
) -> RateLimitInfo | None:
    if limit is None and remaining is None and reset is None and not policies and not malformed:
        return None
    return RateLimitInfo(limit, window, remaining, reset, policies, malformed)


def _fold(headers: Mapping[str, str]) -> dict[str, str]:
    """The fields we read, by lower-case name; the first value wins for repeated names (as
    `Mapping.get` does). Works alike for plain dicts and aiohttp's case-insensitive headers."""
    folded: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith(_PREFIXES):
            folded.setdefault(lower, value)
    return folded


def _members(raw: str | None) -> list[tuple[str, _Params]]:
    """Split a structured-field list into ``(bare item, {param: value})``; lenient, never raises."""
    if raw is None or len(raw) > _MAX_FIELD_LEN:
        return []
    members: list[tuple[str, _Params]] = []
    for member in _split_unquoted(raw, ","):
        if not member:
            continue
        item, *raw_params = _split_unquoted(member, ";")
        params: _Params = {}
        for raw_param in raw_params:
            key, has_value, value = raw_param.partition("=")
            params.setdefault(key.strip().lower(), _unquote(value.strip()) if has_value else "?1")
        members.append((_unquote(item), params))
    return members


def _split_unquoted(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double-quoted strings, stripping whitespace around each part."""
    parts: list[str] = []
    start, quoted, escaped = 0, False, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            parts.append(text[start:index].strip())
            start = index + 1
    parts.append(text[start:].strip())
    return parts


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _int(raw: str | None) -> int | None:
    """A non-negative decimal integer, else None."""
    if raw is None:
        return None
    text = raw.strip()
    # ASCII digits only (str.isdigit alone accepts e.g. superscripts), at most 15 of them
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 15 else None


def _positive_int(raw: str | None) -> int | None:
    value = _int(raw)
    return value if value is not None and value > 0 else None


def _number(raw: str | None, upper: float) -> float | None:
    """A finite decimal in ``[0, upper]``, else None."""
    if raw is None:
        return None
    text = raw.strip()
    if not _NUM.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) and value <= upper else None


@functools.lru_cache(maxsize=256)  # whole seconds: a handful of distinct values per window
def _reset(raw: str | None) -> float | None:
    return _number(raw, MAX_RESET_S)


def _window(raw: str | None) -> float | None:
    value = _number(raw, MAX_WINDOW_S)
    return value if value is not None and value > 0 else None
