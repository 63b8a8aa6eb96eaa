"""Parsing of API bodies (times, runs, listing shapes) and of durations, with properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import LOOSE_JSON

from worker.api_bodies import describe_error, parse_run, parse_time, reason_codes
from worker.errors import UnusableResponse
from worker.listing import extract_items

T = datetime(2018, 4, 13, 2, 11, 38, 464000, tzinfo=UTC)


# ------------------------------------------------------------------ parse_time
@pytest.mark.parametrize("value", [
    1523585498464,  # epoch ms
    1523585498464.0,
    "1523585498464",
    1523585498.464,  # epoch s
    "1523585498.464",
    "2018-04-13T02:11:38.464+0000",  # Zuora's ISO form
    "2018-04-13T02:11:38.464+00:00",
    "2018-04-13T02:11:38.464Z",
    " 2018-04-13T02:11:38.464+0000 ",
    "2018-04-13T04:11:38.464+0200",
    "2018-04-12T21:11:38.464-0500",
    "2018-04-13 02:11:38.464+0000",
])
def test_parse_time_accepts_every_format(value):
    """Epoch ms or s (numbers or digit strings) and ISO with +0000, +00:00 or Z all read alike."""
    parsed = parse_time(value)
    assert parsed is not None
    assert parsed.tzinfo is not None
    assert abs(parsed - T) < timedelta(milliseconds=1)


def test_parse_time_seconds_without_fraction():
    """Whole epoch seconds and an ISO time without milliseconds."""
    want = datetime(2018, 4, 13, 2, 11, 38, tzinfo=UTC)
    assert parse_time(1523585498) == want
    assert parse_time("2018-04-13T02:11:38+0000") == want
    assert parse_time("2018-04-13T02:11:38Z") == want


def test_parse_time_returns_utc():
    """An offset time is converted to UTC."""
    parsed = parse_time("2018-04-13T04:11:38.464+0200")
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo in (UTC, timezone.utc)  # noqa: UP017


@pytest.mark.parametrize("value", [
    None, True, False, "", "   ", "yesterday", "2018-04-13T02:11:38",  # naive: refused
    "2018-04-13", 0, -1, -1523585498464, float("nan"), float("inf"), float("-inf"), 1e30,
    "9" * 40, [], {}, 1.0, 86400 * 365, "1999-12-31T23:59:59Z",  # before 2000: implausible
    "2018-13-45T99:99:99Z", "1523585498464ms",
])
def test_parse_time_rejects_garbage(value):
    """Anything unreadable, naive, non-finite or implausibly old gives None, never raises."""
    assert parse_time(value) is None


@given(LOOSE_JSON | st.binary())
def test_parse_time_never_raises(value):
    """parse_time returns an aware datetime or None for any input."""
    parsed = parse_time(value)
    assert parsed is None or parsed.tzinfo is not None


@given(st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2200, 1, 1),
                    timezones=st.just(UTC)))
def test_parse_time_round_trips_both_formats(moment):
    """A time rendered as epoch ms or as Zuora ISO reads back to the same millisecond."""
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    epoch_ms = int(moment.timestamp() * 1000)
    iso = moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond // 1000:03d}+0000"
    assert abs(parse_time(epoch_ms) - moment) <= timedelta(milliseconds=1)
    assert parse_time(iso) == moment


# ------------------------------------------------------------------ parse_run
GOOD = {"id": "r1", "reportId": "rep", "reportType": "Detail", "status": "queryData",
        "startedOn": 1523585498464, "updatedOn": "2018-04-13T03:00:00.000+0000",
        "createdByUserProfile": {"username": "alice@example.com"}}


def test_parse_run_reads_every_field():
    """A complete item gives a parseable run with upper-cased status and both times."""
    run = parse_run(GOOD)
    assert run.parseable
    assert (run.id, run.report_id, run.report_type, run.status, run.created_by) == (
        "r1", "rep", "Detail", "QUERYDATA", "alice@example.com")
    assert run.started_on is not None
    assert abs(run.started_on - T) < timedelta(milliseconds=1)
    assert run.updated_on == datetime(2018, 4, 13, 3, tzinfo=UTC)


@pytest.mark.parametrize("item", [
    {**{k: v for k, v in GOOD.items() if k != "createdByUserProfile"},
     "createdByUserProfile.username": "alice@example.com"},
    {**{k: v for k, v in GOOD.items() if k != "createdByUserProfile"},
     "createdBy": "alice@example.com"},
])
def test_parse_run_user_field_styles(item):
    """Nested and dotted (and plain createdBy) user fields are all read."""
    assert parse_run(item).created_by == "alice@example.com"


def test_parse_run_alternative_spellings():
    """reportRunId and reportID are accepted; an integer id becomes a string."""
    run = parse_run({"reportRunId": 42, "reportID": "rep", "status": "STARTED",
                     "startedOn": 1523585498464})
    assert run.parseable
    assert (run.id, run.report_id) == ("42", "rep")


@pytest.mark.parametrize(("item", "missing"), [
    ({**GOOD, "id": None}, "id"),
    ({**GOOD, "id": ""}, "id"),
    ({**GOOD, "id": 1.5}, "id"),
    ({**GOOD, "status": None}, "status"),
    ({**GOOD, "status": ""}, "status"),
    ({**GOOD, "startedOn": None}, "startedOn"),
    ({**GOOD, "startedOn": "last tuesday"}, "startedOn"),
    ({**GOOD, "startedOn": 0}, "startedOn"),
    ({**GOOD, "startedOn": "2018-04-13T02:11:38"}, "startedOn"),
    ({k: v for k, v in GOOD.items() if k != "startedOn"}, "startedOn"),
])
def test_parse_run_unparseable(item, missing):
    """A run whose id, status or startedOn cannot be read carries a problem naming the field."""
    run = parse_run(item)
    assert not run.parseable
    assert run.problem is not None
    assert missing in run.problem


@pytest.mark.parametrize("item", [None, "r1", 42, ["r1"], True])
def test_parse_run_non_object(item):
    """A list item that is not an object is unparseable, not an exception."""
    run = parse_run(item)
    assert not run.parseable
    assert run.id is None


@given(st.dictionaries(st.sampled_from(["id", "status", "startedOn", "updatedOn", "reportId",
                                        "reportType", "createdByUserProfile", "createdBy"]),
                       st.one_of(st.none(), st.text(), st.integers(), st.floats(),
                                 st.booleans(), st.dictionaries(st.text(), st.text()))))
def test_parse_run_never_raises(item):
    """parse_run never raises; a parseable run always has id, status and startedOn."""
    run = parse_run(item)
    if run.parseable:
        assert run.id
        assert run.status
        assert run.started_on is not None


def test_unknown_status_is_kept():
    """An unknown status is kept as read (selection then refuses it by status)."""
    assert parse_run({**GOOD, "status": "Paused"}).status == "PAUSED"


# ------------------------------------------------------------------ extract_items
ITEMS = [{"id": "a"}, {"id": "b"}]


@pytest.mark.parametrize("body", [
    {"success": True, "response": ITEMS},
    {"success": True, "response": {"content": ITEMS, "totalElements": 2, "currentPage": 1}},
    {"response": {"runs": ITEMS, "meta": {"total": 2}}},
])
def test_extract_items_shapes(body):
    """A list response, or the single list-valued field of a response object."""
    assert extract_items(body) == ITEMS


def test_extract_items_named_field():
    """list_items_field picks one of several list fields."""
    body = {"response": {"content": ITEMS, "warnings": []}}
    assert extract_items(body, "content") == ITEMS
    with pytest.raises(UnusableResponse, match="'items'"):
        extract_items(body, "items")


def test_extract_items_empty_page_is_empty():
    """An empty list is a real empty page (the end of the listing)."""
    assert extract_items({"success": True, "response": []}) == []
    assert extract_items({"success": True, "response": {"content": [], "total": 0}}) == []


@pytest.mark.parametrize(("body", "named"), [
    ({"success": True, "response": {"total": 3}}, "total"),
    ({"success": True, "response": {"a": [], "b": []}}, "list_items_field"),
    ({"success": True, "data": ITEMS}, "data"),
    ({"success": True}, "success"),
    ({"success": True, "response": "OK"}, "response"),
    ({"success": False, "message": "no access"}, "no access"),
    ([{"id": "a"}], "list"),
    ("<html>", "str"),
    (None, "NoneType"),
])
def test_extract_items_errors_name_what_was_seen(body, named):
    """Anything but a readable list raises UnusableResponse naming the keys or type seen."""
    with pytest.raises(UnusableResponse) as info:
        extract_items(body)
    assert named in str(info.value)


def test_describe_error_and_reason_codes():
    """Error bodies are summarised from errorCode, message and reasons[]."""
    body = {"success": False, "errorCode": "ZAN-1", "message": "bad",
            "reasons": [{"code": 53100070, "message": "slow down"}]}
    assert describe_error(body) == "ZAN-1; bad; 53100070: slow down"
    assert reason_codes(body) == ["ZAN-1", "53100070"]
    assert describe_error(None) == "None"
    assert describe_error({}) == "no error details"
    assert reason_codes("x") == []
