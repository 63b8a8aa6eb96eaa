"""No unexpected exception escapes a job: a bug after the job started still writes the report
(outcomes known so far, not_attempted for the rest), the summary line and the metrics, and exits
6 with ``internal error: <Type>: <message>``; exit 1 keeps its one meaning.

The bugs are staged by making one of our own functions raise: there is no server behaviour
that should cause one."""

from __future__ import annotations

import json

import pytest

from worker import cancel as cancel_module
from worker import job as job_module

FAST = ("--rate", "1000", "--concurrency", "1", "--older-than", "1h")


def _boom_on(monkeypatch: pytest.MonkeyPatch, module: object, name: str, nth: int) -> None:
    original = getattr(module, name)
    calls = [0]

    def wrapper(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        if calls[0] == nth:
            raise RuntimeError("boom: a bug, staged")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


def test_a_bug_under_a_delete_is_not_resent_as_a_network_error(emu_thread, cli, monkeypatch):
    """A TypeError raised while a DELETE's answer is read (a bug of ours under the HTTP edge)
    is an internal error: exit 6 at once, exactly one DELETE on the wire, the run unknown."""
    from worker.http import Transport

    emu = emu_thread(runs=0)
    emu.add_run(run_id="r1", status="STARTED", age_s=7200)
    original = Transport._read

    async def read(self: Transport, what: str, *rest: object) -> bytes:
        if what.startswith("DELETE"):
            raise TypeError("a bug, staged")
        return await original(self, what, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(Transport, "_read", read)
    res = cli(emu, "run", *FAST, "--max-attempts", "6")
    assert res.code == 6, res.stderr
    assert len(emu.deletes()) == 1
    assert res.outcomes() == {"r1": "unknown"}
    assert "internal error: TypeError: a bug, staged" in res.report["exit_reason"]


def test_a_bug_while_cancelling_reports_and_exits_6(emu_thread, cli, monkeypatch, tmp_path):
    """The second cancel's answer handling raises after its DELETE went out: that run is
    unknown (the server did cancel it), the first is cancelled, the rest not attempted."""
    emu = emu_thread(runs=0)
    ids = [emu.add_run(run_id=f"r{i}", status="STARTED", age_s=7200).id for i in range(4)]
    _boom_on(monkeypatch, cancel_module, "_settle_answer", 2)
    prom = tmp_path / "m.prom"
    res = cli(emu, "run", *FAST, "--metrics-file", str(prom), "--log-format", "json")
    assert res.code == 6, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("zuora-reaper: exit 6: stopped: internal error: RuntimeError: boom")
    assert res.report is not None
    outcomes = res.outcomes()
    assert outcomes["r0"] == "cancelled"
    assert outcomes["r1"] == "unknown"
    assert set(outcomes.values()) <= {"cancelled", "unknown", "not_attempted"}
    assert "r1" in emu.cancelled_ids()
    assert {i for i, o in outcomes.items() if o == "not_attempted"}.isdisjoint(
        {r.run_id for r in emu.deletes()})
    assert res.report["exit_code"] == 6
    lines = [json.loads(x) for x in res.stderr.splitlines() if x.startswith("{")]
    assert [x["event"] for x in lines].count("job.summary") == 1
    assert any(x["event"] == "cancel.internal_error" and "Traceback" in x["traceback"]
               for x in lines)
    assert "zuora_reaper_last_run_exit_code" in prom.read_text()
    assert set(ids) == set(outcomes)


def test_a_bug_while_listing_reports_what_was_listed(emu_thread, cli, monkeypatch):
    """Selecting the second listing page raises: exit 6, the first page is in the report."""
    emu = emu_thread(runs=0)
    for i in range(3):
        emu.add_run(run_id=f"r{i}", status="STARTED", age_s=7200)
    _boom_on(monkeypatch, job_module.Job, "_select_page", 2)
    res = cli(emu, "run", *FAST, "--page-size", "2")
    assert res.code == 6
    assert "internal error: RuntimeError" in res.stderr
    assert res.report is not None
    assert len(res.report["runs"]) == 2
    assert res.report["exit_reason"].startswith("internal error: RuntimeError")
    assert emu.deletes() == []
