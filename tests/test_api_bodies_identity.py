"""No run is touched by mistake: ids exactly as the server sent them or not at all, and a run
seen in a terminal status anywhere in a job is not cancelled in that job (staged servers)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from staged import Script, answer, fixed, run_item

from worker.api_bodies import check_run_id, parse_run

FAST = ("--rate", "1000", "--concurrency", "4", "--older-than", "1h")


@pytest.mark.parametrize(("raw", "problem"), [
    ("", "is not a run id"), (".", "is not a run id"), ("..", "is not a run id"),
    (" padded ", "U+0020"), ("tab\there", "U+0009"), ("line\nbreak", "U+000A"),
    ("nul\x00", "U+0000"), ("zero\u200bwidth", "U+200B"), ("bom\ufeff", "U+FEFF"),
    ("x" * 129, "longer than 128"), (True, "bool"), (1.5, "float"), (["a"], "list"),
])
def test_ids_that_cannot_be_sent_exactly_are_unparseable(raw: Any, problem: str) -> None:
    run = parse_run({**run_item("x"), "id": raw})
    assert run.id is None
    assert not run.parseable
    assert problem in (run.problem or "")


@pytest.mark.parametrize("raw", ["2c92c0f86d9d0b1c016da1fc7b4a1234", "run-éü-1", "a" * 128,
                                 "a/b", "%2e%2e"])
def test_ids_are_kept_exactly(raw: str) -> None:
    assert check_run_id(raw) == (raw, None)
    assert parse_run({**run_item("x"), "id": raw}).id == raw


def test_invalid_utf8_id_is_never_sent_a_request(zuora, cli) -> None:
    """A listing page with invalid UTF-8 is not JSON: exit 6, and no DELETE for an id with a
    replacement character."""
    body = orjson.dumps({"success": True, "response": [run_item("bad-id-PLACEHOLDER")]})
    raw = answer(body.replace(b"PLACEHOLDER", b"\xff\xfe"),
                 headers=(("Content-Type", "application/json"),))
    server = zuora(Script(replies={"list": fixed(raw)}))
    res = cli(None, "run", "--base-url", server.origin, *FAST)
    assert res.code == 6
    assert "not JSON" in res.stderr
    assert server.seen("delete") == []


def test_dot_dot_id_is_unparseable_and_never_sent(zuora, cli) -> None:
    server = zuora(Script(runs=[run_item(".."), run_item("."), run_item("ok-1")]))
    res = cli(None, "run", "--base-url", server.origin, *FAST)
    assert res.code == 0, res.stderr
    assert [r.path.rsplit("/", 1)[1] for r in server.seen("delete")] == ["ok-1"]
    assert res.report["counts"]["unparseable"] == 2


@pytest.mark.parametrize("order", ["terminal first", "in progress first"])
def test_a_run_seen_terminal_anywhere_in_the_job_is_not_cancelled(zuora, cli, order) -> None:
    """r1 is COMPLETED on one page and STARTED on another: reason conflicting_status, no
    DELETE; r2 (in progress only) is cancelled."""
    done, live = run_item("r1", status="COMPLETED"), run_item("r1")
    first, second = (done, live) if order == "terminal first" else (live, done)
    server = zuora(Script(runs=[first, run_item("r2")], later_pages=[[second]]))
    res = cli(None, "run", "--base-url", server.origin, *FAST, "--page-size", "2")
    assert res.code == 0, res.stderr
    assert [r.path.rsplit("/", 1)[1] for r in server.seen("delete")] == ["r2"]
    reasons = {(r["id"], r["reason"]) for r in res.report["runs"]}
    assert ("r1", "conflicting_status") in reasons
    assert res.outcomes() == {"r2": "cancelled"}
