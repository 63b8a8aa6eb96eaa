"""``worker.logs.IsoStamper`` writes exactly what structlog's ISO UTC TimeStamper writes."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from worker.logs import IsoStamper


def reference(now: float) -> str:
    """structlog's TimeStamper(fmt="iso", utc=True) for the instant ``now``."""
    return datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")


@given(st.lists(st.floats(1.6e9, 1.9e9), min_size=1, max_size=20))
def test_same_text_as_structlog_across_seconds(instants: list[float]) -> None:
    """Any sequence of instants (same second or not) is stamped as structlog stamps it."""
    clock = iter(instants)
    stamp = IsoStamper(clock=lambda: next(clock))
    for now in instants:
        assert stamp(None, "info", {})["timestamp"] == reference(now)


def test_whole_seconds_and_rounding_edges() -> None:
    """A whole second has no fraction, and a fraction rounding up to 1 s carries over."""
    for now in (1_764_355_200.0, 1_764_355_199.9999996, 1_764_355_199.0000004, 1e9 + 0.5):
        assert IsoStamper(clock=lambda now=now: now)(None, "info", {})["timestamp"] \
            == reference(now)


def test_the_prefix_follows_the_clock_into_the_next_second() -> None:
    """A second rolling over changes the date-time part, not only the fraction."""
    times = iter([1_764_355_199.25, 1_764_355_200.5])
    stamp = IsoStamper(clock=lambda: next(times))
    assert stamp(None, "info", {})["timestamp"] == reference(1_764_355_199.25)
    assert stamp(None, "info", {})["timestamp"] == "2025-11-28T18:40:00.500000Z"
