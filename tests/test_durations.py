"""Durations: parsing (90s, 1h30m) and compact formatting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.durations import format_duration, parse_duration


# ------------------------------------------------------------------ durations
@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("1d", 86400.0), ("1w", 604800.0),
    ("1h30m", 5400.0), ("1.5h", 5400.0), ("500ms", 0.5), (" 2H ", 7200.0), ("0s", 0.0),
    ("1d2h3m4s", 93784.0),
])
def test_parse_duration(text, seconds):
    """Compound and fractional durations in ms, s, m, h, d, w."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "banana", "10", "-5m", "5 m", "m", "1h 30m", "1y",
                                  "1e3s", "h1", "9" * 400 + "d"])
def test_parse_duration_rejects(text):
    """A bare number, unknown unit, sign, space or infinite value is a ValueError with examples."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@given(st.text())
def test_parse_duration_only_raises_value_error(text):
    """parse_duration returns a finite non-negative float or raises ValueError, nothing else."""
    try:
        value = parse_duration(text)
    except ValueError:
        return
    assert 0.0 <= value < float("inf")


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["s", "m", "h", "d"]))
def test_parse_duration_single_unit(number, unit):
    """<n><unit> is n times the unit."""
    size = {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert parse_duration(f"{number}{unit}") == number * size


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (45, "45s"), (90, "1m30s"), (7500, "2h5m"), (90000, "1d1h"), (0.5, "0.50s")])
def test_format_duration(seconds, text):
    """Durations render compactly with at most two units."""
    assert format_duration(seconds) == text
