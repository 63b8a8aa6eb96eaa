"""``worker.http.parse_json``: orjson first, the lenient stdlib for what orjson refuses."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from worker.http import parse_json

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_reads_what_the_stdlib_writes(value: object) -> None:
    """Any JSON document the stdlib writes is read back equal."""
    assert parse_json(json.dumps(value).encode()) == value


def test_nan_is_read_as_the_stdlib_reads_it() -> None:
    """A NaN literal (orjson refuses it) still parses, through the stdlib."""
    body = parse_json(b'{"success": true, "ratio": NaN}')
    assert body["success"] is True
    assert math.isnan(body["ratio"])


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    """A body with invalid UTF-8 in a string parses, the bad byte replaced."""
    assert parse_json(b'{"message": "caf\xe9"}') == {"message": "caf\ufffd"}


def test_not_json_is_none() -> None:
    """Empty, blank, HTML and truncated bodies are None, never an exception."""
    for raw in (b"", b"  \n", b"<html>busy</html>", b'{"success": tr'):
        assert parse_json(raw) is None
