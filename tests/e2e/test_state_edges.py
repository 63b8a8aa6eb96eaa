"""End to end, as real processes: a state store that cannot be used is exit 2 before any
request and is left untouched; a default location that is not writable degrades to a job
without memory and one warning; PostgreSQL's advisory lock keeps two processes with separate
lock files from running one target at once; the URL's password is never shown."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from local import clean_env

from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from worker.state.location import resolve
from worker.state.store import open_store

HOUR = 3600.0
ROOT = Path(__file__).resolve().parents[2]
OAUTH_ENV = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}
# Root ignores file modes; without these capabilities it obeys them like any user.
UNPRIVILEGED = (["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                 "--inh-caps=-dac_override,-dac_read_search"] if os.getuid() == 0 else [])


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 60
         ) -> subprocess.CompletedProcess[str]:
    full = clean_env(**OAUTH_ENV, **(env or {}))
    return subprocess.run([*UNPRIVILEGED, sys.executable, "-m", "worker", *args],
                          capture_output=True, text=True, env=full, cwd=ROOT, timeout=timeout,
                          check=False)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _made(path: Path) -> None:
    """A store of ours, as the first job leaves it."""
    open_store(resolve(str(path), {})).close()


def _newer(path: Path) -> None:
    _made(path)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE reaper_schema_version SET version_num = '0099'")
    conn.close()  # the last connection folds the write-ahead log into the file


def _unwritable(path: Path) -> None:
    _made(path)
    path.chmod(0o444)


@pytest.mark.parametrize(("make", "said"), [
    (lambda p: p.write_bytes(b"\x00garbage" * 512), "not a SQLite database"),
    (_newer, "0099"),
    (_unwritable, "not writable"),
], ids=["garbage", "newer-schema", "unwritable"])
def test_a_state_that_cannot_be_used_is_exit_2_before_any_request(emu_thread, tmp_path, make,
                                                                   said):
    emu = emu_thread(runs=0)
    emu.add_run(age_s=3 * HOUR)
    path = tmp_path / "state.db"
    make(path)
    before = _digest(path)
    for command in ("plan", "run"):
        res = _run(command, "--older-than", "1h", "--base-url", emu.base_url, "--state",
                   str(path), "--lock-file", str(tmp_path / "lock"), "--output", "json")
        assert res.returncode == 2, res.stderr
        assert said in res.stderr
        summary = json.loads(res.stdout.splitlines()[0])
        assert (summary["type"], summary["exit_code"]) == ("summary", 2)
    assert emu.records == []
    assert _digest(path) == before


def test_a_default_location_that_is_not_writable_runs_without_memory_and_warns_once(
        emu_thread, tmp_path):
    emu = emu_thread(runs=0)
    a = emu.add_run(age_s=3 * HOUR).id
    home = tmp_path / "state-home"
    home.mkdir()
    home.chmod(0o555)
    env = {"XDG_STATE_HOME": str(home)}
    res = _run("run", "--older-than", "1h", "--base-url", emu.base_url, "--log-format",
               "json", "--lock-file", str(tmp_path / "lock"), env=env)
    assert res.returncode == 0, res.stderr
    events = [json.loads(line)["event"] for line in res.stderr.splitlines()
              if line.startswith("{")]
    assert events.count("state.unavailable") == 1
    assert emu.cancelled_ids() == {a}
    assert list(home.iterdir()) == []
    needs = _run("run", "--stalled-for", "1h", "--base-url", emu.base_url,
                 "--lock-file", str(tmp_path / "lock"), env=env)
    assert needs.returncode == 2
    assert "--stalled-for needs the state store" in needs.stderr


def test_the_advisory_lock_keeps_a_second_process_out(emu_thread, popen_job, pg_url, tmp_path,
                                                     wait_for):
    """Two processes with separate lock files and one PostgreSQL state: the second run exits
    4 and sends nothing, a plan meanwhile runs; the password of the URL is on no output."""
    emu = emu_thread(runs=0, latency_ms=1500.0)
    emu.add_run(age_s=3 * HOUR)
    env = {"ZUORA_REAPER_STATE": pg_url}  # a password's place: the environment
    first = popen_job(emu, "run", "--older-than", "1h", name="first", env=env)
    wait_for(lambda: len(emu.records) > 0, what="the first job's first request")
    seen = len(emu.records)
    res = _run("run", "--older-than", "1h", "--base-url", emu.base_url, "--lock-file",
               str(tmp_path / "second.lock"), "--output", "json", env=env)
    assert res.returncode == 4, res.stderr
    assert "advisory lock" in res.stderr
    assert len(emu.records) == seen  # the second job sent nothing
    plan = _run("plan", "--older-than", "1h", "--base-url", emu.base_url, env=env)
    assert plan.returncode == 0, plan.stderr  # a plan cancels nothing and takes no lock
    code, out, err = first.wait(60)
    assert code == 0, err
    password = pg_url.split(":")[2].split("@")[0]
    for text in (res.stdout, res.stderr, out, err, Path(first.report_path).read_text()):
        assert password not in text


def test_a_password_in_a_state_flag_is_refused_unechoed(tmp_path):
    res = _run("plan", "--older-than", "1h", "--base-url", "https://rest.zuora.com",
               "--state", "postgresql://reaper:Sup3rS3cret@db.example.com/reaper")
    assert res.returncode == 2
    assert "ZUORA_REAPER_STATE" in res.stderr
    assert "Sup3rS3cret" not in res.stderr + res.stdout


def test_a_run_with_postgresql_still_takes_the_hosts_lock_file(emu_thread, popen_job, pg_url,
                                                               tmp_path, wait_for):
    """A job on the fleet's PostgreSQL and a person's run with the default store on the same
    host and target: the lock file still keeps the second out (exit 4, nothing sent)."""
    emu = emu_thread(runs=0, latency_ms=1500.0)
    emu.add_run(age_s=3 * HOUR)
    lock = str(tmp_path / "host.lock")
    first = popen_job(emu, "run", "--older-than", "1h", "--lock-file", lock, name="first",
                      env={"ZUORA_REAPER_STATE": pg_url})
    wait_for(lambda: len(emu.records) > 0, what="the first job's first request")
    seen = len(emu.records)
    res = _run("run", "--older-than", "1h", "--base-url", emu.base_url, "--lock-file", lock,
               "--state", str(tmp_path / "mine.db"))
    assert res.returncode == 4, res.stderr
    assert len(emu.records) == seen
    assert first.wait(60)[0] == 0
