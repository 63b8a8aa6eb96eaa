"""Every outcome a selected run can end with, staged against the emulator over real HTTP.

Runs change state between listing and cancel through ``JobDeps.on_selected`` (called after
selection, before the first DELETE), which mutates the emulator running on the same loop.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
from aioresponses import aioresponses

from worker.cli import exit_code_of
from worker.models import Outcome

FAST = ("--rate", "1000", "--concurrency", "16")


def _outcomes(result):
    return {r.run.id: r.outcome for r in result.records.values() if r.selected}


def _deletes_per_run(emu):
    return Counter(r.run_id for r in emu.deletes())


async def test_cancelled(make_emulator, job_settings, job):
    """An in-progress run is cancelled with one DELETE: outcome cancelled, attempts 1."""
    emu = await make_emulator(runs=0)
    emu.add_run(run_id="r1")
    result = await job(job_settings(emu))
    assert _outcomes(result) == {"r1": Outcome.CANCELLED}
    assert result.records["r1"].attempts == 1
    assert emu.cancelled_ids() == {"r1"}
    assert emu.runs["r1"].status == "CANCELLED"


@pytest.mark.parametrize("status", ["CANCELLED", "CANCELED"])
async def test_already_cancelled_by_delete_message(make_emulator, job_settings, job, status):
    """A DELETE answering "was canceled" (run cancelled meanwhile) gives already_cancelled."""
    emu = await make_emulator(runs=0)
    emu.add_run(run_id="r1")
    emu.add_run(run_id="r2")

    def cancel_meanwhile(_n: int) -> None:
        emu.runs["r1"].status = status

    result = await job(job_settings(emu), on_selected=cancel_meanwhile)
    assert _outcomes(result) == {"r1": Outcome.ALREADY_CANCELLED, "r2": Outcome.CANCELLED}
    assert _deletes_per_run(emu) == {"r1": 1, "r2": 1}
    assert emu.count("get") == 0  # a success needs no follow-up


@pytest.mark.parametrize("terminal", ["COMPLETED", "ERROR", "INVALID"])
@pytest.mark.parametrize("refusal_status", [400, 200, 409])
async def test_already_finished_after_refusal(make_emulator, job_settings, job, terminal,
                                              refusal_status):
    """A run that finished before its DELETE is refused, and the follow-up GET shows it."""
    emu = await make_emulator(runs=0, refusal_status=refusal_status)
    emu.add_run(run_id="r1")
    emu.add_run(run_id="r2")

    def finish_meanwhile(_n: int) -> None:
        emu.runs["r1"].status = terminal

    result = await job(job_settings(emu), on_selected=finish_meanwhile)
    assert _outcomes(result) == {"r1": Outcome.ALREADY_FINISHED, "r2": Outcome.CANCELLED}
    assert result.records["r1"].error is None
    assert _deletes_per_run(emu) == {"r1": 1, "r2": 1}  # a refusal is never retried
    gets = [r for r in emu.records if r.kind == "get"]
    assert [r.run_id for r in gets] == ["r1"]
    assert "r1" not in emu.cancelled_ids()


async def test_already_finished_by_drift(make_emulator, job_settings, job):
    """Runs that the server completes right after listing end as already_finished, exit 0."""
    emu = await make_emulator(runs=0, drift_complete=3)
    for i in range(3):
        emu.add_run(run_id=f"r{i}")
    result = await job(job_settings(emu))
    assert set(_outcomes(result).values()) == {Outcome.ALREADY_FINISHED}
    assert len(_outcomes(result)) == 3
    assert emu.cancelled_ids() == set()


async def test_not_found_when_deleted_meanwhile(make_emulator, job_settings, job):
    """A run deleted between listing and cancel gives not_found (404), not a failure."""
    emu = await make_emulator(runs=0)
    emu.add_run(run_id="r1")
    emu.add_run(run_id="r2")

    def delete_meanwhile(_n: int) -> None:
        del emu.runs["r1"]

    result = await job(job_settings(emu), on_selected=delete_meanwhile)
    assert _outcomes(result) == {"r1": Outcome.NOT_FOUND, "r2": Outcome.CANCELLED}
    assert _deletes_per_run(emu) == {"r1": 1, "r2": 1}  # 404 is never retried
    assert result.records["r1"].error is None


async def test_failed_after_bounded_attempts(make_emulator, job_settings, job):
    """A poison run answering 500 is retried up to max attempts, then unknown with the error."""
    emu = await make_emulator(runs=0, poison_ids={"bad"})
    emu.add_run(run_id="bad")
    emu.add_run(run_id="ok")
    result = await job(job_settings(emu), attempts=3)
    assert _outcomes(result) == {"bad": Outcome.UNKNOWN, "ok": Outcome.CANCELLED}
    bad = result.records["bad"]
    assert bad.attempts == 3
    assert _deletes_per_run(emu) == {"bad": 3, "ok": 1}
    assert bad.error is not None
    assert "500" in bad.error
    assert result.stop_reason is None


async def test_forbidden_cancel_is_failed_and_not_retried(make_emulator, job_settings, job):
    """A 403 on DELETE is failed at once, with a hint about the missing permission."""
    emu = await make_emulator(runs=0, forbid_cancel=True)
    emu.add_run(run_id="r1")
    result = await job(job_settings(emu))
    rec = result.records["r1"]
    assert rec.outcome is Outcome.FAILED
    assert rec.attempts == 1
    assert "403" in (rec.error or "")
    assert "Manage All Reports" in (rec.error or "")
    assert len(emu.deletes()) == 1


async def test_would_cancel_in_plan(make_emulator, job_settings, job):
    """plan gives would_cancel to each selected run and sends no DELETE or GET."""
    emu = await make_emulator(runs=0)
    emu.add_run(run_id="r1")
    emu.add_run(run_id="young", age_s=10)
    result = await job(job_settings(emu, "plan"))
    assert _outcomes(result) == {"r1": Outcome.WOULD_CANCEL}
    assert result.records["young"].outcome is None
    assert emu.count("delete") == emu.count("get") == 0


async def test_not_attempted_when_systemic_403_stops_the_job(make_emulator, job_settings, job):
    """After 5 identical 403s the job stops: the remaining runs are not_attempted, never sent."""
    emu = await make_emulator(runs=0, forbid_cancel=True)
    for i in range(12):
        emu.add_run(run_id=f"r{i:02d}")
    result = await job(job_settings(emu, flags={"pacing.concurrency": "1"}))
    outcomes = Counter(_outcomes(result).values())
    assert outcomes[Outcome.FAILED] == 5
    assert outcomes[Outcome.NOT_ATTEMPTED] == 7
    assert len(emu.deletes()) == 5
    assert exit_code_of(result.stop_kind) == 3
    not_sent = {k for k, v in _outcomes(result).items() if v is Outcome.NOT_ATTEMPTED}
    assert not not_sent & {r.run_id for r in emu.deletes()}


async def test_every_selected_run_gets_exactly_one_outcome(make_emulator, job_settings, job):
    """A mixed population: every selected run ends with one outcome, unselected with none."""
    emu = await make_emulator(runs=0, poison_ids={"p"})
    for run_id in ("a", "b", "gone", "done", "p"):
        emu.add_run(run_id=run_id)
    emu.add_run(run_id="young", age_s=30)

    def mutate(_n: int) -> None:
        del emu.runs["gone"]
        emu.runs["done"].status = "COMPLETED"
        emu.runs["b"].status = "CANCELLED"

    result = await job(job_settings(emu), on_selected=mutate, attempts=2)
    assert _outcomes(result) == {
        "a": Outcome.CANCELLED, "b": Outcome.ALREADY_CANCELLED, "gone": Outcome.NOT_FOUND,
        "done": Outcome.ALREADY_FINISHED, "p": Outcome.UNKNOWN}
    assert result.records["young"].outcome is None


# ------------------------------------------------------------------ cases the emulator cannot stage
# aioresponses patches aiohttp, the one HTTP client, so these run the real client stack.
BASE = "https://rest.example.test"
API = BASE + "/reporting/api/rest/v1"
LIST_URL = re.compile(re.escape(API) + r"/reportruns\?.*")
ITEM = {"id": "r1", "reportId": "rep", "reportType": "Detail", "status": "STARTED",
        "startedOn": "2020-01-01T00:00:00.000+0000",
        "createdByUserProfile": {"username": "alice@example.com"}}


def _mock_listing(m: aioresponses) -> None:
    m.post(BASE + "/oauth/token", payload={"access_token": "tok", "expires_in": 3600},
           repeat=True)
    m.post(LIST_URL, payload={"success": True, "response": [ITEM]})
    m.post(LIST_URL, payload={"success": True, "response": []})


def _sent(m: aioresponses, method: str) -> int:
    return sum(len(calls) for (verb, _url), calls in m.requests.items() if verb == method)


@pytest.mark.parametrize(("get_status", "want"), [
    ("CANCELED", Outcome.ALREADY_CANCELLED),
    ("CANCELLED", Outcome.ALREADY_CANCELLED),
    ("COMPLETED", Outcome.ALREADY_FINISHED),
    ("STARTED", Outcome.FAILED),
])
async def test_refusal_then_get_decides(job_settings, job, get_status, want):
    """A refused DELETE is followed by one GET; its status decides the outcome."""
    settings = job_settings(_Fake(BASE))
    with aioresponses() as m:
        _mock_listing(m)
        m.delete(API + "/reportruns/r1", status=400,
                 payload={"success": False, "errorCode": "ZAN-USAGE-REST-ERROR",
                          "message": "cannot cancel"})
        m.get(API + "/reportruns/r1", payload={"success": True,
                                               "response": {**ITEM, "status": get_status}})
        result = await job(settings)
    rec = result.records["r1"]
    assert rec.outcome is want
    assert _sent(m, "DELETE") == 1
    assert _sent(m, "GET") == 1
    if want is Outcome.FAILED:
        assert "cannot cancel" in (rec.error or "")
        assert "STARTED" in (rec.error or "")
    else:
        assert rec.error is None


async def test_refusal_then_get_404_is_not_found(job_settings, job):
    """A refused DELETE whose follow-up GET answers 404 ends as not_found."""
    settings = job_settings(_Fake(BASE))
    with aioresponses() as m:
        _mock_listing(m)
        m.delete(API + "/reportruns/r1", status=400, payload={"success": False})
        m.get(API + "/reportruns/r1", status=404, payload={"success": False})
        result = await job(settings)
    assert result.records["r1"].outcome is Outcome.NOT_FOUND


@pytest.mark.parametrize("answer", [
    {"success": True, "response": {**ITEM, "id": "someone-else", "status": "COMPLETED"}},
    {"success": True, "response": {**ITEM, "status": "PAUSED"}},
    {"success": False, "response": {**ITEM, "status": "CANCELED"}},
], ids=["another-run", "unknown-status", "success-false"])
async def test_follow_up_get_is_checked_like_the_read_back(job_settings, job, answer):
    """The GET after a refused DELETE must be about this run, in a status we know, in a usable
    answer; anything else tells nothing, and the definitive refusal stays failed."""
    settings = job_settings(_Fake(BASE))
    with aioresponses() as m:
        _mock_listing(m)
        m.delete(API + "/reportruns/r1", status=400,
                 payload={"success": False, "message": "cannot cancel"})
        m.get(API + "/reportruns/r1", status=200 if answer["success"] else 409, payload=answer)
        result = await job(settings)
    rec = result.records["r1"]
    assert rec.outcome is Outcome.FAILED
    assert "cannot cancel" in (rec.error or "")


def test_a_stop_during_the_follow_up_get_keeps_the_refusal(emu_thread, cli, monkeypatch):
    """The DELETE was refused (a definitive answer) and the job stops while the follow-up GET
    hangs: the run is failed (refused), not unknown."""
    monkeypatch.setattr("worker.control.GRACE_SECONDS", 0.2)
    emu = emu_thread(runs=0, stall={"get": 5.0})
    emu.add_run(run_id="r1", status="STARTED", age_s=7200)
    emu.config.cancel_script = {"r1": ["refuse"]}
    res = cli(emu, "run", *FAST, "--deadline", "0.5s")
    assert res.code == 5, res.stderr
    assert res.outcomes() == {"r1": "failed"}
    entry = res.report["runs"][0]
    assert "cannot be canceled" in entry["error"]
    assert "follow-up GET interrupted" in entry["error"]
    assert emu.count("delete") == 1


class _Fake:
    """Stands in for an emulator where only a base URL is needed."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url


def test_failed_run_exits_1_via_cli(emu_thread, cli):
    """A run that fails after retries makes the CLI exit 1 and records the error in the report."""
    emu = emu_thread(runs=0, poison_ids={"bad"})
    emu.add_run(run_id="bad")
    emu.add_run(run_id="ok")
    res = cli(emu, "run", *FAST, "--max-attempts", "2")
    assert res.code == 1
    assert res.outcomes() == {"bad": "unknown", "ok": "cancelled"}
    entry = next(r for r in res.report["runs"] if r["id"] == "bad")
    assert entry["attempts"] == 2
    assert "500" in entry["error"]
    assert "1 selected run(s) failed" in res.stderr

