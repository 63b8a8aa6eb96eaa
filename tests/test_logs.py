"""Secrets never leak; structlog gives one event per cancel and one job.summary."""

from __future__ import annotations

import json

import pytest

from worker.emulator import DEMO_CLIENT_ID, DEMO_USERNAME
from worker.secrets import load_credentials

FAST = ("--rate", "1000", "--concurrency", "16")
BAD_SECRET = "Sup3r-S3cret-Value-9f1c"


def _log_events(stderr: str) -> list[dict]:
    """The JSON log lines on stderr (the final 'zuora-reaper: exit' line is not JSON)."""
    events = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def _bearer_tokens(emu) -> set[str]:
    return {v.split(" ", 1)[1] for r in emu.records for k, v in r.headers.items()
            if k.lower() == "authorization" and " " in v}


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_bad_oauth_secret_exit_3_and_never_printed(emu_thread, cli, log_format):
    """A wrong client secret: exit 3, and the secret is nowhere in stdout, stderr or report."""
    emu = emu_thread(runs=0)
    emu.add_run(run_id="r1")
    env = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": BAD_SECRET}
    res = cli(emu, "run", *FAST, "--log-level", "debug", "--log-format", log_format, env=env)
    assert res.code == 3
    assert emu.count("token") == 1  # refused credentials are not retried
    assert emu.deletes() == []
    assert "ZUORA_CLIENT_SECRET" in res.stderr  # the message says what to check
    assert BAD_SECRET not in res.stdout
    assert BAD_SECRET not in res.stderr
    assert res.report is None or BAD_SECRET not in json.dumps(res.report)


def test_bad_legacy_password_exit_3_and_never_printed(emu_thread, cli):
    """A wrong legacy password: exit 3, the password appears nowhere."""
    emu = emu_thread(runs=0)
    emu.add_run(run_id="r1")
    env = {"ZUORA_USERNAME": DEMO_USERNAME, "ZUORA_PASSWORD": BAD_SECRET}
    res = cli(emu, "run", *FAST, "--auth", "legacy", "--log-level", "debug",
              "--log-format", "json", env=env)
    assert res.code == 3
    assert emu.deletes() == []
    assert BAD_SECRET not in res.stdout + res.stderr
    assert res.report is None or BAD_SECRET not in json.dumps(res.report)


def test_successful_run_logs_no_secret_or_bearer_token(emu_thread, cli):
    """A debug-level run logs every call but never the client secret or a bearer token."""
    emu = emu_thread(runs=0)
    for i in range(3):
        emu.add_run(run_id=f"r{i}")
    env = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": BAD_SECRET}
    emu.config.client_secret = BAD_SECRET  # accepted this time
    res = cli(emu, "run", *FAST, "--log-level", "debug", "--log-format", "json", env=env)
    assert res.code == 0, res.stderr
    tokens = _bearer_tokens(emu)
    assert tokens
    everything = res.stdout + res.stderr + json.dumps(res.report)
    assert BAD_SECRET not in everything
    for token in tokens:
        assert token not in everything
    assert any(e["event"] == "http.response" for e in _log_events(res.stderr))


def test_credentials_repr_hides_values():
    """repr() and str() of the credentials say which are set, never their values."""
    creds = load_credentials({"ZUORA_CLIENT_ID": "id-1234", "ZUORA_CLIENT_SECRET": BAD_SECRET,
                              "ZUORA_ENTITY_ID": "ent"}, "oauth")
    assert BAD_SECRET not in repr(creds)
    assert BAD_SECRET not in str(creds)
    assert "client_secret=set" in repr(creds)
    assert BAD_SECRET in creds.secrets()


def test_credentials_from_files(tmp_path):
    """*_FILE variables name files that hold the credentials."""
    secret_file = tmp_path / "secret"
    secret_file.write_text(BAD_SECRET + "\n")
    creds = load_credentials({"ZUORA_CLIENT_ID": "id-1234",
                              "ZUORA_CLIENT_SECRET_FILE": str(secret_file)}, "oauth")
    assert creds.client_secret == BAD_SECRET


def test_one_cancel_event_per_run_and_one_summary(emu_thread, cli):
    """Each cancel logs run id, report type, age, outcome, attempts, latency; one job.summary."""
    emu = emu_thread(runs=0, poison_ids={"bad"})
    emu.add_run(run_id="r1", report_type="Summary", age_s=7200)
    emu.add_run(run_id="r2", age_s=3600)
    emu.add_run(run_id="bad")
    emu.add_run(run_id="young", age_s=20)
    res = cli(emu, "run", *FAST, "--max-attempts", "2", "--log-format", "json")
    assert res.code == 1
    events = _log_events(res.stderr)
    cancels = [e for e in events if e["event"] == "cancel.finished"]
    assert sorted(e["run_id"] for e in cancels) == ["bad", "r1", "r2"]
    by_id = {e["run_id"]: e for e in cancels}
    assert by_id["r1"]["report_type"] == "Summary"
    assert 7100 < by_id["r1"]["age_s"] < 7300
    assert by_id["r1"]["outcome"] == "cancelled"
    assert by_id["r1"]["attempts"] == 1
    assert by_id["bad"]["outcome"] == "unknown"
    assert by_id["bad"]["attempts"] == 2
    assert all(isinstance(e["latency_ms"], int | float) and e["latency_ms"] >= 0
               for e in cancels)
    summaries = [e for e in events if e["event"] == "job.summary"]
    assert len(summaries) == 1
    summary = summaries[0]
    assert summary["exit_code"] == 1
    assert (summary["listed"], summary["selected"]) == (4, 3)
    assert (summary["cancelled"], summary["unknown"]) == (2, 1)


def test_plan_logs_summary_but_no_cancel_events(emu_thread, cli):
    """plan logs one job.summary with would_cancel and no cancel events."""
    emu = emu_thread(runs=0)
    emu.add_run(run_id="r1")
    res = cli(emu, "plan", "--log-format", "json")
    assert res.code == 0
    events = _log_events(res.stderr)
    assert [e for e in events if e["event"] == "cancel.finished"] == []
    summaries = [e for e in events if e["event"] == "job.summary"]
    assert len(summaries) == 1
    assert summaries[0]["would_cancel"] == 1
