"""What an answer says about the tenant's limits: its quota windows, Retry-After, concurrency.

Zuora announces several windows at once, in the IETF ratelimit-headers draft -02 form (lower-case
names on current answers, ``RateLimit-*`` on older pages)::

    ratelimit-limit: 2500, 2500;w=60, 5000;w=3600, 10000;w=86400
    ratelimit-remaining: 399        (for the window nearest exhaustion)
    ratelimit-reset: 1200           (seconds)

The first item is the quota of the window nearest exhaustion; each ``q;w=s`` item is a window.
Draft -10's ``RateLimit-Policy: "min";q=100;w=60`` with ``RateLimit: "min";r=40;t=12`` is read
when the -02 fields are absent. Names are matched case-insensitively; a malformed or absurd value
is ignored and named in ``Limits.malformed`` (never raised), so a placeholder such as
``RateLimit-Limit: unlimited`` costs nothing.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC

MAX_RESET_S = 86_400.0  # a reset further away than a day is not a Zuora window's
MAX_WINDOW_S = 366 * 86_400.0
RESET_ROUNDING_S = 1.0  # a reset in whole seconds may be rounded up past its window's length
_FIELD_CAP = 1024  # longer header values are not parsed at all
_NUMBER = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,9})?")


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """A quota: at most ``quota`` requests per ``seconds``."""

    seconds: float
    quota: int

    @property
    def name(self) -> str:
        """How people say it: minute, hourly, daily, or the length in seconds."""
        return {60.0: "minute", 3600.0: "hourly", 86400.0: "daily"}.get(
            self.seconds, f"{self.seconds:g}-second")


# Zuora's documented API quotas by tenant type (developer.zuora.com, "Rate limits"): what
# `explain` shows a job would do with each, and the emulator's presets (`--tenant`).
TENANTS: dict[str, tuple[Window, ...]] = {
    "production": (Window(60, 50_000), Window(3600, 2_250_000), Window(86400, 27_000_000)),
    "developer-sandbox": (Window(60, 12_500), Window(3600, 25_000), Window(86400, 50_000)),
    "api-sandbox": (Window(60, 2_500), Window(3600, 5_000), Window(86400, 10_000)),
}


@dataclass(frozen=True, slots=True)
class Limits:
    """The RateLimit fields of one answer.

    ``windows`` are every window announced, shortest first; ``nearest`` is the one
    ``remaining`` and ``reset`` describe, when the answer tells which; ``malformed`` names the
    fields that were present but unusable.
    """

    windows: tuple[Window, ...] = ()
    nearest: Window | None = None
    remaining: int | None = None
    reset: float | None = None
    malformed: tuple[str, ...] = ()

    def described(self) -> tuple[Window, ...]:
        """The windows ``remaining`` and ``reset`` describe: the one the answer names, when
        ``reset`` fits in it; else by ``reset`` the shortest, when ``reset`` fits in it; else
        every window ``reset`` fits in (the answer does not say which, so a reader holds each to
        it); else none (a reset longer than any window is not believed)."""
        reset = self.reset
        if self.nearest is not None and (reset is None or _fits(reset, self.nearest)):
            return (self.nearest,)
        fits = tuple(w for w in self.windows if reset is not None and _fits(reset, w))
        return fits[:1] if fits and fits[0] == self.windows[0] else fits


def parse_limits(headers: Mapping[str, str]) -> Limits | None:
    """The RateLimit fields of ``headers`` (any mapping), or None when there are none."""
    folded = {name.lower(): value for name, value in reversed(list(headers.items()))
              if name.lower().startswith("ratelimit")}
    if not folded:
        return None
    if {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} & folded.keys():
        return _draft02(folded)
    return _draft10(folded)


def _draft02(folded: Mapping[str, str]) -> Limits:
    raw_limit = folded.get("ratelimit-limit")
    members = _members(raw_limit)
    windows = tuple(sorted({Window(w, q) for q, w in
                            ((_count(item, 1), _seconds(p.get("w"))) for item, p in members)
                            if q is not None and w is not None}))
    remaining = _count(folded.get("ratelimit-remaining"))
    reset = _seconds(folded.get("ratelimit-reset"), MAX_RESET_S, zero=True)
    first = _count(members[0][0], 1) if members else None
    own = _seconds(members[0][1].get("w")) if members else None
    nearest = (Window(own, first) if first is not None and own is not None
               else _nearest(windows, first, reset))
    malformed = tuple(name for name, raw, ok in (
        ("RateLimit-Limit", raw_limit, first is not None or bool(windows)),
        ("RateLimit-Remaining", folded.get("ratelimit-remaining"), remaining is not None),
        ("RateLimit-Reset", folded.get("ratelimit-reset"), reset is not None))
        if raw is not None and not ok)
    return Limits(windows, nearest, remaining, reset, malformed)


def _nearest(windows: tuple[Window, ...], quota: int | None,
             reset: float | None) -> Window | None:
    """The window a bare first item names: the one of that quota (the shortest, when several
    are) that ``reset`` fits in; None when the answer does not tell (no window of that quota
    has room for ``reset``, or ``reset`` is absent and several have that quota)."""
    same = [w for w in windows if w.quota == quota]
    if reset is not None:
        same = [w for w in same if _fits(reset, w)]
    return same[0] if len(same) == 1 or (same and reset is not None) else None


def _draft10(folded: Mapping[str, str]) -> Limits:
    policies: dict[str, Window] = {}
    for name, params in _members(folded.get("ratelimit-policy")):
        quota, seconds = _count(params.get("q"), 1), _seconds(params.get("w"))
        if quota is not None and seconds is not None:
            policies.setdefault(name, Window(seconds, quota))
    best: tuple[float, str, int, float | None] | None = None
    for name, params in _members(folded.get("ratelimit")):
        remaining = _count(params.get("r"))
        reset = _seconds(params.get("t"), MAX_RESET_S, zero=True)
        if remaining is not None:
            share = remaining / policies[name].quota if name in policies else float(remaining)
            if best is None or share < best[0]:
                best = (share, name, remaining, reset)
    windows = tuple(sorted(set(policies.values())))
    if best is None:
        return Limits(windows)
    return Limits(windows, policies.get(best[1]), best[2], best[3])


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` (delta-seconds or an HTTP-date; ``now`` is
    ``time.time()``), at least 0; None when absent or malformed."""
    text = (value or "").strip()
    if not text or len(text) > 64:
        return None
    if re.fullmatch(r"[+-]?" + _NUMBER.pattern, text):
        return max(0.0, float(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # HTTP-dates are UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def parse_concurrency_limit(headers: Mapping[str, str]) -> int | None:
    """Zuora's ``Concurrency-Limit-Limit`` (requests in flight the tenant allows), or None."""
    return _count(headers.get("Concurrency-Limit-Limit"), 1)


def _fits(reset: float, window: Window) -> bool:
    """Whether a window has room for ``reset`` (a second of rounding up allowed)."""
    return reset <= window.seconds + RESET_ROUNDING_S


def _members(raw: str | None) -> list[tuple[str, dict[str, str]]]:
    """A structured-field list as ``(item, {param: value})``; lenient, never raises."""
    if raw is None or len(raw) > _FIELD_CAP:
        return []
    out: list[tuple[str, dict[str, str]]] = []
    for member in _split(raw, ","):
        if member:
            item, *params = _split(member, ";")
            pairs = (p.partition("=") for p in params)
            out.append((_unquote(item), {k.strip().lower(): _unquote(v.strip())
                                         for k, _, v in pairs}))
    return out


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes, stripping each part."""
    parts, start, quoted = [], 0, False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            parts.append(text[start:index].strip())
            start = index + 1
    parts.append(text[start:].strip())
    return parts


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _count(raw: str | None, least: int = 0) -> int | None:
    """A decimal integer of at most 15 ASCII digits, at least ``least``; else None."""
    text = (raw or "").strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 15):
        return None
    return int(text) if int(text) >= least else None


def _seconds(raw: str | None, upper: float = MAX_WINDOW_S, *, zero: bool = False) -> float | None:
    """A finite number of seconds in ``(0, upper]`` (``[0, upper]`` with ``zero``); else None."""
    text = (raw or "").strip()
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if (value > 0 or zero) and value <= upper else None
