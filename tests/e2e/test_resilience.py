"""End to end: token expiry, 503s, dropped connections and server limits do not lose a run."""

from __future__ import annotations

import threading
import time

import pytest


@pytest.mark.slow
def test_token_ttl_short(emu_thread, cli, bulk):
    """Tokens living 1 s: a ~2 s job finishes, cancels everything, and asks for few tokens."""
    emu = emu_thread(runs=0, token_ttl=1)
    ids = bulk(emu, 50)
    start = time.monotonic()
    res = cli(emu, "run", "--older-than", "1h", "--rate", "25", "--concurrency", "8")
    took = time.monotonic() - start
    assert res.code == 0, res.stderr
    assert emu.cancelled_ids() == set(ids)
    assert took > 1.5  # the job really outlived its first token
    assert 2 <= emu.count("token") <= took / 1.0 + 3
    assert emu.count("delete", 200) == 50
    assert emu.count("delete") == 50 + emu.count("delete", 401)  # a 401 is resent, once


def test_tokens_expired_mid_job(emu_thread, cli, bulk, wait_for):
    """All tokens revoked mid-job: one shared refresh, the job finishes, every run cancelled."""
    emu = emu_thread(runs=0, latency_ms=5)
    ids = bulk(emu, 80)

    def expire_after_some_cancels() -> None:
        wait_for(lambda: len(emu.cancelled_ids()) >= 20, what="20 cancels")
        emu.expire_tokens()

    watcher = threading.Thread(target=expire_after_some_cancels, daemon=True)
    watcher.start()
    res = cli(emu, "run", "--older-than", "1h", "--rate", "200", "--concurrency", "8")
    watcher.join(timeout=5)
    assert res.code == 0, res.stderr
    assert emu.cancelled_ids() == set(ids)
    assert emu.count("token") == 2
    assert emu.count("delete", 401) >= 1
    assert emu.count("delete", 200) == 80


@pytest.mark.parametrize("fault", [
    pytest.param({"fail_503_ratio": 0.2, "fault_retry_after": 0}, id="503s"),
    pytest.param({"drop_ratio": 0.1}, id="dropped-connections"),
])
def test_transient_faults_every_run_cancelled(emu_thread, cli_subprocess, bulk, fast, fault):
    """With 503s or dropped connections every selected run is still cancelled and exit is 0."""
    emu = emu_thread(runs=0, seed=5, **fault)
    ids = bulk(emu, 60)
    res = cli_subprocess(emu, "run", "--older-than", "1h", *fast)
    assert res.code == 0, res.stderr
    assert emu.cancelled_ids() == set(ids)
    assert res.outcomes() == dict.fromkeys(ids, "cancelled")
    bad = [r for r in emu.records if r.status in (0, 503)]
    assert bad  # the fault really happened
    if "fail_503_ratio" in fault:  # (aiohttp itself resends some dropped idempotent requests)
        assert res.report["requests"]["retries"] >= len(bad)
    # a DELETE is only resent after an indefinite answer: never after the run was cancelled
    for rid in ids:
        answers = [r.status for r in emu.deletes() if r.run_id == rid]
        assert answers.count(200) == 1
        assert answers[-1] == 200


def test_server_limits_respected(emu_thread, cli, bulk):
    """Under a server concurrency cap and rate quota, every run is cancelled and no 429 is hit."""
    emu = emu_thread(runs=0, concurrency=4, concurrency_retry_after=0, rate=200, rate_window=1)
    ids = bulk(emu, 60)
    res = cli(emu, "run", "--older-than", "1h", "--rate", "80", "--concurrency", "4")
    assert res.code == 0, res.stderr
    assert emu.cancelled_ids() == set(ids)
    assert emu.max_in_flight <= 4
    assert emu.limited_count("rate") == 0
    assert emu.limited_count("concurrency") == 0
