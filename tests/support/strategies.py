"""Hypothesis strategies shared by the property tests (importable from every test module:
``tests/support`` is on the path; a conftest is not importable, and fixtures cannot feed
``@given``)."""

from __future__ import annotations

import os

from hypothesis import strategies as st

TEXT = st.text(st.characters(exclude_categories=("Cs",)))  # no lone surrogates

# JSON a strict encoder writes: finite numbers, 64-bit integers, valid text.
STRICT_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | TEXT
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)

# Anything a hostile or broken server might put in a decoded body: NaN, huge integers, junk.
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
           | st.text(max_size=30))
LOOSE_JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)

# Seconds, as thresholds (durations) and as ages (a negative age: a start in the future).
DURATION = st.floats(min_value=0, max_value=48 * 3600, allow_nan=False)
AGE = st.floats(min_value=-3600, max_value=48 * 3600, allow_nan=False)


def examples(ci: int, long: int) -> int:
    """How many examples a slow property suite runs: ``ci`` by default (a few seconds in CI),
    ``long`` under ``HYPOTHESIS_PROFILE=long`` (by hand, before a release)."""
    return long if os.environ.get("HYPOTHESIS_PROFILE") == "long" else ci
