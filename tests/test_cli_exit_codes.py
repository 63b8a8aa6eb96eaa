"""Exit codes 0-6, each staged for real; a few through a real subprocess."""

from __future__ import annotations

import json
import re

import pytest

from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME

FAST = ("--rate", "1000", "--concurrency", "16")
LEGACY_BAD = {"ZUORA_USERNAME": DEMO_USERNAME, "ZUORA_PASSWORD": "wrong-password-123"}


def _old_runs(emu, n):
    for i in range(n):
        emu.add_run(run_id=f"r{i:02d}")


def test_exit_0_subprocess(emu_thread, cli_subprocess):
    """Everything cancelled: exit 0, nothing on stderr's last line claiming an error."""
    emu = emu_thread(runs=0)
    _old_runs(emu, 3)
    res = cli_subprocess(emu, "run", *FAST, "--log-level", "warning")
    assert res.code == 0, res.stderr
    assert emu.cancelled_ids() == {"r00", "r01", "r02"}
    assert "exit" not in res.stderr


def test_exit_0_nothing_to_do(emu_thread, cli):
    """No in-progress runs at all: exit 0 and a report with zero counts."""
    emu = emu_thread(runs=0)
    emu.add_run(status="COMPLETED")
    res = cli(emu, "run", *FAST)
    assert res.code == 0, res.stderr
    assert res.report["counts"]["listed"] == 0
    assert emu.deletes() == []


def test_exit_1_subprocess(emu_thread, cli_subprocess):
    """A run failing after retries: exit 1 and a one-line reason on stderr."""
    emu = emu_thread(runs=0, poison_ids={"r00"})
    _old_runs(emu, 2)
    res = cli_subprocess(emu, "run", *FAST, "--max-attempts", "1", "--log-level", "error")
    assert res.code == 1
    assert res.stderr.strip().splitlines()[-1].startswith("zuora-reaper: exit 1:")
    assert res.outcomes() == {"r00": "unknown", "r01": "cancelled"}


def test_exit_2_subprocess_sends_nothing(emu_thread, cli_subprocess):
    """--older-than banana: exit 2 before any request; the emulator saw nothing."""
    emu = emu_thread(runs=0)
    _old_runs(emu, 2)
    res = cli_subprocess(emu, "run", "--older-than", "banana")
    assert res.code == 2
    assert emu.records == []
    assert "banana" in res.stderr
    assert "filters.older_than" in res.stderr
    summary, said = res.stderr.strip().splitlines()  # the summary line for the scheduler's logs
    assert json.loads(summary)["exit_code"] == 2
    assert said.startswith("zuora-reaper: exit 2: ConfigError: filters.older_than: 'banana'")
    assert res.report is None


@pytest.mark.parametrize("args", [
    ("--status", "COMPLETED"),
    ("--max-cancel", "-1"),
    ("--page-size", "251"),
    ("--auth", "basic"),
    ("--bogus-flag",),
])
def test_exit_2_usage_errors(emu_thread, cli, args):
    """Any usage or config error exits 2 with no request made."""
    emu = emu_thread(runs=0)
    res = cli(emu, "run", *args)
    assert res.code == 2
    assert emu.records == []
    assert res.stderr.strip()


def test_exit_2_missing_credentials(emu_thread, cli):
    """No credentials in the environment: exit 2 naming the variable, nothing sent."""
    emu = emu_thread(runs=0)
    res = cli(emu, "run", env={})
    assert res.code == 2
    assert "ZUORA_CLIENT_ID" in res.stderr
    assert emu.records == []


def test_exit_3_bad_secret_subprocess_never_echoes_it(emu_thread, cli_subprocess):
    """A wrong OAuth client secret: exit 3, nothing cancelled, the secret in no output."""
    emu = emu_thread(runs=0)
    _old_runs(emu, 3)
    secret = "wrong-secret-3f9c1d"
    res = cli_subprocess(emu, "run", *FAST,
                         env={"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": secret})
    assert res.code == 3, res.stderr
    assert emu.count("token") >= 1
    assert emu.deletes() == []
    assert secret not in res.stdout + res.stderr
    assert res.report is None or secret not in str(res.report)


def test_exit_3_bad_legacy_password_subprocess(emu_thread, cli_subprocess):
    """Legacy credentials refused: exit 3 and no DELETE."""
    emu = emu_thread(runs=0)
    _old_runs(emu, 2)
    res = cli_subprocess(emu, "run", *FAST, "--auth", "legacy", env=LEGACY_BAD)
    assert res.code == 3
    assert emu.deletes() == []
    assert "zuora-reaper: exit 3:" in res.stderr


def test_exit_3_systemic_permission_failure(emu_thread, cli):
    """Every cancel answering 403: the job stops after 5 and exits 3 with a permission hint."""
    emu = emu_thread(runs=0, forbid_cancel=True)
    _old_runs(emu, 10)
    res = cli(emu, "run", "--rate", "1000", "--concurrency", "1")
    assert res.code == 3
    assert len(emu.deletes()) == 5
    assert emu.cancelled_ids() == set()
    assert "403" in res.stderr
    assert res.report["counts"]["failed"] == 5
    assert res.report["counts"]["not_attempted"] == 5


def test_exit_4_max_cancel_subprocess(emu_thread, cli_subprocess):
    """The max-cancel guard exits 4 in a real process and cancels nothing."""
    emu = emu_thread(runs=0)
    _old_runs(emu, 3)
    res = cli_subprocess(emu, "run", *FAST, "--max-cancel", "2")
    assert res.code == 4
    assert emu.deletes() == []
    assert "3 runs matched" in res.stderr


@pytest.mark.slow
def test_exit_5_deadline(emu_thread, cli):
    """A deadline reached mid-job stops it: exit 5, the rest not attempted."""
    emu = emu_thread(runs=0, latency_ms=250)
    _old_runs(emu, 12)  # 3 s of cancels, one at a time
    res = cli(emu, "run", "--rate", "1000", "--concurrency", "1", "--deadline", "2s")
    assert res.code == 5, res.stderr
    assert "deadline" in res.stderr
    outcomes = res.outcomes()
    assert set(outcomes) == {f"r{i:02d}" for i in range(12)}  # every selected run reported
    assert emu.cancelled_ids() == {k for k, v in outcomes.items() if v == "cancelled"}
    assert "not_attempted" in outcomes.values()


def test_exit_5_retry_budget(emu_thread, cli):
    """An exhausted retry budget stops the job: exit 5, later runs never sent."""
    emu = emu_thread(runs=0, poison_ids={f"r{i:02d}" for i in range(6)})
    _old_runs(emu, 6)
    res = cli(emu, "run", "--rate", "1000", "--concurrency", "1", "--retry-budget", "0")
    assert res.code == 5, res.stderr
    assert "retry budget" in res.stderr
    assert len(emu.deletes()) == 1  # the first failure could not be retried; the job stopped
    assert res.report["counts"]["not_attempted"] == 5


@pytest.mark.parametrize("fault", ["html", "text", "no_list", "truncated"])
def test_exit_6_unusable_listing(emu_thread, cli, fault):
    """A listing body that cannot be read exits 6, names what was seen, cancels nothing."""
    emu = emu_thread(runs=0, list_fault=fault)
    _old_runs(emu, 3)
    res = cli(emu, "run", *FAST)
    assert res.code == 6
    assert emu.deletes() == []
    assert "UnusableResponse" in res.stderr
    if fault == "no_list":
        assert "total" in res.stderr  # the keys seen are named


def test_exit_6_unreachable_legacy_subprocess(cli_subprocess):
    """A base URL nobody listens on exits 6 (legacy: the listing cannot connect)."""
    res = cli_subprocess(None, "run", "--base-url", "http://127.0.0.1:1", "--auth", "legacy",
                         "--max-attempts", "2",
                         env={"ZUORA_USERNAME": "u", "ZUORA_PASSWORD": "p"})
    assert res.code == 6
    assert "ApiUnreachable" in res.stderr


@pytest.mark.slow
def test_exit_6_unreachable_oauth(cli):
    """OAuth against a closed port: the token endpoint cannot be reached, exit 6 (not 3)."""
    res = cli(None, "run", "--base-url", "http://127.0.0.1:1")
    assert res.code == 6
    assert "ApiUnreachable" in res.stderr
    assert "token" in res.stderr


@pytest.mark.parametrize(("args", "env_drop", "key"), [
    (("--older-than", "soon"), None, "filters.older_than"),
    (("--older-than", "1h"), "ZUORA_CLIENT_SECRET", "ZUORA_CLIENT_SECRET"),
    (("--older-than", "1h", "--page-size", "0"), None, "listing.page_size"),
], ids=["bad-duration", "no-secret", "out-of-range"])
def test_a_config_error_still_tells_the_scheduler(cli, tmp_path, monkeypatch, args, env_drop,
                                                  key):
    """Exit 2 at load used to show nothing but the code and a stderr line: the summary line,
    the --output json summary and the metrics now carry it too, and nothing is sent (the
    target here does not even exist)."""
    metrics = tmp_path / "m.prom"
    oauth = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}
    env = {k: v for k, v in oauth.items() if k != env_drop}
    if env_drop:
        monkeypatch.delenv(env_drop, raising=False)
    res = cli(None, "run", "--base-url", "https://rest.apisandbox.zuora.com", *args,
              "--output", "json", "--metrics-file", str(metrics), "--log-format", "json",
              env=env)
    assert res.code == 2, res.stderr
    assert res.summary["exit_code"] == 2
    assert key in res.summary["exit_reason"]
    summaries = [json.loads(line) for line in res.stderr.splitlines()
                 if '"job.summary"' in line]
    assert [s["exit_code"] for s in summaries] == [2]
    assert re.search(r"^zuora_reaper_last_run_exit_code\{[^}]*\} 2\.0$", metrics.read_text(),
                     re.M)
    assert res.report is None  # a job that never started writes no report


def test_a_config_error_in_the_outputs_themselves_is_said_on_stderr(cli, tmp_path):
    """The outputs cannot be trusted when they are what is wrong: stderr, exit 2, no stdout."""
    res = cli(None, "run", "--base-url", "https://rest.apisandbox.zuora.com", "--older-than",
              "1h", "--metrics-file", str(tmp_path / "no-such-dir" / "m.prom"))
    assert res.code == 2
    assert "output.metrics_file" in res.stderr
    assert res.stdout == ""


@pytest.mark.parametrize(("variable", "value"), [
    ("ZUORA_CLIENT_SECRET_FILE", "/nonexistent/zuora/secret"),
    ("ZUORA_CLIENT_ID_FILE", "/nonexistent/zuora/client_id"),
    ("ZUORA_ENTITY_ID", "entity\nwith a line break"),
])
def test_a_credential_that_does_not_load_still_tells_the_scheduler(cli, tmp_path, monkeypatch,
                                                                   variable, value):
    """The systemd unit reads its credentials through *_FILE: one that cannot be read is the
    exit 2 a scheduler most needs to see, on the summary line and the metrics too."""
    metrics = tmp_path / "m.prom"
    env = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET,
           variable: value}
    for name in ("ZUORA_CLIENT_ID", "ZUORA_CLIENT_SECRET"):
        if variable == name + "_FILE":
            del env[name]
            monkeypatch.delenv(name, raising=False)
    res = cli(None, "run", "--base-url", "https://rest.apisandbox.zuora.com", "--older-than",
              "1h", "--output", "json", "--metrics-file", str(metrics), env=env)
    assert res.code == 2, res.stderr
    assert res.summary["exit_code"] == 2
    assert variable in res.summary["exit_reason"]
    assert re.search(r"^zuora_reaper_last_run_exit_code\{[^}]*\} 2\.0$", metrics.read_text(),
                     re.M)


@pytest.mark.parametrize("bad", [("--proxy", "http://proxy.corp:notaport"),
                                 ("--ca-file", "/nonexistent/ca.pem")])
def test_a_refused_way_out_sends_nothing_around_it(cli, tmp_path, receiver, bad):
    """A refused proxy (or CA bundle) is exit 2, said on the summary line and the metrics
    file; the Pushgateway and the webhook are not reached directly, around it (an egress
    policy may allow the proxy alone)."""
    rx = receiver()
    metrics = tmp_path / "m.prom"
    res = cli(None, "run", "--base-url", "https://rest.apisandbox.zuora.com", "--older-than",
              "1h", *bad, "--output", "json", "--metrics-file", str(metrics),
              "--pushgateway", f"{rx.base_url}", "--notify-webhook", f"{rx.base_url}/hook")
    assert res.code == 2, res.stderr
    assert res.summary["exit_code"] == 2
    assert metrics.exists()
    assert rx.requests == []
