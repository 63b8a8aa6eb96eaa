"""End to end: every outcome and every exit code of the worker, through the real CLI."""

from __future__ import annotations

import signal
import socket
from collections import Counter

from worker.emulator import DEMO_CLIENT_ID, DEMO_PASSWORD, DEMO_USERNAME

LEGACY_ENV = {"ZUORA_USERNAME": DEMO_USERNAME, "ZUORA_PASSWORD": DEMO_PASSWORD}


def test_outcomes_cancelled_already_cancelled_not_found(emu_thread, cli, bulk,
                                                        after_first_list, fast):
    """Runs cancelled or purged by someone else after listing end already_cancelled/not_found."""
    emu = emu_thread(runs=0)
    ids = bulk(emu, 6)

    def someone_else_acts() -> None:
        emu.runs[ids[0]].status = "CANCELLED"
        del emu.runs[ids[1]]

    after_first_list(emu, someone_else_acts)
    res = cli(emu, "run", "--older-than", "1h", *fast)
    assert res.code == 0, res.stderr
    assert res.outcomes() == {ids[0]: "already_cancelled", ids[1]: "not_found",
                              **dict.fromkeys(ids[2:], "cancelled")}
    assert emu.cancelled_ids() == set(ids[2:])
    assert Counter(r.run_id for r in emu.deletes()) == dict.fromkeys(ids, 1)


def test_outcome_already_finished_from_drift(emu_thread, cli, bulk, fast):
    """Runs that complete while the job runs are refused, checked by GET, and already_finished."""
    emu = emu_thread(runs=0, drift_complete=2)
    bulk(emu, 10)
    res = cli(emu, "run", "--older-than", "1h", *fast)
    assert res.code == 0, res.stderr
    finished = {rid for rid, run in emu.runs.items() if run.status == "COMPLETED"}
    assert finished
    assert {k for k, v in res.outcomes().items() if v == "already_finished"} == finished
    assert {k for k, v in res.outcomes().items() if v == "cancelled"} == emu.cancelled_ids()
    assert {r.run_id for r in emu.records if r.kind == "get"} == finished
    assert res.report["counts"]["already_finished"] == len(finished)


def test_exit_1_poison_ids_bounded_attempts(emu_thread, cli_subprocess, bulk, fast):
    """Ids that always answer 500 get at most --max-attempts DELETEs, end unknown (a 5xx is no
    definitive answer, and the read-back GET answers 500 too), and exit 1."""
    emu = emu_thread(runs=0)
    ids = bulk(emu, 8)
    poison = set(ids[:2])
    emu.config.poison_ids = poison
    res = cli_subprocess(emu, "run", "--older-than", "1h", "--max-attempts", "3", *fast)
    assert res.code == 1, res.stderr
    per_id = Counter(r.run_id for r in emu.deletes())
    assert all(1 <= per_id[rid] <= 3 for rid in poison)
    assert all(per_id[rid] == 1 for rid in ids[2:])
    assert res.outcomes() == {**dict.fromkeys(poison, "unknown"),
                              **dict.fromkeys(ids[2:], "cancelled")}
    assert emu.cancelled_ids() == set(ids[2:])
    assert all(r["error"] for r in res.report["runs"] if r["id"] in poison)
    assert "failed" in res.stderr


def test_exit_2_config_error_before_any_request(emu_thread, cli_subprocess):
    """--older-than banana exits 2 and the emulator never sees a request."""
    emu = emu_thread(runs=5)
    res = cli_subprocess(emu, "run", "--older-than", "banana")
    assert res.code == 2
    assert emu.records == []
    assert "older_than" in res.stderr


def test_exit_3_bad_secret_not_leaked(emu_thread, cli_subprocess, bulk):
    """A wrong client secret exits 3, cancels nothing, and the secret appears in no output."""
    emu = emu_thread(runs=0)
    bulk(emu, 3)
    secret = "wrong-secret-3f9c1d"
    res = cli_subprocess(emu, "run", "--older-than", "1h",
                         env={"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": secret})
    assert res.code == 3, res.stderr
    assert emu.count("token") >= 1
    assert emu.deletes() == []
    assert secret not in res.stdout + res.stderr
    assert res.report is None or secret not in str(res.report)


def test_exit_3_systemic_403_stops_cancelling(emu_thread, cli_subprocess, bulk):
    """Every cancel answering 403: the job stops after a few identical refusals and exits 3."""
    emu = emu_thread(runs=0, forbid_cancel=True)
    bulk(emu, 30)
    res = cli_subprocess(emu, "run", "--older-than", "1h", "--concurrency", "1",
                         "--rate", "1000")
    assert res.code == 3, res.stderr
    assert 5 <= len(emu.deletes()) < 30
    assert emu.cancelled_ids() == set()
    outcomes = Counter(res.outcomes().values())
    assert outcomes["failed"] == len(emu.deletes())
    assert outcomes["not_attempted"] == 30 - len(emu.deletes())


def test_exit_5_deadline(emu_thread, cli_subprocess, bulk):
    """A deadline reached mid-job exits 5; runs never tried are not_attempted, not cancelled."""
    emu = emu_thread(runs=0)
    ids = bulk(emu, 40)
    res = cli_subprocess(emu, "run", "--older-than", "1h", "--rate", "20", "--concurrency", "2",
                         "--deadline", "1s")
    assert res.code == 5, res.stderr
    outcomes = res.outcomes()
    assert set(outcomes) == set(ids)
    assert emu.cancelled_ids() == {k for k, v in outcomes.items() if v == "cancelled"}
    assert 0 < len(emu.cancelled_ids()) < 40
    assert "not_attempted" in outcomes.values()
    assert "deadline" in res.stderr


def test_exit_5_sigterm_stops_dispatching(emu_thread, popen_job, bulk, wait_for):
    """SIGTERM mid-run: in-flight cancels finish, nothing new is sent, exit 5, report written."""
    emu = emu_thread(runs=0, latency_ms=20)
    ids = bulk(emu, 200)
    job = popen_job(emu, "run", "--older-than", "1h", "--rate", "40", "--concurrency", "4",
                    "--max-cancel", "1000")
    wait_for(lambda: len(emu.deletes()) >= 5, what="the first cancels")
    job.proc.send_signal(signal.SIGTERM)
    code, _, err = job.wait()
    assert code == 5, err
    sent = len(emu.deletes())
    assert sent < 100
    report = job.report()
    outcomes = {r["id"]: r["outcome"] for r in report["runs"] if r["selected"]}
    assert set(outcomes) == set(ids)
    assert {k for k, v in outcomes.items() if v == "cancelled"} == emu.cancelled_ids()
    assert Counter(outcomes.values())["not_attempted"] == 200 - sent
    assert "interrupted by SIGTERM" in err


def test_exit_6_unusable_listing(emu_thread, cli_subprocess, bulk):
    """An HTML page instead of the run list exits 6 and cancels nothing."""
    emu = emu_thread(runs=0, list_fault="html")
    bulk(emu, 3)
    res = cli_subprocess(emu, "run", "--older-than", "1h")
    assert res.code == 6, res.stderr
    assert emu.count("list") >= 1
    assert emu.deletes() == []


def test_exit_6_unreachable(cli_subprocess):
    """Nothing listening at the base URL: exit 6 with a one-line reason (legacy: no token step)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    res = cli_subprocess(None, "run", "--base-url", f"http://127.0.0.1:{port}", "--auth",
                         "legacy", "--max-attempts", "1", env=LEGACY_ENV)
    assert res.code == 6, res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("zuora-reaper: exit 6:")


def test_exit_0_nothing_to_do(emu_thread, cli_subprocess):
    """No run in progress: exit 0, no DELETE, counts all zero."""
    emu = emu_thread(runs=0)
    emu.add_run(status="COMPLETED")
    res = cli_subprocess(emu, "run", "--older-than", "1h")
    assert res.code == 0, res.stderr
    assert emu.deletes() == []
    assert res.report["counts"]["selected"] == 0
