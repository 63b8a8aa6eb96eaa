"""Bad input from the server never crashes the job and never causes a wrong cancel."""

from __future__ import annotations

import json
import time
import tracemalloc
from typing import Any

import pytest

from worker.emulator.config import GARBLED_ANSWERS, REMOVE

FAST = ("--rate", "1000", "--concurrency", "16")


@pytest.mark.parametrize(("fault", "message"), [
    ("html", "not JSON (text/html"),
    ("text", "not JSON (text/plain"),
    ("no_list", "keys: ['total']"),
    ("truncated", "not JSON"),
    ("huge", "reportruns answer refused: its body passed the cap of 1,089,536 bytes"),
    ("tiny_items", "listing page 1: POST /reporting/api/rest/v1/reportruns answer refused"),
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


async def test_a_page_of_a_million_tiny_items_is_refused_before_it_is_parsed(make_emulator,
                                                                             job_settings):
    """3 MB of '{},' is a million items once parsed (past 130 MB); the body is refused at the
    cap a page of the asked size can plausibly take, so the job's memory stays bounded."""
    from worker.emulator.faults import tiny_items_body
    from worker.job import run_job

    tiny_items_body()  # the emulator's body, built before the measure
    emu = await make_emulator(runs=0, list_fault="tiny_items")
    tracemalloc.start()
    try:
        result = await run_job(job_settings(emu, "plan", {"filters.older_than": "1h"}))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.error is not None
    assert "page of 250 runs takes at most 4 KiB a run" in str(result.error)
    assert peak < 25 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def _without(key: str) -> tuple[str, Any]:
    return "patch", {key: REMOVE}


def _with(key: str, value: Any) -> tuple[str, Any]:
    return "patch", {key: value}


def _garble_items(emu: Any, garbage: dict[str, tuple[str, Any]]) -> None:
    """Serve each run's item patched, or replaced whole (the emulator's item settings)."""
    emu.config.item_patch = {rid: v for rid, (how, v) in garbage.items() if how == "patch"}
    emu.config.item_replace = {rid: v for rid, (how, v) in garbage.items() if how == "replace"}


GARBAGE: dict[str, tuple[tuple[str, Any], str]] = {
    "no_id": (_without("id"), "unparseable"),
    "no_status": (_without("status"), "unparseable"),
    "no_started": (_without("startedOn"), "unparseable"),
    "id_list": (_with("id", ["x"]), "unparseable"),
    "id_bool": (_with("id", True), "unparseable"),
    "started_text": (_with("startedOn", "yesterday"), "unparseable"),
    "started_bool": (_with("startedOn", True), "unparseable"),
    "started_naive": (_with("startedOn", "2020-01-01T00:00:00"), "unparseable"),
    "started_nan": (_with("startedOn", "NaN"), "unparseable"),
    "not_object": (("replace", "garbage"), "unparseable"),
    "null_item": (("replace", None), "unparseable"),
    "status_number": (_with("status", 5), "status"),
    "status_unknown": (_with("status", "RUNNING"), "status"),
    "status_object": (_with("status", {"name": "STARTED"}), "unparseable"),
    "future": (_with("startedOn", int((time.time() + 86400) * 1000)), "too_young"),
}


def test_garbage_items_are_never_cancelled(emu_thread, cli):
    """Items with missing, mistyped or impossible fields are reported and never DELETEd."""
    emu = emu_thread(runs=0)
    good = {emu.add_run(status="STARTED", age_s=7200).id for _ in range(3)}
    bad = {name: emu.add_run(status="STARTED", age_s=7200).id for name in GARBAGE}
    _garble_items(emu, {bad[name]: mangle for name, (mangle, _) in GARBAGE.items()})
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


KINDS = GARBLED_ANSWERS


def test_garbage_cancel_answers_never_give_a_wrong_cancelled(emu_thread, cli):
    """Unreadable DELETE answers are checked with a GET: `cancelled` only when the server did."""
    emu = emu_thread(runs=0)
    modes: dict[str, str] = {}
    for kind in KINDS:
        modes[emu.add_run(status="STARTED", age_s=7200).id] = kind
        modes[emu.add_run(status="STARTED", age_s=7200).id] = "cancel+" + kind
    emu.config.garble_cancel = modes  # answer these DELETEs with garbage, cancelled or not
    res = cli(emu, "run", "--older-than", "1h", *FAST)
    outcomes = res.outcomes()
    cancelled_by_server = emu.cancelled_ids()
    assert cancelled_by_server == {i for i, m in modes.items() if m.startswith("cancel+")}
    assert {i for i, o in outcomes.items() if o == "cancelled"} == cancelled_by_server
    # an unreadable 2xx is no refusal: a run the GET sees going on is still_running, as after a
    # lost answer (it was "failed" before issue 21, which is the word for a definitive refusal)
    assert {outcomes[i] for i in set(modes) - cancelled_by_server} == {"still_running"}
    assert res.code == 1, res.stderr
    gets = {r.run_id for r in emu.records if r.kind == "get"}
    assert gets == set(modes), "every unreadable answer was checked with a GET"
