"""Parse and format durations such as ``90s``, ``30m``, ``2h``, ``1d`` or ``1h30m``."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> float:
    """Return the number of seconds in ``text``.

    Accepts one or more ``<number><unit>`` parts (units ms, s, m, h, d, w), e.g. ``1h30m``.
    Raises ``ValueError`` with the accepted forms for anything else, including a bare number.
    """
    cleaned = text.strip().lower()
    pos, total = 0, 0.0
    for match in _PART.finditer(cleaned):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not cleaned or pos != len(cleaned):
        raise ValueError(f"{text!r} is not a duration; use e.g. 90s, 30m, 2h, 1d or 1h30m")
    if not math.isfinite(total):
        raise ValueError(f"{text!r} is too large a duration")
    return total


def format_duration(seconds: float) -> str:
    """Render seconds compactly (``2h5m``, ``45s``) for messages and tables."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 1 or seconds == 0 else f"{seconds:.2f}s"
    parts = []
    remaining = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        value, remaining = divmod(remaining, size)
        if value:
            parts.append(f"{value}{unit}")
        if len(parts) == 2:
            break
    return "".join(parts)
