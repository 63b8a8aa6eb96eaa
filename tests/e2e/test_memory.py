"""End to end, over real HTTP, on SQLite and on a real PostgreSQL (``state_url``): memory across
jobs. Stalled vs moving, a first sighting never stalled, a notice once then the cancel after
D, a spare and its expiry, and ``history`` equal to what the emulator's journal says."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter

import pytest

from worker.state.location import resolve
from worker.state.store import open_store

FAST = ("--rate", "1000", "--concurrency", "8", "--max-cancel", "1000")
HOUR = 3600.0


@pytest.fixture
def state(state_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store every job of the test uses (SQLite, or a real PostgreSQL): given in the
    environment, where a URL's password belongs."""
    monkeypatch.setenv("ZUORA_REAPER_STATE", state_url)
    return state_url


def _touch(emu, run_id: str, **fields: object) -> None:
    """Change a run on the server, as Zuora would when it moves on."""
    run = emu.runs[run_id]
    for name, value in fields.items():
        setattr(run, name, value)
    run.updated_on = emu.config.clock()


def _by_id(report) -> dict[str, dict]:
    return {run["id"]: run for run in report["runs"]}


def test_stalled_selects_only_runs_that_did_not_move_across_jobs(emu_thread, cli, state):
    """A run whose status or updatedOn changed is not stalled; one seen for the first time is
    never stalled; one that stayed put for D across jobs is cancelled, and only it."""
    emu = emu_thread(runs=0)
    still = emu.add_run(run_id="still", status="QUERYDATA", age_s=3 * HOUR).id
    status = emu.add_run(run_id="status", status="QUERYDATA", age_s=3 * HOUR).id
    updated = emu.add_run(run_id="updated", status="PROCESSINGDATA", age_s=3 * HOUR).id
    first = cli(emu, "plan", "--older-than", "1h", "--stalled-for", "1s")
    assert first.code == 0, first.stderr
    assert {r["reason"] for r in first.report["runs"]} == {"first_sighting"}
    time.sleep(1.2)
    _touch(emu, status, status="PROCESSINGDATA")
    _touch(emu, updated)
    late = emu.add_run(run_id="late", status="STARTED", age_s=3 * HOUR).id
    res = cli(emu, "run", "--older-than", "1h", "--stalled-for", "1s",
              *FAST)
    assert res.code == 0, res.stderr
    runs = _by_id(res.report)
    assert runs[still]["outcome"] == "cancelled"
    assert runs[still]["unchanged_s"] >= 1.0
    assert (runs[status]["reason"], runs[updated]["reason"]) == ("not_stalled", "not_stalled")
    assert runs[status]["unchanged_s"] == runs[updated]["unchanged_s"] == 0.0
    assert runs[late]["reason"] == "first_sighting"
    assert emu.cancelled_ids() == {still}
    assert res.report["filters"]["stalled_for_s"] == 1.0


def test_stalled_counts_from_the_first_sighting_of_the_current_state(emu_thread, cli, state):
    """A run that moved is stalled only D after the job that first saw its new state."""
    emu = emu_thread(runs=0)
    run = emu.add_run(run_id="mover", status="STARTED", age_s=3 * HOUR).id
    args = ("--older-than", "1h", "--stalled-for", "1s")
    assert cli(emu, "plan", *args).code == 0
    time.sleep(0.7)
    _touch(emu, run, status="QUERYDATA")
    assert _by_id(cli(emu, "plan", *args).report)[run]["reason"] == "not_stalled"
    time.sleep(0.4)  # over 1 s after the first sighting, about 0.5 s after the new state's
    assert _by_id(cli(emu, "plan", *args).report)[run]["reason"] == "not_stalled"
    time.sleep(1.0)
    assert _by_id(cli(emu, "plan", *args).report)[run]["outcome"] == "would_cancel"


def test_a_notice_is_sent_once_then_the_run_is_cancelled_after_d(emu_thread, cli, receiver,
                                                                  state):
    """--notice: the first job warns (webhook: owner, report, cancel time) and cancels
    nothing; a job before D sends neither a notice nor a DELETE; a job starting D after the
    notice cancels it; a run that finished meanwhile is simply gone."""
    emu = emu_thread(runs=0)
    a = emu.add_run(run_id="a", age_s=3 * HOUR, created_by="alice@example.com").id
    gone = emu.add_run(run_id="gone", age_s=3 * HOUR).id
    hook = receiver()
    args = ("run", "--older-than", "1h", "--notice", "1s",
            "--notify-webhook", hook.base_url + "/hook", *FAST)
    res = cli(emu, *args)
    assert res.code == 0, res.stderr
    assert not emu.deletes()
    assert res.report["counts"]["noticed"] == 2
    [sent] = hook.requests
    body = json.loads(sent.body)
    notices = {n["run_id"]: n for n in body["notices"]}
    assert set(notices) == {a, gone}
    assert notices[a]["owner"] == "alice@example.com"
    assert notices[a]["report_id"] == emu.runs[a].report_id
    due = notices[a]["cancel_after"]
    assert _by_id(res.report)[a]["cancel_after"] >= due  # due once sent: never earlier

    again = cli(emu, *args)
    assert again.code == 0, again.stderr
    assert {r["reason"] for r in again.report["runs"]} == {"notice_pending"}
    assert not emu.deletes()
    assert len(hook.requests) == 1  # nothing noticed, nothing cancelled: no second message

    _touch(emu, gone, status="COMPLETED")
    time.sleep(1.1)
    last = cli(emu, *args)
    assert last.code == 0, last.stderr
    assert emu.cancelled_ids() == {a}
    assert [d.run_id for d in emu.deletes()] == [a]
    assert last.report["counts"]["noticed"] == 0
    assert last.report["started_at"] >= due


def test_a_plan_shows_would_notice_and_sends_none(emu_thread, cli, receiver, state):
    emu = emu_thread(runs=0)
    a = emu.add_run(age_s=3 * HOUR).id
    hook = receiver()
    res = cli(emu, "plan", "--older-than", "1h", "--notice", "1h",
              "--notify-webhook", hook.base_url + "/hook")
    assert res.code == 0, res.stderr
    assert _by_id(res.report)[a]["reason"] == "would_notice"
    assert "would notice 1" in res.stdout
    assert not hook.requests
    after = cli(emu, "plan", "--older-than", "1h", "--notice", "1h")
    assert _by_id(after.report)[a]["reason"] == "would_notice"  # a plan gives no notice


def test_a_spare_holds_until_it_expires(emu_thread, cli, state, monkeypatch):
    """A spared run is never selected while the spare is in force (the report names who and
    why); after it expires the run is cancelled like any other."""
    emu = emu_thread(runs=0)
    a = emu.add_run(run_id="spared-run", age_s=3 * HOUR).id
    b = emu.add_run(age_s=3 * HOUR).id
    monkeypatch.setenv("USER", "dana")
    assert cli(emu, "plan", "--older-than", "1h").code == 0  # the store a spare goes into
    spared = cli(None, "spare", a, "--for", "1s", "--reason", "quarter close", "--base-url",
                 emu.base_url)
    assert spared.code == 0, spared.stderr
    listed = cli(None, "spare", "--list", "--base-url", emu.base_url)
    assert a in listed.stdout
    assert "dana" in listed.stdout
    res = cli(emu, "run", "--older-than", "1h", *FAST)
    assert res.code == 0, res.stderr
    entry = _by_id(res.report)[a]
    assert (entry["selected"], entry["reason"]) == (False, "spared")
    assert "dana" in entry["note"]
    assert "quarter close" in entry["note"]
    assert emu.cancelled_ids() == {b}
    time.sleep(1.1)
    later = cli(emu, "run", "--older-than", "1h", *FAST)
    assert later.code == 0, later.stderr
    assert emu.cancelled_ids() == {a, b}


def test_a_spare_is_kept_per_target(emu_thread, cli, state):
    """A spare recorded for one principal does not protect the run for another."""
    emu = emu_thread(runs=0)
    a = emu.add_run(age_s=3 * HOUR).id
    other = {"ZUORA_CLIENT_ID": "someone-else", "ZUORA_CLIENT_SECRET": "x"}
    assert cli(emu, "plan", "--older-than", "1h").code == 0
    assert cli(None, "spare", a, "--for", "1h", "--base-url", emu.base_url,
               env=other).code == 0
    res = cli(emu, "plan", "--older-than", "1h")
    assert _by_id(res.report)[a]["outcome"] == "would_cancel"


def test_spare_and_remove(emu_thread, cli, state):
    emu = emu_thread(runs=0)
    a = emu.add_run(age_s=3 * HOUR).id
    base = ("--base-url", emu.base_url)
    assert cli(emu, "plan", "--older-than", "1h").code == 0
    assert cli(None, "spare", a, "--for", "1h", *base).code == 0
    assert _by_id(cli(emu, "plan", "--older-than", "1h", *base[2:]).report)[a]["reason"] \
        == "spared"
    removed = cli(None, "spare", "--remove", a, *base)
    assert removed.code == 0
    assert "removed 1" in removed.stdout
    assert _by_id(cli(emu, "plan", "--older-than", "1h", *base[2:]).report)[a]["outcome"] \
        == "would_cancel"


@pytest.mark.parametrize(("args", "said"), [
    (("--for", "2d"), "name the runs"), (("x", "--for", "soon"), "not a duration"),
    (("x",), "--for DURATION is needed"), (("x", "--for", "400d"), "out of range"),
    (("..", "--for", "1d"), "not a run id"),
])
def test_spare_refuses_bad_input_with_exit_2(cli, args, said, tmp_path):
    path = tmp_path / "s.db"
    open_store(resolve(str(path), {})).close()
    res = cli(None, "spare", *args, "--base-url", "https://rest.zuora.com", "--state", str(path))
    assert res.code == 2, res.stderr
    assert said in res.stderr


@pytest.mark.parametrize("command", [("spare", "abc", "--for", "1d"), ("spare", "--list"),
                                     ("history",)])
def test_spare_and_history_refuse_a_store_no_job_wrote(cli, command, tmp_path):
    """A spare recorded where the scheduled job never looks would protect nothing: a store
    that does not exist (or that no job wrote) is exit 2, and is not created."""
    path = tmp_path / "typo.db"
    res = cli(None, *command, "--base-url", "https://rest.zuora.com", "--state", str(path))
    assert res.code == 2, res.stderr
    assert "no job has recorded there" in res.stderr
    assert not path.exists()


def test_a_spare_of_a_run_no_job_saw_is_recorded_with_a_warning(emu_thread, cli, state):
    emu = emu_thread(runs=0)
    assert cli(emu, "plan", "--older-than", "1h").code == 0
    res = cli(None, "spare", "never-listed", "--for", "1h", "--base-url", emu.base_url)
    assert res.code == 0, res.stderr
    assert "has seen never-listed" in res.stderr


def test_history_equals_the_emulators_journal(emu_thread, cli, state):
    """history's numbers are the server's: runs cancelled in all, by report type, by owner
    and by report; jobs counted; a report stuck in 3 jobs is a repeat offender."""
    emu = emu_thread(runs=0)
    types, owners = ("Detail", "Summary"), ("alice@example.com", "bob@example.com")
    for i in range(6):
        emu.add_run(age_s=3 * HOUR, report_type=types[i % 2], created_by=owners[i % 3 == 0])
    base = FAST
    for _ in range(3):  # one run of the same report stuck in each of 3 jobs
        emu.add_run(age_s=3 * HOUR, created_by="carol@example.com").report_id = "rep-daily"
        assert cli(emu, "run", "--older-than", "1h", *base).code == 0
    res = cli(None, "history", "--output", "json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    cancelled = [emu.runs[i] for i in emu.cancelled_ids()]
    assert doc["jobs"] == 3
    assert doc["cancelled"] == len(cancelled) == 9
    assert doc["by_report_type"] == dict(Counter(r.report_type for r in cancelled))
    assert doc["by_owner"] == dict(Counter(r.created_by for r in cancelled))
    assert sum(doc["by_report"].values()) == 9
    assert doc["by_report"]["rep-daily Emulated report"] == 3
    assert sum(doc["by_week"].values()) == 9
    assert [o["report_id"] for o in doc["repeat_offenders"]] == ["rep-daily"]
    assert doc["cancel_success_rate"] == 1.0
    assert doc["age_at_cancel_s"]["median"] >= 3 * HOUR


def test_history_csv_and_target_narrowing(emu_thread, cli, state):
    emu = emu_thread(runs=0)
    emu.add_run(age_s=3 * HOUR)
    assert cli(emu, "run", "--older-than", "1h", *FAST).code == 0
    csv_out = cli(None, "history", "--output", "csv")
    assert csv_out.code == 0, csv_out.stderr
    assert "total,cancelled,1" in csv_out.stdout.splitlines()
    other = cli(None, "history", "--output", "json", "--base-url",
                "https://rest.zuora.com")
    assert json.loads(other.stdout)["cancelled"] == 0
    mine = cli(None, "history", "--output", "json", "--base-url",
               emu.base_url)
    assert json.loads(mine.stdout)["cancelled"] == 1


def test_notices_count_against_max_cancel(emu_thread, cli, receiver, state):
    """A notice announces a cancel the guard must allow: over --max-cancel, a run gives no
    notice and exits 4, and the next job still has every run without one."""
    emu = emu_thread(runs=0)
    for _ in range(3):
        emu.add_run(age_s=3 * HOUR)
    hook = receiver()
    args = ("run", "--older-than", "1h", "--notice", "1h", "--notify-webhook",
            hook.base_url + "/hook", "--rate", "1000")
    res = cli(emu, *args, "--max-cancel", "2")
    assert res.code == 4, res.stderr
    assert res.report["counts"]["noticed"] == 0
    assert {r["reason"] for r in res.report["runs"]} == {"would_notice"}
    assert not any(json.loads(r.body).get("notices") for r in hook.requests)
    again = cli(emu, *args, "--max-cancel", "3")
    assert again.code == 0, again.stderr
    assert again.report["counts"]["noticed"] == 3


def test_a_notice_the_webhook_refused_is_not_given(emu_thread, cli, receiver, state):
    """A notice counts once recorded and sent: when the webhook refuses it, the job exits 1,
    claims no notice, and the next job notices again (and cancels only D after that)."""
    emu = emu_thread(runs=0)
    a = emu.add_run(age_s=3 * HOUR).id
    down, up = receiver(status=500), receiver()
    base = ("run", "--older-than", "1h", "--notice", "1s", *FAST)
    res = cli(emu, *base, "--notify-webhook", down.base_url + "/hook")
    assert res.code == 1, res.stderr
    assert "notice(s) could not be sent" in res.report["exit_reason"]
    assert res.report["counts"]["noticed"] == 0
    assert _by_id(res.report)[a]["reason"] == "notice_unsent"
    time.sleep(1.1)
    again = cli(emu, *base, "--notify-webhook", up.base_url + "/hook")
    assert again.code == 0, again.stderr
    assert _by_id(again.report)[a]["outcome"] == "noticed"  # not cancelled: never warned
    assert not emu.deletes()
    [sent] = up.requests
    assert json.loads(sent.body)["event"] == "zuora_reaper.notices"


def test_a_job_that_cannot_be_recorded_gives_no_notice(emu_thread, cli, receiver, tmp_path,
                                                        monkeypatch):
    emu = emu_thread(runs=0)
    emu.add_run(age_s=3 * HOUR)
    path = tmp_path / "state.db"
    open_store(resolve(str(path), {})).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE reaper_sightings")  # the job's record will fail
    conn.commit()
    conn.close()
    hook = receiver()
    res = cli(emu, "run", "--older-than", "1h", "--notice", "1h", "--state", str(path),
              "--notify-webhook", hook.base_url + "/hook", *FAST)
    assert res.code == 1, res.stderr
    assert "not recorded in the state store" in res.report["exit_reason"]
    assert res.report["counts"]["noticed"] == 0
    assert not hook.requests or all("notices" not in json.loads(r.body) for r in hook.requests)


def test_notices_past_the_cap_wait_for_a_later_job(emu_thread, cli, receiver, state,
                                                   monkeypatch):
    monkeypatch.setattr("worker.memory.MAX_NOTICES", 2)
    emu = emu_thread(runs=0)
    for _ in range(5):
        emu.add_run(age_s=3 * HOUR)
    hook = receiver()
    args = ("run", "--older-than", "1h", "--notice", "1h", "--notify-webhook",
            hook.base_url + "/hook", *FAST)
    res = cli(emu, *args)
    assert res.code == 0, res.stderr
    reasons = Counter(r["reason"] for r in res.report["runs"])
    assert reasons == {"noticed": 2, "notice_deferred": 3}
    assert json.loads(hook.requests[0].body)["count"] == 2
    later = cli(emu, *args)
    assert Counter(r["reason"] for r in later.report["runs"]) == {
        "noticed": 2, "notice_pending": 2, "notice_deferred": 1}


def test_server_text_with_a_nul_is_recorded_on_both_databases(emu_thread, cli, state):
    """PostgreSQL refuses NUL in text: such an owner is kept as U+FFFD, the job ends well."""
    emu = emu_thread(runs=0)
    emu.add_run(age_s=3 * HOUR, created_by="bad\x00owner@example.com")
    res = cli(emu, "run", "--older-than", "1h", *FAST)
    assert res.code == 0, res.stderr
    history = cli(None, "history", "--output", "json")
    assert json.loads(history.stdout)["by_owner"] == {"bad\ufffdowner@example.com": 1}


def test_a_job_killed_while_sending_its_notices_gave_none(emu_thread, popen_job, receiver,
                                                          state, wait_for, cli):
    """A notice counts once it is sent: a job killed between recording its notices and the
    webhook's answer (a pod evicted, an OOM kill) leaves them unconfirmed, and the next job
    notices again instead of cancelling unannounced."""
    emu = emu_thread(runs=0)
    a = emu.add_run(age_s=3 * HOUR).id
    hanging = receiver(delay=30.0)
    job = popen_job(emu, "run", "--older-than", "1h", "--notice", "1s", "--notify-webhook",
                    hanging.base_url + "/hook", "--rate", "1000",
                    env={"ZUORA_REAPER_STATE": state})
    wait_for(lambda: len(hanging.requests) > 0, what="the notice on its way")
    job.proc.kill()
    job.proc.wait(10)
    time.sleep(1.2)
    up = receiver()
    res = cli(emu, "run", "--older-than", "1h", "--notice", "1s", "--notify-webhook",
              up.base_url + "/hook", *FAST)
    assert res.code == 0, res.stderr
    assert _by_id(res.report)[a]["outcome"] == "noticed"
    assert not emu.deletes()
