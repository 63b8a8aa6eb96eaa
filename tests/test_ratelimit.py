"""The limits an answer announces: Zuora's multi-window RateLimit headers (both families),
Retry-After, the concurrency limit; lenient on garbage, never raising."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.ratelimit import (
    TENANTS,
    Window,
    parse_concurrency_limit,
    parse_limits,
    parse_retry_after,
)

SANDBOX = (Window(60, 2500), Window(3600, 5000), Window(86400, 10000))


def test_zuoras_multi_window_form_in_lower_case():
    """The developer guide's own example: every window. Its first item (2,500) is the minute's
    quota, but a 1,200 s reset fits no minute: which window 399 describes is not said."""
    limits = parse_limits({"ratelimit-limit": "2500, 2500;w=60, 5000;w=3600, 10000;w=86400",
                           "ratelimit-remaining": "399", "ratelimit-reset": "1200"})
    assert limits is not None
    assert limits.windows == SANDBOX
    assert limits.nearest is None
    assert (limits.remaining, limits.reset) == (399, 1200.0)
    assert limits.malformed == ()


def test_the_first_item_names_the_minute_when_the_reset_fits_it():
    limits = parse_limits({"ratelimit-limit": "2500, 2500;w=60, 5000;w=3600, 10000;w=86400",
                           "ratelimit-remaining": "399", "ratelimit-reset": "61"})
    assert limits is not None
    assert limits.nearest == Window(60, 2500)  # 61: a whole-second reset rounded up


def test_the_first_item_names_a_longer_window_when_it_is_the_nearest():
    limits = parse_limits({"RateLimit-Limit": "5000, 2500;w=60, 5000;w=3600, 10000;w=86400",
                           "RateLimit-Remaining": "12", "RateLimit-Reset": "1800"})
    assert limits is not None
    assert limits.nearest == Window(3600, 5000)


def test_two_windows_of_one_quota_are_told_apart_by_the_reset():
    """The same quota for a minute and an hour: the reset (whole seconds) fits only one."""
    headers = {"RateLimit-Limit": "100, 100;w=60, 100;w=3600", "RateLimit-Remaining": "5"}
    assert parse_limits({**headers, "RateLimit-Reset": "30"}).nearest == Window(60, 100)
    assert parse_limits({**headers, "RateLimit-Reset": "900"}).nearest == Window(3600, 100)
    assert parse_limits(headers).nearest is None  # no reset: the answer does not tell


def test_draft_10_policy_and_state():
    limits = parse_limits({"RateLimit-Policy": '"min";q=100;w=60, "day";q=1000;w=86400',
                           "RateLimit": '"min";r=80;t=12, "day";r=40;t=3000'})
    assert limits is not None
    assert limits.windows == (Window(60, 100), Window(86400, 1000))
    assert limits.nearest == Window(86400, 1000)  # 4 % left of the day, 80 % of the minute
    assert (limits.remaining, limits.reset) == (40, 3000.0)


@pytest.mark.parametrize(("headers", "malformed"), [
    ({"RateLimit-Limit": "unlimited", "RateLimit-Remaining": "0", "RateLimit-Reset": "0"},
     ("RateLimit-Limit",)),
    ({"RateLimit-Limit": "10;w=60", "RateLimit-Remaining": "-1"}, ("RateLimit-Remaining",)),
    ({"RateLimit-Limit": "10;w=60", "RateLimit-Reset": "999999"}, ("RateLimit-Reset",)),
])
def test_what_cannot_be_read_is_named_and_ignored(headers, malformed):
    limits = parse_limits(headers)
    assert limits is not None
    assert limits.malformed == malformed


def test_no_ratelimit_fields_is_none():
    assert parse_limits({"Content-Type": "application/json"}) is None


def test_the_tenant_presets_are_zuoras_documented_quotas():
    assert TENANTS["api-sandbox"] == SANDBOX
    assert [w.name for w in SANDBOX] == ["minute", "hourly", "daily"]


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0), ("1.5", 1.5), ("-3", 0.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
    ("soon", None), (None, None), ("", None)])
def test_retry_after(value, seconds):
    now = 1445412420.0  # 07:27:00 that day
    assert parse_retry_after(value, now) == seconds


def test_concurrency_limit():
    assert parse_concurrency_limit({"Concurrency-Limit-Limit": "40"}) == 40
    assert parse_concurrency_limit({"Concurrency-Limit-Limit": "0"}) is None
    assert parse_concurrency_limit({}) is None


HEADER_VALUES = (st.text(max_size=40)
                 | st.from_regex(r"[0-9, ;=wqrt\"a-z.-]{0,40}", fullmatch=True))
HEADER_MAPS = st.dictionaries(
    st.sampled_from(["RateLimit-Limit", "ratelimit-remaining", "RateLimit-Reset", "RateLimit",
                     "RateLimit-Policy", "Concurrency-Limit-Limit", "Retry-After", "X-Other"]),
    HEADER_VALUES, max_size=6)


@settings(max_examples=200, deadline=None)
@given(HEADER_MAPS)
def test_the_parsers_never_raise_and_give_sane_values(headers: dict[str, str]) -> None:
    limits = parse_limits(headers)
    if limits is not None:
        assert all(w.quota >= 1 and 0 < w.seconds < math.inf for w in limits.windows)
        assert list(limits.windows) == sorted(limits.windows)
        assert limits.remaining is None or limits.remaining >= 0
        assert limits.reset is None or 0 <= limits.reset < math.inf
    limit = parse_concurrency_limit(headers)
    assert limit is None or limit >= 1
    delay = parse_retry_after(headers.get("Retry-After"), 1e9)
    assert delay is None or (math.isfinite(delay) and delay >= 0)


@pytest.mark.parametrize(("limit", "reset", "described"), [
    ("2500, 2500;w=60, 5000;w=3600, 10000;w=86400", "1200", SANDBOX[1:]),  # the guide's own
    ("2500, 2500;w=60, 5000;w=3600, 10000;w=86400", "30", SANDBOX[:1]),
    ("5000, 2500;w=60, 5000;w=3600, 10000;w=86400", "30", SANDBOX[1:2]),  # named by quota
    ("9, 2500;w=60, 5000;w=3600, 10000;w=86400", "4000", SANDBOX[2:]),
    ("9, 2500;w=60, 5000;w=3600, 10000;w=86400", "90000", ()),
])
def test_the_windows_remaining_describes(limit: str, reset: str,
                                         described: tuple[Window, ...]) -> None:
    """Named by the first item's quota when a window of that quota has room for the reset;
    else the shortest the reset fits; else, unsaid, every window the reset fits."""
    limits = parse_limits({"ratelimit-limit": limit, "ratelimit-remaining": "9",
                           "ratelimit-reset": reset})
    assert limits is not None
    assert limits.described() == described
