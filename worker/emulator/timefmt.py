"""Zuora's two time formats: epoch milliseconds and ISO-8601 with a +0000 offset."""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(ts: float, time_format: str) -> int | str:
    """Render epoch seconds as epoch ms (int) or as "2018-04-13T02:11:38.464+0000"."""
    if time_format == "iso":
        dt = datetime.fromtimestamp(ts, tz=UTC)
        millis = dt.microsecond // 1000
        return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}+0000"
    return round(ts * 1000)


def parse_time(value: object) -> float:
    """Epoch seconds from epoch ms (number or digit string) or an ISO-8601 string."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        return float(value) / 1000.0
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text) / 1000.0
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    raise ValueError(f"not a time: {value!r}")
