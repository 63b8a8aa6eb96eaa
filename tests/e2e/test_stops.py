"""End to end: a stop (deadline, signal, retry budget) is bounded and is the job's reason.

One timer stops the job at ``--deadline``; calls still in flight get the grace period, then
the job is cut. Whatever a call hangs on (a listing page, a DELETE, a read-back GET), the CLI
ends by deadline + grace with exit 5, and the report accounts for every selected run.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

FAST = ("--rate", "1000", "--concurrency", "4", "--older-than", "1h")
GRACE = 0.3


@pytest.fixture(autouse=True)
def _short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.control.GRACE_SECONDS", GRACE)


def test_a_hung_listing_page_ends_at_the_deadline_with_exit_5(emu_thread, cli):
    """A listing page that never answers within --attempt-timeout used to run the job to
    several attempt timeouts and exit 6; the deadline now stops it: exit 5, on time."""
    emu = emu_thread(runs=0, stall={"list": 30.0})
    emu.add_run(status="STARTED", age_s=7200)
    started = time.monotonic()
    res = cli(emu, "plan", *FAST, "--deadline", "1s", "--attempt-timeout", "5s")
    took = time.monotonic() - started
    assert res.code == 5, res.stderr
    assert took < 1 + GRACE + 3  # deadline + grace, with room for a busy machine
    assert "stopped: deadline reached" in res.stderr
    assert "ApiUnreachable" not in res.stderr


def test_hung_deletes_end_at_the_deadline_and_every_run_is_accounted_for(emu_thread, cli):
    """DELETEs that hang: exit 5 by deadline + grace; those sent are unknown (the server may
    have cancelled them), those never sent not_attempted; nothing else."""
    emu = emu_thread(runs=0, stall={"delete": 30.0})
    ids = [emu.add_run(status="STARTED", age_s=7200).id for _ in range(10)]
    started = time.monotonic()
    res = cli(emu, "run", *FAST, "--deadline", "1s", "--attempt-timeout", "20s")
    took = time.monotonic() - started
    assert res.code == 5, res.stderr
    assert took < 1 + GRACE + 3
    outcomes = res.outcomes()
    assert set(outcomes) == set(ids)
    sent = set(emu.deletes_received())
    assert {i for i, o in outcomes.items() if o == "unknown"} == sent
    assert Counter(outcomes.values())["not_attempted"] == len(ids) - len(sent)
    assert res.report["exit_code"] == 5
    assert res.report["exit_reason"].startswith("stopped: deadline reached")


def test_the_retry_budget_stop_is_exit_5_not_an_unreachable_api(emu_thread, cli):
    """A budget spent on 503s stops the job: its reason and exit 5 win over the errors the
    stop itself causes (retries cut short)."""
    emu = emu_thread(runs=0, fail_503_ratio=1.0)
    emu.add_run(status="STARTED", age_s=7200)
    res = cli(emu, "plan", *FAST, "--retry-budget", "20", "--max-attempts", "10")
    assert res.code == 5, res.stderr
    assert "retry budget exhausted" in res.stderr
