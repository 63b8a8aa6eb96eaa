"""Overlap: one job per target; a second one exits 4 and sends nothing; stale locks never block."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile

import pytest

from worker.config import load_settings
from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from worker.errors import LockHeld
from worker.lock import default_lock_path, job_lock

ENV = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}


def test_second_job_on_the_same_lock_sends_nothing(emu_thread, popen_job, cli, tmp_path,
                                                   wait_for, job_ids_seen):
    """While a job holds the lock, a second job exits 4 with a clear message and sends nothing."""
    emu = emu_thread(runs=0, latency_ms=100)
    for _ in range(60):
        emu.add_run(status="STARTED", age_s=7200)
    lock = str(tmp_path / "shared.lock")
    first = popen_job(emu, "run", "--older-than", "1h", "--rate", "5", "--lock-file", lock)
    wait_for(lambda: len(emu.deletes()) >= 1, timeout=20)
    tokens_before = emu.count("token")
    second = cli(emu, "run", "--older-than", "1h", "--lock-file", lock)
    assert second.code == 4
    assert "holds the lock" in second.stderr
    assert f"pid {first.proc.pid}" in second.stderr
    assert "sent nothing" in second.stderr
    assert emu.count("token") == tokens_before
    assert len(job_ids_seen(emu)) == 1, "only the first job's requests reached the server"
    assert first.proc.poll() is None, "the first job was still running during the check"


def test_default_lock_is_per_target(monkeypatch, tmp_path):
    """Without --lock-file the lock is a per-target file in the temp dir: same target refused."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    one = load_settings("run", {"target.base_url": "https://rest.apisandbox.zuora.com"}, ENV)
    other = load_settings("run", {"target.base_url": "https://rest.zuora.com"}, ENV)
    assert default_lock_path(one).startswith(str(tmp_path))
    assert default_lock_path(one) != default_lock_path(other)
    with job_lock(one):
        with pytest.raises(LockHeld, match=r"rest\.apisandbox\.zuora\.com"), job_lock(one):
            pass
        with job_lock(other):
            pass
    with job_lock(one):
        pass


@pytest.mark.parametrize("other_env", [
    {**ENV, "ZUORA_CLIENT_ID": "another-client"},
    {**ENV, "ZUORA_ENTITY_ID": "entity-2"},
], ids=["another-client", "another-entity"])
def test_two_tenants_on_one_host_have_two_locks(monkeypatch, tmp_path, other_env):
    """Every US production tenant is https://rest.zuora.com: the default lock is per target
    identity (base URL, principal, entity), so another tenant's job is never refused."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    flags = {"target.base_url": "https://rest.zuora.com"}
    one, other = load_settings("run", flags, ENV), load_settings("run", flags, other_env)
    assert default_lock_path(one) != default_lock_path(other)
    with job_lock(one), job_lock(other):
        pass
    assert DEMO_CLIENT_ID not in default_lock_path(one)


@pytest.mark.slow
def test_a_plan_takes_no_lock_so_it_never_blocks_a_run(emu_thread, popen_job, cli, tmp_path,
                                                       wait_for):
    """A person's read-only plan, while the scheduled run holds the lock, lists and reports
    (exit 0); and a plan running does not make the run exit 4."""
    emu = emu_thread(runs=0, latency_ms=100)
    for _ in range(40):
        emu.add_run(status="STARTED", age_s=7200)
    lock = str(tmp_path / "shared.lock")
    first = popen_job(emu, "run", "--older-than", "1h", "--rate", "5", "--lock-file", lock,
                      "--max-cancel", "1000")
    wait_for(lambda: len(emu.deletes()) >= 1, timeout=20)
    plan = cli(emu, "plan", "--older-than", "1h", "--lock-file", lock, "--rate", "1000")
    assert plan.code == 0, plan.stderr
    assert "holds the lock" not in plan.stderr
    assert first.proc.poll() is None, "the run was still going while the plan ran"


def test_stale_lock_file_never_blocks(emu_thread, cli, tmp_path):
    """A lock file left by a dead process (its pid inside, no flock held) does not block a job."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    lock = tmp_path / "stale.lock"
    lock.write_text(dead.stdout)
    emu = emu_thread(runs=0)
    run = emu.add_run(status="STARTED", age_s=7200)
    res = cli(emu, "run", "--older-than", "1h", "--lock-file", str(lock))
    assert res.code == 0, res.stderr
    assert emu.cancelled_ids() == {run.id}


def test_lock_is_released_after_the_job(emu_thread, cli, tmp_path):
    """Two jobs one after the other on the same lock file both run."""
    emu = emu_thread(runs=0)
    emu.add_run(status="STARTED", age_s=7200)
    lock = str(tmp_path / "seq.lock")
    assert cli(emu, "run", "--older-than", "1h", "--lock-file", lock).code == 0
    emu.add_run(status="STARTED", age_s=7200)
    assert cli(emu, "run", "--older-than", "1h", "--lock-file", lock).code == 0
    assert len(emu.cancelled_ids()) == 2


@pytest.mark.parametrize("spelling", ["https://REST.zuora.com", "https://rest.zuora.com:443",
                                      "https://Rest.Zuora.COM:443/"])
def test_one_target_has_one_identity_whatever_its_spelling(monkeypatch, tmp_path, spelling):
    """Letter case of the host, a default port, a trailing slash: one target, one lock (a
    second scheduled run is refused), one plan check, one metrics series."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    plain = load_settings("run", {"target.base_url": "https://rest.zuora.com"}, ENV)
    other = load_settings("run", {"target.base_url": spelling}, ENV)
    assert other.target.base_url == "https://rest.zuora.com"
    assert other.identity.key == plain.identity.key
    with job_lock(plain), pytest.raises(LockHeld), job_lock(other):
        pass
    upper = load_settings("run", {"target.base_url": spelling},
                          {**ENV, "ZUORA_ENTITY_ID": "8A8AA0F0-ABCD"})
    lower = load_settings("run", {"target.base_url": spelling},
                          {**ENV, "ZUORA_ENTITY_ID": "8a8aa0f0-abcd"})
    assert upper.identity.key == lower.identity.key


def test_a_job_that_finds_the_lock_held_still_tells_its_scheduler(emu_thread, cli, tmp_path):
    """Exit 4 on a held lock used to show nothing but the code: now the summary line, the
    --output json summary and the metrics carry it. The report file is the running job's, and
    is left alone; nothing is sent."""
    emu = emu_thread(runs=0)
    lock, report, metrics = (tmp_path / n for n in ("held.lock", "report.json", "m.prom"))
    report.write_text('{"the running job": "writes this"}')
    held = load_settings("run", {"target.base_url": emu.base_url, "run.lock_file": str(lock)},
                         ENV)
    with job_lock(held):
        res = cli(emu, "run", "--older-than", "1h", "--lock-file", str(lock), "--report-file",
                  str(report), "--output", "json", "--metrics-file", str(metrics),
                  "--log-format", "json")
    assert res.code == 4
    assert res.summary["exit_code"] == 4
    assert "holds the lock" in res.summary["exit_reason"]
    summaries = [json.loads(line) for line in res.stderr.splitlines()
                 if '"job.summary"' in line]
    assert [s["exit_code"] for s in summaries] == [4]
    assert re.search(r"^zuora_reaper_last_run_exit_code\{[^}]*\} 4\.0$", metrics.read_text(),
                     re.M)
    assert res.report == {"the running job": "writes this"}  # as it was
    assert emu.records == []
