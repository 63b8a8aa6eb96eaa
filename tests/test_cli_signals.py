"""Interruption: SIGTERM/SIGINT sent to a real subprocess; the report agrees with the server."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from local import clean_env

from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

ROOT = Path(__file__).resolve().parents[1]

RUNS = 300


def _slow_emulator(emu_thread):
    emu = emu_thread(runs=0, latency_ms=200)
    for _ in range(RUNS):
        emu.add_run(status="STARTED", age_s=7200)
    return emu


def _interrupt(emu, job, wait_for, sig: signal.Signals) -> tuple[int, float, float]:
    wait_for(lambda: len(emu.deletes()) >= 8, timeout=30)
    sent_at = time.monotonic()
    job.proc.send_signal(sig)
    job.proc.wait(timeout=20)
    return job.proc.returncode, sent_at, time.monotonic() - sent_at


def _assert_report_matches_server(emu, report) -> None:
    selected = {r["id"]: r["outcome"] for r in report["runs"] if r["selected"]}
    assert len(selected) == RUNS
    assert None not in selected.values()
    cancelled_by_server = emu.cancelled_ids()
    assert cancelled_by_server, "the job cancelled something before the signal"
    assert cancelled_by_server == {i for i, o in selected.items() if o == "cancelled"}
    sent = {r.run_id for r in emu.deletes()}
    not_attempted = {i for i, o in selected.items() if o == "not_attempted"}
    assert not_attempted, "the signal landed before the end of the job"
    assert not not_attempted & sent


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_job_exits_5_with_a_true_report(emu_thread, popen_job, wait_for, sig):
    """A signal mid-job stops it within seconds (exit 5) and the report matches the server."""
    emu = _slow_emulator(emu_thread)
    job = popen_job(emu, "run", "--older-than", "1h", "--rate", "8", "--concurrency", "8",
                    "--max-cancel", "1000")
    code, sent_at, took = _interrupt(emu, job, wait_for, sig)
    _, err = job.proc.communicate()
    assert code == 5, err
    assert took < 10  # not the 37 s the job needs: stopped (the bound is wide, for a busy CI)
    time.sleep(0.3)  # let the emulator record answers still being written
    report = job.report()
    assert report["exit_code"] == 5
    assert "interrupted" in report["exit_reason"]
    _assert_report_matches_server(emu, report)
    # DELETEs that arrived within one latency before the signal were in flight when it landed.
    in_flight = {r.run_id for r in emu.deletes() if sent_at - 0.2 < r.t < sent_at}
    assert in_flight, "no DELETE was in flight when the signal landed"
    outcomes = {r["id"]: r["outcome"] for r in report["runs"]}
    assert {outcomes[i] for i in in_flight} == {"cancelled"}


@pytest.mark.slow
def test_grace_period_cuts_hung_calls(emu_thread, popen_job, wait_for):
    """Calls still in flight when the grace period ends are cut and reported unknown."""
    emu = emu_thread(runs=0)
    for _ in range(20):
        emu.add_run(status="STARTED", age_s=7200)
    job = popen_job(emu, "run", "--older-than", "1h", "--rate", "5", "--concurrency", "4",
                    grace=0.3)
    wait_for(lambda: emu.count("delete") >= 1, timeout=20)  # listed, cancelling
    emu.config.latency_ms = 1500  # every DELETE from now on hangs past the grace period
    time.sleep(0.6)
    sent_at = time.monotonic()
    job.proc.send_signal(signal.SIGTERM)
    job.proc.wait(timeout=20)
    assert job.proc.returncode == 5, job.proc.stderr.read() if job.proc.stderr else ""
    assert time.monotonic() - sent_at < 10  # bounded; 'unknown' below proves the cut
    report = job.report()
    selected = {r["id"]: r for r in report["runs"] if r["selected"]}
    hung = [r for r in selected.values() if r["outcome"] == "unknown"]
    assert hung, "some DELETE was still in flight when the grace period ended"
    assert all("interrupted in flight" in r["error"] for r in hung)
    time.sleep(1.6)  # the server finishes the hung calls after the client gave up on them
    cancelled = {i for i, r in selected.items() if r["outcome"] == "cancelled"}
    assert cancelled <= emu.cancelled_ids()
    sent = {r.run_id for r in emu.deletes()}
    assert not {i for i, r in selected.items() if r["outcome"] == "not_attempted"} & sent


@pytest.mark.slow
def test_second_signal_stops_at_once(emu_thread, popen_job, wait_for):
    """A second SIGINT does not wait out the grace period for calls that hang."""
    emu = emu_thread(runs=0)
    for _ in range(10):
        emu.add_run(status="STARTED", age_s=7200)
    job = popen_job(emu, "run", "--older-than", "1h", "--rate", "5", "--concurrency", "2")
    wait_for(lambda: emu.count("delete") >= 1, timeout=20)  # listed, cancelling
    emu.config.latency_ms = 1500  # DELETEs hang; the grace period (5 s) would wait for them
    time.sleep(0.5)
    job.proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    sent_at = time.monotonic()
    job.proc.send_signal(signal.SIGINT)
    job.proc.wait(timeout=20)
    assert job.proc.returncode == 5
    assert time.monotonic() - sent_at < 10  # bounded; 'unknown' below proves the cut
    outcomes = {r["id"]: r["outcome"] for r in job.report()["runs"] if r["selected"]}
    assert "unknown" in outcomes.values()  # cut in flight: the server may have done it
    assert {i for i, o in outcomes.items() if o == "cancelled"} <= emu.cancelled_ids()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_finishing_loses_nothing(emu_thread, popen_job, receiver, wait_for,
                                                tmp_path, sig):
    """A signal that lands after the job's work, while the webhook is being sent: no traceback,
    the webhook and the metrics still go out, and the exit code is the job's own (0), which
    the report and the metrics already carry."""
    emu = emu_thread(runs=0)
    for _ in range(3):
        emu.add_run(status="STARTED", age_s=7200)
    hook = receiver(delay=1.5)
    prom = tmp_path / "m.prom"
    job = popen_job(emu, "run", "--older-than", "1h", "--rate", "100",
                    "--notify-webhook", hook.base_url + "/hook", "--metrics-file", str(prom),
                    "--log-format", "json")
    wait_for(lambda: len(hook.requests) >= 1, timeout=30, what="the webhook POST")
    job.proc.send_signal(sig)
    code, _out, err = job.wait(timeout=30)
    assert code == 0, err
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
    assert "job.signal_while_finishing" in err
    assert job.report()["exit_code"] == 0
    assert "zuora_reaper_last_run_exit_code" in prom.read_text()
    assert len(hook.requests) == 1


@pytest.mark.slow
def test_a_signal_while_a_log_line_is_blocked_does_not_hang_the_process(emu_thread, tmp_path):
    """SIGTERM while the summary line waits on a full stderr pipe: the handler only notes the
    signal (a handler that logged waited forever on the lock of the write it interrupted, and
    only SIGKILL ended the process). Once the pipe drains, the job ends with its own code."""
    emu = emu_thread(runs=0)
    emu.add_run(status="STARTED", age_s=7200)
    env = clean_env(ZUORA_CLIENT_ID=DEMO_CLIENT_ID, ZUORA_CLIENT_SECRET=DEMO_CLIENT_SECRET)
    args = [sys.executable, "-m", "worker", "plan", "--base-url", emu.base_url,
            "--log-format", "json", "--older-than", "1h"]
    first = subprocess.run(args, env=env, capture_output=True, text=True, cwd=ROOT).stderr
    before = len(first[:first.index('"job.summary"')].rsplit("\n", 1)[0].encode()) + 1
    read_end, write_end = os.pipe()
    size = fcntl.fcntl(write_end, 1031, 4096)  # F_SETPIPE_SZ: a 4 KiB pipe
    os.write(write_end, b"f" * (size - before - 40))  # room for the lines before the summary
    proc = subprocess.Popen(args, env=env, stderr=write_end, stdout=subprocess.DEVNULL,
                            cwd=ROOT)
    os.close(write_end)
    try:
        time.sleep(2.5)  # the job is done; the summary line is blocked on the full pipe
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        drained = threading.Thread(target=lambda: [None for _ in iter(
            lambda: os.read(read_end, 65536), b"")], daemon=True)
        drained.start()
        code = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(read_end)
    assert code == 0
