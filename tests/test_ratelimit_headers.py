"""Tests for the pure RateLimit / Concurrency-Limit / Retry-After header parsers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from worker.ratelimit_headers import (
    ConcurrencyInfo,
    RateLimitInfo,
    parse_concurrency,
    parse_ratelimit,
    parse_retry_after,
)

ZUORA_LIMIT = "2250000, 50000;w=60, 2250000;w=3600, 27000000;w=86400"


def test_zuora_example_takes_the_window_from_the_later_twin() -> None:
    """The first item has no `w`; its window comes from the later item with the same quota."""
    info = parse_ratelimit(
        {
            "RateLimit-Limit": ZUORA_LIMIT,
            "RateLimit-Remaining": "2249000",
            "RateLimit-Reset": "1800",
        }
    )
    assert info == RateLimitInfo(
        limit=2_250_000,
        window=3600.0,
        remaining=2_249_000,
        reset=1800.0,
        policies=((50_000, 60.0), (2_250_000, 3600.0), (27_000_000, 86_400.0)),
    )
    assert info.sustained_rate == pytest.approx(27_000_000 / 86_400)


@pytest.mark.parametrize(
    ("value", "limit", "window"),
    [
        ("100;w=60, 1000;w=3600", 100, 60.0),
        ("500, 100;w=60", 500, None),
        ("50000;w=60", 50_000, 60.0),
        ('100;w=60;comment="fixed, window", 9;w=1', 100, 60.0),
        ("100 ; W=60", 100, 60.0),
    ],
)
def test_limit_list_variants(value: str, limit: int, window: float | None) -> None:
    """The first item's own `w` wins; a missing window stays None; quoted commas do not split."""
    info = parse_ratelimit({"RateLimit-Limit": value})
    assert info is not None
    assert (info.limit, info.window) == (limit, window)


def test_names_are_case_insensitive_for_dicts_and_multidicts() -> None:
    """Plain dicts with any casing and aiohttp's CIMultiDictProxy give the same result."""
    raw = {"ratelimit-LIMIT": "100;w=10", "RATELIMIT-remaining": "7", "ratelimit-reset": "3"}
    expected = RateLimitInfo(100, 10.0, 7, 3.0, ((100, 10.0),))
    assert parse_ratelimit(raw) == expected
    assert parse_ratelimit(CIMultiDictProxy(CIMultiDict(raw))) == expected


LIMIT, REMAINING, RESET = "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({LIMIT: "abc, 100;w=x"}, RateLimitInfo(malformed=(LIMIT,))),
        ({REMAINING: "-5"}, RateLimitInfo(malformed=(REMAINING,))),
        ({REMAINING: "12abc"}, RateLimitInfo(malformed=(REMAINING,))),
        ({RESET: "90000"}, RateLimitInfo(malformed=(RESET,))),  # more than a day: not sane
        ({RESET: "nan"}, RateLimitInfo(malformed=(RESET,))),
        ({RESET: "1e3"}, RateLimitInfo(malformed=(RESET,))),
        ({LIMIT: "0;w=60"}, RateLimitInfo(malformed=(LIMIT,))),
        ({LIMIT: "100;w=0"}, RateLimitInfo(limit=100)),
        ({LIMIT: "1" * 2000}, RateLimitInfo(malformed=(LIMIT,))),
        ({LIMIT: "unlimited", REMAINING: "0", RESET: "0"},  # a mock server's placeholders
         RateLimitInfo(remaining=0, reset=0.0, malformed=(LIMIT,))),
        (
            {LIMIT: "junk", REMAINING: "5", RESET: "-1"},
            RateLimitInfo(remaining=5, malformed=(LIMIT, RESET)),
        ),
        ({"Content-Type": "application/json"}, None),
    ],
)
def test_malformed_fields_are_ignored(
    headers: dict[str, str], expected: RateLimitInfo | None
) -> None:
    """Malformed or absurd values are dropped, and named in ``malformed`` so the pacer can count
    them; what is left (maybe nothing) is returned."""
    assert parse_ratelimit(headers) == expected


def test_newer_draft_picks_the_item_nearest_exhaustion() -> None:
    """`RateLimit` + `RateLimit-Policy`: the lowest r/t item names the binding policy."""
    info = parse_ratelimit(
        {
            "RateLimit-Policy": '"burst";q=100;w=60, "daily";q=1000;w=86400',
            "RateLimit": '"burst";r=50;t=30, "daily";r=10;t=3600',
        }
    )
    assert info == RateLimitInfo(
        limit=1000,
        window=86_400.0,
        remaining=10,
        reset=3600.0,
        policies=((100, 60.0), (1000, 86_400.0)),
    )


def test_newer_draft_policy_alone_still_plans() -> None:
    """A policy without state still gives the sustained rate."""
    info = parse_ratelimit({"ratelimit-policy": '"p";q=600;w=60'})
    assert info is not None
    assert info.sustained_rate == pytest.approx(10.0)
    assert info.remaining is None


def test_old_form_wins_when_both_are_present() -> None:
    """Zuora's draft -02 fields take precedence over the newer pair."""
    info = parse_ratelimit(
        {"RateLimit-Remaining": "5", "RateLimit": '"p";r=99;t=1', "RateLimit-Policy": '"p";q=9;w=1'}
    )
    assert info == RateLimitInfo(remaining=5)


def test_concurrency_headers() -> None:
    """Zuora's Concurrency-Limit-* triple; malformed parts are dropped."""
    headers = {
        "Concurrency-Limit-Type": "Default",
        "concurrency-limit-limit": "40",
        "Concurrency-Limit-Remaining": "39",
    }
    assert parse_concurrency(headers) == ConcurrencyInfo("Default", 40, 39)
    assert parse_concurrency({"Concurrency-Limit-Limit": "0"}) is None
    assert parse_concurrency(
        {"Concurrency-Limit-Limit": "x", "Concurrency-Limit-Remaining": "0"}
    ) == (ConcurrencyInfo(remaining=0))
    assert parse_concurrency({}) is None


_NOW = datetime(2015, 10, 21, 7, 27, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("inf", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
        ("Wed, 21 Oct 2015 07:28:00 -0000", 60.0),
        ("Wednesday, 21-Oct-15 07:29:00 GMT", 120.0),
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),
        ("Wed, 21 Oct 99999 07:28:00 GMT", None),
    ],
)
def test_retry_after(value: str | None, expected: float | None) -> None:
    """Delta-seconds or HTTP-date; past dates and negatives clamp to 0; junk is None."""
    assert parse_retry_after(value, _NOW) == expected


_header_names = st.sampled_from(
    [
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "RateLimit",
        "RateLimit-Policy",
        "Concurrency-Limit-Limit",
        "Concurrency-Limit-Remaining",
        "Concurrency-Limit-Type",
    ]
)


@given(st.dictionaries(_header_names, st.text(max_size=60)), st.text(max_size=40))
def test_parsers_never_raise(headers: dict[str, str], retry_after: str) -> None:
    """Arbitrary header text never raises, and what is returned is sane."""
    info = parse_ratelimit(headers)
    if info is not None:
        assert info.reset is None or 0 <= info.reset <= 86_400
        assert info.remaining is None or info.remaining >= 0
        assert all(q > 0 and w > 0 for q, w in info.policies)
    parse_concurrency(headers)
    delay = parse_retry_after(retry_after, _NOW)
    assert delay is None or delay >= 0
