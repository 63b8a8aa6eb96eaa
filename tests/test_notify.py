"""The --notify-webhook summary, received by a local server."""

from __future__ import annotations

import json

from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

FAST = ("--rate", "1000", "--concurrency", "8")


def test_webhook_gets_the_summary_when_runs_were_cancelled_and_failed(emu_thread, cli, receiver):
    """A run with cancels and a failure posts counts, target, exit code and failed ids once."""
    emu = emu_thread(runs=0)
    good = [emu.add_run(age_s=7200).id for _ in range(2)]
    bad = emu.add_run(age_s=7200).id
    emu.config.poison_ids.add(bad)
    hook = receiver()
    res = cli(emu, "run", "--older-than", "1h", *FAST, "--max-attempts", "1",
              "--notify-webhook", hook.base_url + "/hooks/T0KEN123?x=1", "--job-name", "nightly")
    assert res.code == 1, res.stderr
    [got] = hook.requests
    assert got.method == "POST"
    assert got.path == "/hooks/T0KEN123?x=1"
    assert got.headers["Content-Type"].startswith("application/json")
    body = json.loads(got.body)
    assert body["job_name"] == "nightly"
    assert body["mode"] == "run"
    assert body["target"]["base_url"] == emu.base_url
    assert body["exit_code"] == 1
    assert body["counts"]["cancelled"] == 2
    assert body["counts"]["unknown"] == 1  # the poison run: 500 on DELETE and read-back
    assert body["failed_run_ids"] == [bad]
    assert body["failed_run_ids_truncated"] is False
    assert body["duration_s"] >= 0
    assert body["job_id"] == res.report["job_id"]
    assert set(good) <= emu.cancelled_ids()
    raw = got.body.decode()
    assert DEMO_CLIENT_SECRET not in raw
    assert DEMO_CLIENT_ID not in raw
    assert "Bearer" not in raw
    assert "T0KEN123" not in res.stderr  # the webhook's secret path is never logged


def test_no_webhook_when_nothing_was_cancelled(emu_thread, cli, receiver):
    """A plan that exits 0 sends nothing to the webhook."""
    emu = emu_thread(runs=0)
    emu.add_run(age_s=7200)
    hook = receiver()
    res = cli(emu, "plan", "--older-than", "1h", "--notify-webhook", hook.base_url + "/h")
    assert res.code == 0, res.stderr
    assert hook.requests == []


def test_webhook_on_a_failed_job_without_cancels(emu_thread, cli, receiver):
    """Refused credentials (exit 3) are notified, with the reason and without the secret."""
    emu = emu_thread(runs=0)
    hook = receiver()
    res = cli(emu, "run", "--notify-webhook", hook.base_url + "/h",
              env={"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": "s3cret-value"})
    assert res.code == 3
    [got] = hook.requests
    body = json.loads(got.body)
    assert body["exit_code"] == 3
    assert "AuthError" in body["exit_reason"]
    assert "s3cret-value" not in got.body.decode()


def test_webhook_failure_is_retried_once_and_not_fatal(emu_thread, cli, receiver):
    """A webhook answering 503 is tried twice, logged, and the exit code stays 0."""
    emu = emu_thread(runs=0)
    emu.add_run(age_s=7200)
    hook = receiver(status=503)
    res = cli(emu, "run", "--older-than", "1h", *FAST, "--notify-webhook", hook.base_url + "/h",
              "--log-format", "json")
    assert res.code == 0, res.stderr
    assert len(hook.requests) == 2
    events = [json.loads(line)["event"] for line in res.stderr.splitlines()
              if line.startswith("{")]
    assert "notify.failed" in events


def test_plain_http_webhook_to_a_remote_host_is_refused_before_any_call(emu_thread, cli):
    """http:// to a non-loopback webhook is a config error (exit 2); the API sees nothing."""
    emu = emu_thread(runs=0)
    res = cli(emu, "run", "--notify-webhook", "http://hooks.example.com/T0KEN")
    assert res.code == 2
    assert "output.notify_webhook" in res.stderr
    assert "T0KEN" not in res.stderr
    assert emu.records == []
