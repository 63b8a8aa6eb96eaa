"""Bad input from the server never crashes the job and never causes a wrong cancel."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import worker.emulator.app as emu_app
import worker.emulator.handlers as emu_handlers
from worker.emulator.replies import Reply

FAST = ("--rate", "1000", "--concurrency", "16")


@pytest.mark.parametrize(("fault", "message"), [
    ("html", "not JSON (text/html"),
    ("text", "not JSON (text/plain"),
    ("no_list", "keys: ['total']"),
    ("truncated", "not JSON"),
    ("huge", "reportruns answer refused: its body passed the cap of 8 MiB"),
])
def test_unreadable_list_body_exits_6_without_cancelling(emu_thread, cli, fault, message):
    """A listing body that cannot be read stops the job with exit 6 and zero DELETEs."""
    emu = emu_thread(runs=0, list_fault=fault)
    for _ in range(5):
        emu.add_run(status="STARTED", age_s=7200)
    res = cli(emu, "run", "--older-than", "1h", *FAST)
    assert res.code == 6, res.stderr
    assert emu.deletes() == []
    assert message in res.stderr


def _garble_items(monkeypatch: pytest.MonkeyPatch, garbage: dict[str, Any]) -> None:
    """Serve ``garbage[run.id](item)`` instead of the emulator's well-formed list item."""
    original = emu_handlers.list_item

    def list_item(run: Any, config: Any) -> Any:
        item = original(run, config)
        mangle = garbage.get(run.id)
        return mangle(item) if mangle else item

    monkeypatch.setattr(emu_handlers, "list_item", list_item)


def _without(key: str) -> Any:
    return lambda item: {k: v for k, v in item.items() if k != key}


def _with(key: str, value: Any) -> Any:
    return lambda item: {**item, key: value}


GARBAGE: dict[str, tuple[Any, str]] = {
    "no_id": (_without("id"), "unparseable"),
    "no_status": (_without("status"), "unparseable"),
    "no_started": (_without("startedOn"), "unparseable"),
    "id_list": (_with("id", ["x"]), "unparseable"),
    "id_bool": (_with("id", True), "unparseable"),
    "started_text": (_with("startedOn", "yesterday"), "unparseable"),
    "started_bool": (_with("startedOn", True), "unparseable"),
    "started_naive": (_with("startedOn", "2020-01-01T00:00:00"), "unparseable"),
    "started_nan": (_with("startedOn", "NaN"), "unparseable"),
    "not_object": (lambda item: "garbage", "unparseable"),
    "null_item": (lambda item: None, "unparseable"),
    "status_number": (_with("status", 5), "status"),
    "status_unknown": (_with("status", "RUNNING"), "status"),
    "status_object": (_with("status", {"name": "STARTED"}), "unparseable"),
    "future": (_with("startedOn", int((time.time() + 86400) * 1000)), "too_young"),
}


def test_garbage_items_are_never_cancelled(emu_thread, cli, monkeypatch):
    """Items with missing, mistyped or impossible fields are reported and never DELETEd."""
    emu = emu_thread(runs=0)
    good = {emu.add_run(status="STARTED", age_s=7200).id for _ in range(3)}
    bad = {name: emu.add_run(status="STARTED", age_s=7200).id for name in GARBAGE}
    _garble_items(monkeypatch, {bad[name]: mangle for name, (mangle, _) in GARBAGE.items()})
    res = cli(emu, "run", "--older-than", "1h", *FAST)
    assert res.code == 0, res.stderr
    assert {r.run_id for r in emu.deletes()} == good
    assert emu.cancelled_ids() == good
    report = res.report
    assert report["counts"]["listed"] == len(good) + len(GARBAGE)
    by_id = {r["id"]: r for r in report["runs"] if r["id"] is not None}
    for name, (_, reason) in GARBAGE.items():
        if bad[name] in by_id:
            assert by_id[bad[name]]["reason"] == reason, name
            assert not by_id[bad[name]]["selected"]
    expected_unparseable = sum(1 for _, reason in GARBAGE.values() if reason == "unparseable")
    assert report["counts"]["unparseable"] == expected_unparseable


def test_runs_file_with_odd_runs(emu_thread, cli, tmp_path):
    """A runs file with unknown statuses and future start times: only the sane run is cancelled."""
    now_ms = int(time.time() * 1000)
    runs = [
        {"id": "a" * 32, "status": "STARTED", "startedOn": now_ms - 7_200_000},
        {"id": "b" * 32, "status": "WAITING", "startedOn": now_ms - 7_200_000},
        {"id": "c" * 32, "status": "QUERYDATA", "startedOn": now_ms + 86_400_000},
        {"id": "d" * 32, "status": "PROCESSINGDATA",
         "startedOn": "2999-01-01T00:00:00.000+0000"},
    ]
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(runs))
    emu = emu_thread(runs_file=str(path))
    res = cli(emu, "run", "--older-than", "1h", "--status", "STARTED", "--status", "QUERYDATA",
              "--status", "PROCESSINGDATA", *FAST)
    assert res.code == 0, res.stderr
    assert emu.cancelled_ids() == {"a" * 32}
    assert [r.run_id for r in emu.deletes()] == ["a" * 32]
    reasons = {r["id"]: r["reason"] for r in res.report["runs"]}
    assert reasons["c" * 32] == reasons["d" * 32] == "too_young"


HTML = b"<html><body>Gateway says hello</body></html>"


def _garble_cancels(monkeypatch: pytest.MonkeyPatch, modes: dict[str, str]) -> None:
    """Answer DELETEs of chosen runs with garbage, having cancelled the run or not."""
    original = emu_app.cancel_run

    def cancel_run(state: Any, config: Any, run_id: str) -> Reply:
        mode = modes.get(run_id)
        if mode is None:
            return original(state, config, run_id)
        if mode.startswith("cancel+"):
            original(state, config, run_id)
        kind = mode.removeprefix("cancel+")
        if kind == "html":
            return Reply(200, raw=HTML, content_type="text/html")
        if kind == "truncated":
            return Reply(200, raw=b'{"success": tr')
        if kind == "empty":
            return Reply(200, raw=b"")
        if kind == "list":
            return Reply(200, [1, 2, 3])
        if kind == "no_success":
            return Reply(200, {"response": "ok"})
        if kind == "success_text":
            return Reply(200, {"success": "true", "response": "done"})
        raise AssertionError(mode)

    monkeypatch.setattr(emu_app, "cancel_run", cancel_run)


KINDS = ("html", "truncated", "empty", "list", "no_success", "success_text")


def test_garbage_cancel_answers_never_give_a_wrong_cancelled(emu_thread, cli, monkeypatch):
    """Unreadable DELETE answers are checked with a GET: `cancelled` only when the server did."""
    emu = emu_thread(runs=0)
    modes: dict[str, str] = {}
    for kind in KINDS:
        modes[emu.add_run(status="STARTED", age_s=7200).id] = kind
        modes[emu.add_run(status="STARTED", age_s=7200).id] = "cancel+" + kind
    _garble_cancels(monkeypatch, modes)
    res = cli(emu, "run", "--older-than", "1h", *FAST)
    outcomes = res.outcomes()
    cancelled_by_server = emu.cancelled_ids()
    assert cancelled_by_server == {i for i, m in modes.items() if m.startswith("cancel+")}
    assert {i for i, o in outcomes.items() if o == "cancelled"} == cancelled_by_server
    assert {outcomes[i] for i in set(modes) - cancelled_by_server} == {"failed"}
    assert res.code == 1, res.stderr
    gets = {r.run_id for r in emu.records if r.kind == "get"}
    assert gets == set(modes), "every unreadable answer was checked with a GET"
