"""End to end: a stop (deadline, signal, retry budget) is bounded and is the job's reason.

One timer stops the job at ``--deadline``; calls still in flight get the grace period, then
the job is cut. Whatever a call hangs on (a listing page, a DELETE, a read-back GET), the CLI
ends by deadline + grace with exit 5, and the report accounts for every selected run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from local import clean_env

from worker.control import GRACE_SECONDS as GRACE_DEFAULT
from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

ROOT = Path(__file__).resolve().parents[2]
FAST = ("--rate", "1000", "--concurrency", "4", "--older-than", "1h")
GRACE = 0.3


@pytest.fixture(autouse=True)
def _short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.control.GRACE_SECONDS", GRACE)


@pytest.mark.slow
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


@pytest.mark.slow
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


def _start(args: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "worker", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            **kwargs)  # type: ignore[call-overload]


def _ended(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, str]:
    """The exit code and stderr of ``proc``; killed (and failing the test) past ``timeout``."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"still running after {timeout} s: {err.decode()[-2000:]}")
    return proc.returncode, err.decode()


@pytest.mark.slow
def test_an_ids_file_that_never_ends_is_cut_at_the_deadline_and_by_a_signal(emu_thread,
                                                                            tmp_path):
    """--ids-file - on a pipe whose writer never closes: the read happens off the event loop,
    so the deadline stops the job on time (exit 5), and so does a signal."""
    emu = emu_thread(runs=0)
    env = clean_env(ZUORA_CLIENT_ID=DEMO_CLIENT_ID, ZUORA_CLIENT_SECRET=DEMO_CLIENT_SECRET)
    for stop in ("deadline", "signal"):
        read_end, write_end = os.pipe()  # the writer stays open: no end of file, ever
        args = ["run", "--base-url", emu.base_url, "--ids-file", "-", "--yes",
                "--lock-file", str(tmp_path / "job.lock")]
        started = time.monotonic()
        proc = _start(args + (["--deadline", "1s"] if stop == "deadline" else []), env,
                      stdin=read_end)
        os.close(read_end)
        if stop == "signal":
            time.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
        code, err = _ended(proc, timeout=15)
        took = time.monotonic() - started
        os.close(write_end)
        assert code == 5, err[-2000:]
        assert took < 1 + GRACE_DEFAULT + 3


@pytest.mark.slow
def test_a_stalled_name_lookup_does_not_hold_the_process_past_the_stop(tmp_path):
    """aiohttp resolves names on the loop's executor; a getaddrinfo that hangs (resolv.conf
    timeouts) kept the process alive 20 s after a 1 s deadline, signals only noted. The
    executor's threads are daemon threads now: the job exits 5 by deadline + grace."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import socket, time\n"
        "_real = socket.getaddrinfo\n"
        "def _slow(host, *a, **k):\n"
        "    if host == 'rest.example-stall.test':\n"
        "        time.sleep(30)\n"
        "    return _real(host, *a, **k)\n"
        "socket.getaddrinfo = _slow\n")
    env = clean_env(ZUORA_CLIENT_ID=DEMO_CLIENT_ID, ZUORA_CLIENT_SECRET=DEMO_CLIENT_SECRET,
                    PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    started = time.monotonic()
    proc = _start(["run", "--base-url", "https://rest.example-stall.test", "--older-than", "1h",
                   "--deadline", "1s", "--lock-file", str(tmp_path / "job.lock")], env)
    code, err = _ended(proc, timeout=25)
    assert code == 5, err[-2000:]
    assert time.monotonic() - started < 1 + GRACE_DEFAULT + 4


@pytest.mark.slow
def test_a_stop_plus_publishing_stays_bounded_when_gateway_and_webhook_hang(emu_thread, cli):
    """A hung listing with --deadline 1s, and a Pushgateway and a webhook that accept and never
    answer: deadline + grace + the 10 s the two share (it took 28 s: 10 s + 2 x 5 s more)."""
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(50)
    accepted: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(sink.accept())

    threading.Thread(target=accept, daemon=True).start()
    port = sink.getsockname()[1]
    emu = emu_thread(runs=0, stall={"list": 30.0})
    emu.add_run(status="STARTED", age_s=7200)
    started = time.monotonic()
    try:
        res = cli(emu, "run", *FAST, "--deadline", "1s", "--pushgateway",
                  f"http://127.0.0.1:{port}", "--notify-webhook", f"http://127.0.0.1:{port}/h")
    finally:
        sink.close()
    assert res.code == 5, res.stderr[-2000:]
    assert time.monotonic() - started < 1 + GRACE + 10 + 3
