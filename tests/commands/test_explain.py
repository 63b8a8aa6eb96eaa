"""explain: every key with its value and source (flag, env, file, default), and no secrets."""

from __future__ import annotations

from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from worker.keys import KEYS

ENV = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET,
       "ZUORA_REAPER_RATE": "50", "ZUORA_REAPER_EXCLUDE_CREATED_BY": "bot@example.com"}
CONFIG = """
[pacing]
concurrency = 4

[filters]
older_than = "2h"

[filters.older_than_by_status]
PROCESSINGDATA = "6h"

[[rules]]
name = "stuck-start"
statuses = ["STARTED"]
older_than = "20m"
"""


def _table(stdout: str) -> dict[str, tuple[str, str]]:
    """{key: (value, source)} from explain's table: columns at the header's positions; a
    value wrapped onto the next lines joins back; the 'set with' lines are skipped."""
    lines = stdout.split("\n\n")[0].splitlines()
    value_at, source_at = lines[0].index("VALUE"), lines[0].index("SOURCE")
    rows: dict[str, list[str]] = {}
    key, in_value = "", False
    for line in lines[1:]:
        cell = line[value_at:source_at].rstrip()
        if line[:value_at].strip():
            key, in_value = line[:value_at].strip(), True
            rows[key] = [cell, line[source_at:].strip()]
        elif cell.startswith("set with"):
            in_value = False
        elif in_value:
            rows[key][0] += cell
    return {k: (v, src) for k, (v, src) in rows.items()}


def test_explain_names_each_source(emu_thread, cli, write_file):
    """A flag, an env var, a file key and a default each show their value and source."""
    emu = emu_thread(runs=0)
    config = write_file("c.toml", CONFIG)
    res = cli(emu, "explain", "--config", config, "--max-cancel", "7", "--older-than",
              "STARTED=30m", env=ENV)
    assert res.code == 0, res.stderr
    rows = _table(res.stdout)
    assert {k.name for k in KEYS} <= set(rows)
    assert rows["safety.max_cancel"] == ("7", "flag")
    assert rows["target.base_url"] == (emu.base_url, "flag")
    assert rows["pacing.rate"] == ("50.0", "env")
    assert rows["exclude.created_by"] == ("bot@example.com", "env")
    assert rows["pacing.concurrency"] == ("4", "file")
    assert rows["filters.older_than"] == ("2h", "file")
    assert rows["listing.page_size"] == ("250", "default")
    assert rows["run.plan_max_age"] == ("1h", "default")
    assert rows["filters.older_than_by_status"] == ("PROCESSINGDATA=6h, STARTED=30m", "flag")
    assert rows["effective.older_than.STARTED"] == ("2h", "derived")
    assert rows["effective.older_than.PROCESSINGDATA"] == ("6h", "derived")
    assert rows["rules.stuck-start"][1] == "file"
    assert "older_than=20m" in rows["rules.stuck-start"][0]
    assert "larger of filters.older_than" in res.stdout
    assert emu.records == []  # explain never calls the API


def test_explain_prints_no_secrets(cli):
    """Credentials show only set/unset; webhook and Pushgateway URLs hide their tokens."""
    env = {"ZUORA_CLIENT_ID": "client-id-value-1234", "ZUORA_CLIENT_SECRET": "s3cr3t-value-xyz"}
    res = cli(None, "explain", "--base-url", "https://rest.zuora.com",
              "--notify-webhook", "https://hooks.slack.com/services/T0/B0/WEBHOOKTOKEN",
              "--pushgateway", "https://push.example.com:9091/gw?token=PUSHTOKEN", env=env)
    assert res.code == 0, res.stderr
    for secret in ("client-id-value-1234", "s3cr3t-value-xyz", "WEBHOOKTOKEN", "PUSHTOKEN"):
        assert secret not in res.stdout
        assert secret not in res.stderr
    rows = _table(res.stdout)
    assert rows["output.notify_webhook"] == ("https://hooks.slack.com/***", "flag")
    assert rows["output.pushgateway"] == ("https://push.example.com:9091/***", "flag")
    assert "client_secret=set" in res.stdout


def test_explain_fits_100_columns(cli, write_file):
    """Every line of explain fits a 100-column terminal, whatever the values' lengths."""
    config = write_file("c.toml", CONFIG)
    res = cli(None, "explain", "--config", config, "--base-url", "https://rest.zuora.com",
              "--notify-webhook", "https://hooks.example.com/" + "x" * 150,
              "--older-than", "STARTED=20m", "--older-than", "PROCESSINGDATA=6h")
    assert res.code == 0, res.stderr
    assert max(len(line) for line in res.stdout.splitlines()) <= 100
    assert _table(res.stdout)["filters.older_than_by_status"] == (
        "PROCESSINGDATA=6h, STARTED=20m", "flag")


def test_explain_shows_what_a_job_does_with_each_tenant_types_windows(cli):
    """Zuora's documented windows per tenant type: the shortest paces (at most its share of the
    quota per second), each longer one is a budget of requests for one job, with the cancels
    it buys; --quota-share moves both."""
    res = cli(None, "explain", "--base-url", "https://rest.zuora.com", "--rate", "100")
    assert res.code == 0, res.stderr
    rows = _table(res.stdout)
    assert rows["quota.api-sandbox.60s"] == ("2,500: paced at 20.8/s", "derived")
    assert rows["quota.api-sandbox.3600s"] == ("5,000: 2,500 a job (~2,489 cancels)", "derived")
    assert rows["quota.api-sandbox.86400s"] == ("10,000: 5,000 a job (~4,979 cancels)",
                                                "derived")
    assert rows["quota.production.60s"] == ("50,000: paced at 100/s", "derived")  # --rate caps
    assert rows["quota.developer-sandbox.3600s"][0].startswith("25,000: 12,500 a job")
    shared = _table(cli(None, "explain", "--base-url", "https://rest.zuora.com", "--rate", "100",
                        "--quota-share", "0.1").stdout)
    assert shared["quota.api-sandbox.60s"] == ("2,500: paced at 4.17/s", "derived")
    assert shared["quota.api-sandbox.3600s"][0].startswith("5,000: 500 a job")
