"""worker.memory and what shows it: the verdicts one run gets, the metrics of noticed, spared
and stalled runs, the webhook's notices, the screen, history's table, and the config checks."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import generate_latest

from worker.commands.history import render, rows, write_csv
from worker.config import load_settings, require_basis
from worker.errors import ConfigError
from worker.memory import Memory, confirm_notices, record_job, stalled_miss, unchanged_for
from worker.metrics import build_registry, sample_of
from worker.models import JobResult, Outcome, ReportRun, RunRecord
from worker.notify import build_payload, notice_payload, notices, should_notify
from worker.report import build_header
from worker.screen import render as render_screen
from worker.state.history import History, week_of
from worker.state.location import resolve
from worker.state.store import Known, Spare, open_store

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ENV = {"ZUORA_CLIENT_ID": "id", "ZUORA_CLIENT_SECRET": "secret"}


def _settings(**flags: str):
    given = {"target.base_url": "https://rest.zuora.com", "filters.older_than": "1h", **flags}
    return load_settings("run", given, ENV, None)


def _run(run_id: str = "r1", status: str = "STARTED", updated: float = 0.0,
         report_type: str = "Detail") -> ReportRun:
    return ReportRun(run_id, "rep", report_type, status, NOW - timedelta(hours=3),
                     NOW - timedelta(hours=2) + timedelta(seconds=updated), "a@example.com",
                     report_name="Daily")


def _known(run: ReportRun, since: datetime, noticed: datetime | None = None,
           due: datetime | None = None) -> Known:
    assert run.updated_on is not None
    return Known(run.status, run.updated_on.timestamp(), since.timestamp(),
                 since.timestamp(), noticed and noticed.timestamp(), due and due.timestamp(),
                 None)


def test_unchanged_is_measured_from_the_first_sighting_of_the_state() -> None:
    run = _run()
    assert unchanged_for(run, None, NOW) is None
    assert unchanged_for(run, _known(run, NOW - timedelta(minutes=5)), NOW) == 300.0
    moved = _run(updated=60.0)
    assert unchanged_for(moved, _known(run, NOW - timedelta(minutes=5)), NOW) == 0.0
    assert stalled_miss(run, None, 60.0) == "first_sighting"
    assert stalled_miss(run, 59.0, 60.0) == "not_stalled"
    assert stalled_miss(run, 60.0, 60.0) is None
    blind = ReportRun("x", "r", "Detail", "STARTED", NOW, None, "a")
    assert stalled_miss(blind, 600.0, 60.0) == "no_updated_on"  # never a guess


@pytest.fixture
def store(tmp_path):
    opened = open_store(resolve(str(tmp_path / "state.db"), {}))
    yield opened
    opened.close()


def _judged(store, settings, run: ReportRun, known: Known | None = None,
            started: datetime = NOW) -> RunRecord:
    memory = Memory(store, settings, started)
    memory.known = {run.id: known} if known else {}
    rec = RunRecord(run, run.id or "?", 1, True, "selected")
    memory.judge(rec, NOW)
    return rec


def test_a_spare_wins_and_names_who_and_why(store) -> None:
    settings = _settings()
    store.add_spares([Spare(settings.identity.key, "r1", (NOW + timedelta(hours=1)).timestamp(),
                            "dana", "quarter close", NOW.timestamp())])
    rec = _judged(store, settings, _run())
    assert (rec.selected, rec.reason) == (False, "spared")
    assert rec.note is not None
    assert "dana" in rec.note
    assert "quarter close" in rec.note
    expired = _judged(store, settings, _run(), started=NOW + timedelta(hours=2))
    assert expired.selected


def test_a_notice_then_pending_then_due(store) -> None:
    settings = _settings(**{"safety.notice": "1h"})
    run = _run()
    first = _judged(store, settings, run)
    # held for a notice; the job gives it (outcome noticed) once the guard lets it
    assert (first.selected, first.reason, first.outcome) == (False, "noticed", None)
    noticed, due = NOW - timedelta(minutes=30), NOW + timedelta(minutes=30)
    pending = _judged(store, settings, run, _known(run, noticed, noticed, due))
    assert (pending.selected, pending.reason, pending.outcome) == (False, "notice_pending", None)
    done = _judged(store, settings, run, _known(run, noticed, noticed, due), started=due)
    assert done.selected
    plan = load_settings("plan", {"target.base_url": "https://rest.zuora.com",
                                  "filters.older_than": "1h", "safety.notice": "1h"}, ENV, None)
    would = _judged(store, plan, run)
    assert (would.reason, would.outcome) == ("would_notice", None)


def test_a_run_not_selected_is_left_as_judged(store) -> None:
    settings = _settings(**{"safety.notice": "1h", "filters.stalled_for": "1m"})
    memory = Memory(store, settings, NOW)
    rec = RunRecord(_run(), "r1", 1, False, "too_young")
    memory.judge(rec, NOW)
    assert (rec.selected, rec.reason, rec.outcome) == (False, "too_young", None)


def _result() -> JobResult:
    result = JobResult(mode="run", started_at=NOW, finished_at=NOW, job_id="j1")
    noticed = RunRecord(_run("n1"), "n1", 1, False, "noticed", unchanged_s=300.0)
    noticed.settle(Outcome.NOTICED)
    noticed.cancel_after = NOW + timedelta(hours=1)
    spared = RunRecord(_run("s1", report_type="Summary"), "s1", 1, False, "spared",
                       note="spared by dana")
    stalled = RunRecord(_run("t1"), "t1", 1, False, "excluded_created_by", unchanged_s=4000.0)
    gone = RunRecord(_run("c1"), "c1", 1, True, "selected", unchanged_s=4000.0)
    gone.settle(Outcome.CANCELLED)
    moving = RunRecord(_run("m1"), "m1", 1, False, "not_stalled", unchanged_s=0.0)
    result.records = {r.key: r for r in (noticed, spared, stalled, gone, moving)}
    return result


def test_metrics_count_noticed_spared_and_stalled_by_report_type() -> None:
    settings = _settings(**{"filters.stalled_for": "10m"})
    text = generate_latest(build_registry(sample_of(settings, _result(), 0), None)).decode()
    lines = {line.split(" ")[0]: line.split(" ")[1] for line in text.splitlines()
             if line.startswith("zuora_reaper_last_run_runs_") and "{" in line}
    def value(kind: str, report_type: str) -> float:
        key = next(k for k in lines if k.startswith(f"zuora_reaper_last_run_runs_{kind}{{")
                   and f'report_type="{report_type}"' in k)
        return float(lines[key])
    assert value("noticed", "Detail") == 1
    assert value("spared", "Summary") == 1
    # t1 (4000 s, left alone); c1 was cancelled, n1 (300 s) is under 10m
    assert value("stalled", "Detail") == 1
    assert "a@example.com" not in text
    assert 'run_id' not in text


def test_metrics_say_zero_when_nothing_was_held() -> None:
    result = JobResult(mode="run", started_at=NOW, finished_at=NOW, job_id="j")
    text = generate_latest(build_registry(sample_of(_settings(), result, 0), None)).decode()
    assert 'zuora_reaper_last_run_runs_noticed{report_type="none",' in text or \
        'report_type="none"' in text


def test_the_webhook_carries_the_notices() -> None:
    result = _result()
    settings = _settings(**{"safety.notice": "1h"})
    doc = build_header(settings, result, 0, None)
    assert should_notify(doc)  # c1 was cancelled
    assert "notices" not in build_payload(doc, [], "nightly", 1.0)  # a message of their own
    payload = notice_payload(settings, result, notices(result))
    assert (payload["event"], payload["count"], payload["notice_s"]) == (
        "zuora_reaper.notices", 1, 3600.0)
    [only] = payload["notices"]
    assert only == {"run_id": "n1", "owner": "a@example.com", "report_id": "rep",
                    "report_name": "Daily", "report_type": "Detail", "status": "STARTED",
                    "started_on": "2026-12-02T09:00:00.000Z",
                    "cancel_after": "2026-12-02T13:00:00.000Z"}


def test_the_screen_shows_what_memory_held_back() -> None:
    out = io.StringIO()
    render_screen(_result(), NOW, out)
    text = out.getvalue()
    assert "memory:" in text
    assert "noticed 1" in text
    assert "spared 1" in text
    assert "not stalled 1" in text
    assert "n1" in text  # a noticed run is in the table
    assert "s1" in text


def test_record_job_writes_the_notice_time(store) -> None:
    settings = _settings(**{"safety.notice": "1h"})
    result = _result()
    record_job(store, settings, result, 0, now=NOW)
    assert result.records["n1"].cancel_after == NOW + timedelta(hours=1)  # as announced
    known = store.recall(settings.identity.key, ["n1", "s1", "t1", "c1", "m1"])
    assert (known["n1"].noticed_at, known["n1"].cancel_after) == (NOW.timestamp(), None)
    assert known["t1"].noticed_at is None
    confirm_notices(store, settings, result)  # sent: due D from now, never earlier
    due = store.recall(settings.identity.key, ["n1"])["n1"].cancel_after
    assert due is not None
    assert due >= datetime.now(UTC).timestamp() + 3600 - 5


def test_history_table_csv_and_chart() -> None:
    history = History(since=NOW.timestamp(), jobs=3, cancelled=5, by_report_type={"Detail": 5},
                      by_owner={"a@example.com": 5}, by_report={"rep Daily": 5},
                      by_week={"2026-W48": 1, "2026-W49": 4},
                      age_at_cancel_s={"median": 7200.0, "p95": 9000.0},
                      cancel_success_rate=1.0,
                      repeat_offenders=[{"report_id": "rep", "report_name": "Daily", "jobs": 3,
                                         "runs": 5}])
    table = io.StringIO()
    render(history, table, chart=True)
    assert "2026-W49        4 " + "#" * 40 in table.getvalue()
    assert "2026-W48        1 " + "#" * 10 in table.getvalue()
    plain = io.StringIO()
    render(history, plain, chart=False)
    assert "#" not in plain.getvalue()
    assert ("by_week", "2026-W49", 4) in rows(history)
    out = io.StringIO()
    write_csv(history, out)
    assert out.getvalue().splitlines()[0] == "section,name,value"
    assert "repeat_offender,rep Daily,3" in out.getvalue()
    doc = history.as_dict()
    assert {"jobs", "cancelled", "by_report_type", "by_owner", "by_report", "by_week"} <= set(doc)
    json.dumps(doc)


def test_iso_weeks() -> None:
    assert week_of(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) == "2026-W01"
    assert week_of(datetime(2027, 1, 1, tzinfo=UTC).timestamp()) == "2026-W53"


@pytest.mark.parametrize(("flags", "match"), [
    ({"filters.stalled_for": "2d", "state.keep": "1d"}, "not shorter than --keep"),
    ({"safety.notice": "1d", "state.keep": "12h"}, "out of range"),
    ({"state.url": "postgresql://u:pw@db/x"}, "ZUORA_REAPER_STATE"),
    ({"state.url": "redis://x"}, "allowed"),
    ({"state.url": "postgresql://u@db:port/x"}, "not a PostgreSQL URL"),
    ({"safety.notice": "1h", "run.plan_out": "/tmp/plan.json"}, "does not combine"),
])
def test_config_refuses(flags: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _settings(**flags)


def test_stalled_for_is_a_basis_for_run() -> None:
    settings = load_settings("run", {"target.base_url": "https://rest.zuora.com",
                                     "filters.stalled_for": "1h"}, ENV, None)
    require_basis(settings)  # no error: it is explicit


def test_a_sighting_without_updated_on_neither_resets_nor_proves_a_change() -> None:
    """A job that did not ask for updatedOn (or a server that dropped it) keeps what was known:
    interleaving --older-than and --stalled-for jobs must not make every run look moved."""
    run = _run()
    known = _known(run, NOW - timedelta(hours=1))
    blind = ReportRun("r1", "rep", "Detail", "STARTED", run.started_on, None, "a@example.com")
    assert unchanged_for(blind, known, NOW) == 3600.0
    moved = ReportRun("r1", "rep", "Detail", "QUERYDATA", run.started_on, None, "a@x")
    assert unchanged_for(moved, known, NOW) == 0.0
