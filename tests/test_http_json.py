"""``worker.http.parse_json``: strict JSON (orjson); what is not strict JSON is None."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from strategies import STRICT_JSON

from worker.http import parse_json


@given(STRICT_JSON)
def test_reads_what_the_stdlib_writes(value: object) -> None:
    """Any JSON document the stdlib writes is read back equal."""
    assert parse_json(json.dumps(value).encode()) == value


@pytest.mark.parametrize("raw", [
    b'{"success": true, "ratio": NaN}',  # not JSON (RFC 8259 has no NaN)
    b'{"id": "bad-id-\xff"}',  # invalid UTF-8: never read with a replacement character
    b'{"id": "\\ud800"}',  # a lone surrogate escape
    b'{"id": "\\udc00x"}',
])
def test_what_is_not_strict_json_is_none(raw: bytes) -> None:
    assert parse_json(raw) is None


def test_surrogate_pairs_are_read() -> None:
    assert parse_json(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}


def test_not_json_is_none() -> None:
    """Empty, blank, HTML and truncated bodies are None, never an exception."""
    for raw in (b"", b"  \n", b"<html>busy</html>", b'{"success": tr'):
        assert parse_json(raw) is None
