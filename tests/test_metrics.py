"""Metrics: the textfile parsed back with prometheus_client, and pushes to a local Pushgateway."""

from __future__ import annotations

import base64
import json
import time

from prometheus_client.parser import text_string_to_metric_families

from worker.emulator import DEMO_CLIENT_ID
from worker.metrics import LAST_SUCCESS

P = "zuora_reaper_"
FAST = ("--rate", "1000", "--concurrency", "8")


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as {(name, sorted labels without target/target_id/job_name): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            extra = tuple(sorted((k, v) for k, v in s.labels.items()
                                 if k not in ("target", "target_id", "job_name")))
            out[(s.name, extra)] = s.value
    return out


def api_records(emu, low: int, high: int) -> int:
    """Reporting API answers (token calls excluded) with a status in [low, high)."""
    return sum(1 for r in emu.records if r.kind != "token" and low <= r.status < high)


def seed(emu, good: int = 3, poison: int = 0, young: int = 1) -> list[str]:
    ids = [emu.add_run(age_s=7200).id for _ in range(good)]
    bad = [emu.add_run(age_s=7200).id for _ in range(poison)]
    emu.config.poison_ids.update(bad)
    for _ in range(young):
        emu.add_run(age_s=60)
    return ids + bad


def test_metrics_file_holds_exact_values_of_a_run(emu_thread, cli, tmp_path):
    """A run with one run failing writes listed/selected/outcomes/requests exactly, no success."""
    emu = emu_thread(runs=0)
    seed(emu, good=3, poison=1)
    prom = tmp_path / "textfile" / "reaper.prom"
    prom.parent.mkdir()  # the collector's folder exists; the tool creates none
    res = cli(emu, "run", "--older-than", "1h", *FAST, "--max-attempts", "1",
              "--metrics-file", str(prom), "--job-name", "nightly")
    assert res.code == 1, res.stderr
    text = prom.read_text()
    m = parse(text)
    assert m[(P + "last_run_runs_listed", ())] == 5
    assert m[(P + "last_run_runs_selected", ())] == 4
    assert m[(P + "last_run_cancels", (("outcome", "cancelled"),))] == 3
    assert m[(P + "last_run_cancels", (("outcome", "unknown"),))] == 1  # the poison run
    assert m[(P + "last_run_cancels", (("outcome", "failed"),))] == 0
    assert m[(P + "last_run_cancels", (("outcome", "would_cancel"),))] == 0
    assert m[(P + "last_run_exit_code", ())] == 1
    assert m[(P + "last_run_dry_run", ())] == 0
    assert m[(P + "last_run_requests", (("status_class", "2xx"),))] == api_records(emu, 200, 300)
    assert m[(P + "last_run_requests", (("status_class", "5xx"),))] == api_records(emu, 500, 600)
    assert m[(P + "last_run_requests", (("status_class", "5xx"),))] == 2  # DELETE, read-back
    assert m[(P + "last_run_retries", ())] == 0
    assert m[(P + "last_run_token_requests", ())] == emu.count("token")
    assert (LAST_SUCCESS, ()) not in m  # never succeeded: no value to alert from
    report = res.report
    assert m[(P + "last_run_timestamp_seconds", ())] == _ts(report["finished_at"])
    took = _ts(report["finished_at"]) - _ts(report["started_at"])
    assert abs(m[(P + "last_run_duration_seconds", ())] - took) < 0.002
    labels = next(iter(text_string_to_metric_families(text))).samples[0].labels
    assert labels["target"] == emu.base_url
    assert labels["job_name"] == "nightly"


def test_last_success_survives_a_failed_run(emu_thread, cli, tmp_path):
    """After a failed run, the file keeps the previous run's last-success timestamp."""
    emu = emu_thread(runs=0)
    seed(emu, good=2)
    prom = tmp_path / "reaper.prom"
    ok = cli(emu, "run", "--older-than", "1h", *FAST, "--metrics-file", str(prom))
    assert ok.code == 0, ok.stderr
    first = parse(prom.read_text())
    assert first[(LAST_SUCCESS, ())] == first[(P + "last_run_timestamp_seconds", ())]
    assert first[(P + "last_run_cancels", (("outcome", "cancelled"),))] == 2
    bad = cli(emu, "run", "--older-than", "1h", *FAST, "--metrics-file", str(prom),
              env={"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": "wrong"})
    assert bad.code == 3
    second = parse(prom.read_text())
    assert second[(LAST_SUCCESS, ())] == first[(LAST_SUCCESS, ())]
    assert second[(P + "last_run_timestamp_seconds", ())] > first[(LAST_SUCCESS, ())]
    assert second[(P + "last_run_exit_code", ())] == 3
    assert second[(P + "last_run_cancels", (("outcome", "cancelled"),))] == 0


def test_plan_metrics_count_would_cancel_and_succeed(emu_thread, cli, tmp_path):
    """plan exits 0: would_cancel is counted, dry_run is 1 and last success is set."""
    emu = emu_thread(runs=0)
    seed(emu, good=4)
    prom = tmp_path / "plan.prom"
    res = cli(emu, "plan", "--older-than", "1h", "--metrics-file", str(prom))
    assert res.code == 0, res.stderr
    m = parse(prom.read_text())
    assert m[(P + "last_run_cancels", (("outcome", "would_cancel"),))] == 4
    assert m[(P + "last_run_dry_run", ())] == 1
    assert (LAST_SUCCESS, ()) in m
    assert emu.deletes() == []


def test_throttles_and_retries_match_what_the_emulator_sent(emu_thread, cli, tmp_path):
    """429s by kind, retries and 5xx in the file equal what the emulator answered."""
    emu = emu_thread(runs=0, fail_503_ratio=0.3, fault_retry_after=0, seed=7)
    seed(emu, good=12)
    prom = tmp_path / "r.prom"
    res = cli(emu, "run", "--older-than", "1h", *FAST, "--max-attempts", "10",
              "--metrics-file", str(prom))
    assert res.code == 0, res.stderr
    m = parse(prom.read_text())
    fives = api_records(emu, 500, 600)
    assert fives > 0
    assert m[(P + "last_run_requests", (("status_class", "5xx"),))] == fives
    assert m[(P + "last_run_retries", ())] == fives  # every 503 was retried, and only those
    assert m[(P + "last_run_rate_limited", (("kind", "rate"),))] == emu.limited_count("rate")
    assert m[(P + "last_run_rate_limited", (("kind", "concurrency"),))] == \
        emu.limited_count("concurrency")


def test_push_on_success_replaces_the_group_with_put(emu_thread, cli, receiver):
    """Exit 0 PUTs every metric, last success included, to /metrics/job/<job>/target@base64/...;
    the grouping key holds job=<job_name>, so no metric carries a duplicate job_name label."""
    emu = emu_thread(runs=0)
    seed(emu, good=2)
    gw = receiver()
    res = cli(emu, "run", "--older-than", "1h", *FAST, "--pushgateway", gw.base_url,
              "--job-name", "reaper-prod")
    assert res.code == 0, res.stderr
    [push] = gw.requests
    target_b64 = base64.urlsafe_b64encode(emu.base_url.encode()).decode()
    assert push.method == "PUT"
    target_id = res.report["target"]["id"]
    assert push.path == f"/metrics/job/reaper-prod/target@base64/{target_b64}/target_id/{target_id}"
    m = parse(push.body.decode())
    assert m[(P + "last_run_cancels", (("outcome", "cancelled"),))] == 2
    assert m[(P + "last_run_runs_listed", ())] == 3
    assert m[(LAST_SUCCESS, ())] == m[(P + "last_run_timestamp_seconds", ())]
    body = push.body.decode()
    assert "build_info" in body
    assert "job_name" not in body


def test_push_after_failure_posts_without_last_success(emu_thread, cli, receiver):
    """A failed run POSTs (adds) its metrics but not last success, so the gateway keeps it."""
    emu = emu_thread(runs=0, forbid_cancel=True)
    seed(emu, good=2)
    gw = receiver()
    res = cli(emu, "run", "--older-than", "1h", *FAST, "--pushgateway", gw.base_url)
    assert res.code == 1, res.stderr
    [push] = gw.requests
    assert push.method == "POST"
    m = parse(push.body.decode())
    assert (LAST_SUCCESS, ()) not in m
    assert m[(P + "last_run_cancels", (("outcome", "failed"),))] == 2
    assert m[(P + "last_run_exit_code", ())] == 1


def test_push_failure_is_a_warning_not_an_exit_code(emu_thread, cli, receiver):
    """A Pushgateway answering 500 is logged and the job still exits 0."""
    emu = emu_thread(runs=0)
    seed(emu, good=1)
    gw = receiver(status=500)
    res = cli(emu, "run", "--older-than", "1h", *FAST, "--pushgateway", gw.base_url,
              "--log-format", "json")
    assert res.code == 0
    assert len(gw.requests) == 1
    events = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    assert [e["level"] for e in events if e["event"] == "metrics.push_failed"] == ["warning"]


def test_two_tenants_on_one_host_push_to_two_groups(emu_thread, cli, receiver):
    """Two API clients of one host (every US production tenant is https://rest.zuora.com) are
    two targets: two Pushgateway groups, never one overwriting the other."""
    emu = emu_thread(runs=0)
    seed(emu, good=1)
    gw = receiver()
    other = {"ZUORA_CLIENT_ID": "another-client-id", "ZUORA_CLIENT_SECRET": "whatever"}
    first = cli(emu, "plan", "--older-than", "1h", *FAST, "--pushgateway", gw.base_url)
    second = cli(emu, "plan", "--older-than", "1h", *FAST, "--pushgateway", gw.base_url,
                 env={**other})
    assert first.code == 0
    assert second.code == 3  # the emulator refuses that client: still a push of its own
    paths = [r.path for r in gw.requests]
    assert len(paths) == 2
    assert paths[0] != paths[1]
    assert paths[0].endswith("/target_id/" + first.report["target"]["id"])


def test_push_to_a_hanging_gateway_is_bounded(receiver):
    """push_metrics gives up after its timeout when the gateway never answers."""
    from datetime import UTC, datetime

    from worker.metrics import Sample, push_metrics
    from worker.models import JobResult

    gw = receiver(delay=5)
    now = datetime.now(UTC)
    sample = Sample({"target": "https://x", "target_id": "0" * 16, "job_name": "j"}, 0, False,
                    now, 1.0,
                    JobResult(mode="run", started_at=now, finished_at=now))
    start = time.monotonic()
    assert push_metrics(gw.base_url, sample, timeout=0.3) is False
    assert time.monotonic() - start < 4.0  # the gateway holds its answer 5 s


def test_bad_pushgateway_url_is_a_config_error_before_any_call(emu_thread, cli):
    """A pushgateway URL without a scheme exits 2 and the API never sees a request."""
    emu = emu_thread(runs=0)
    res = cli(emu, "run", "--pushgateway", "pushgateway:9091")
    assert res.code == 2
    assert "output.pushgateway" in res.stderr
    assert emu.records == []


def _ts(iso: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_build_info_and_phase_durations(emu_thread, cli, tmp_path):
    """build_info carries the installed version; the phase durations are the job's own and add
    up to no more than its duration."""
    from worker import __version__

    emu = emu_thread(runs=0)
    seed(emu, good=3)
    prom = tmp_path / "r.prom"
    res = cli(emu, "run", "--older-than", "1h", *FAST, "--metrics-file", str(prom))
    assert res.code == 0, res.stderr
    m = parse(prom.read_text())
    assert m[(P + "build_info", (("version", __version__),))] == 1
    listing = m[(P + "last_run_phase_duration_seconds", (("phase", "listing"),))]
    cancelling = m[(P + "last_run_phase_duration_seconds", (("phase", "cancelling"),))]
    assert listing > 0
    assert cancelling > 0
    assert listing + cancelling <= m[(P + "last_run_duration_seconds", ())]


def test_outcomes_by_report_type_are_bounded(emu_thread, cli, tmp_path):
    """25 report types: the 20 with the most selected runs by name, the other 5 as other."""
    emu = emu_thread(runs=0)
    for index in range(25):
        for _ in range(1 + (index < 20)):  # the first 20 types have two runs, the rest one
            emu.add_run(age_s=7200, report_type=f"Type{index:02d}")
    prom = tmp_path / "r.prom"
    res = cli(emu, "run", "--older-than", "1h", *FAST, "--metrics-file", str(prom))
    assert res.code == 0, res.stderr
    m = parse(prom.read_text())
    by_type = {dict(labels)["report_type"]: value for (name, labels), value in m.items()
               if name == P + "last_run_cancels_by_report_type"}
    assert len(by_type) == 21
    assert by_type["other"] == 5
    assert all(by_type[f"Type{i:02d}"] == 2 for i in range(20))
