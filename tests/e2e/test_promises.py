"""The three promises, stated as invariants and tested against the emulator with Hypothesis.

1. It cancels only what it was told to: every DELETE satisfies a selection predicate written
   plainly here, independent of ``worker/selection.py`` and ``worker/config.py``.
2. It reports what the server did: each run's outcome, and the counts, equal what the
   emulator's journal says happened to it.
3. An exit code means one thing: each kind of ending exits with its documented code.
And a stop is bounded: a stalled call never keeps the job past its deadline plus the grace.

Bounded examples in CI (a few seconds a suite); ``HYPOTHESIS_PROFILE=long`` runs many more
(``HYPOTHESIS_PROFILE=long pytest tests/e2e/test_promises.py --timeout 0``: a suite then takes
minutes, past the per-test timeout).
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from strategies import examples

from worker import cancel as cancel_module
from worker.cli import flags_from
from worker.config import load_settings, require_basis
from worker.control import JobControl
from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, EmulatorConfig
from worker.emulator.config import REMOVE
from worker.emulator.runs import OTHER_USER
from worker.errors import ConfigError
from worker.job import JobDeps, run_job
from worker.models import IN_PROGRESS
from worker.options import normalise, parse
from worker.retry import RetryPolicy

pytestmark = pytest.mark.slow

ENV = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}
FLOOR_MIN = 5  # safety.min_age, in minutes
SLOW = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large]


def _settings(argv: list[str], config: str | None = None) -> Any:
    """Settings exactly as the CLI builds them from ``argv`` (and a config file's text)."""
    with tempfile.TemporaryDirectory() as folder:
        extra: list[str] = []
        if config is not None:
            path = Path(folder) / "reaper.toml"
            path.write_text(config)
            extra = ["--config", str(path)]
        ns = parse(normalise([*argv, *extra]))
        built = load_settings(ns.command, flags_from(ns), ENV, ns.config)
        require_basis(built)
        return built


# ---------------------------------------------------------------- 1. nothing outside the predicate

OWNERS = ("alice@example.com", "bob@example.com", "reporting-bot@example.com")
TYPES = ("Detail", "Summary")
REPORTS = ("rep-a", "rep-b")
ITEM_FIELDS = {"owner": "createdByUserProfile", "rtype": "reportType", "report": "reportId"}
MINUTES = (600, 120, 61, 60, 30, 10, 6, 5, 4, 0)  # around the floor and thresholds; simplest first


def cased(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.upper(), word.lower(), word.title(), word.swapcase()])


@dataclass
class Served:
    """One run as the emulator lists it (None: a field its item does not carry), and every
    (status, minutes since update) it held."""

    run_id: str
    owner: str | None
    rtype: str | None
    report: str | None
    age: int
    held: list[tuple[str, int]] = field(default_factory=list)


@st.composite
def a_run(draw: st.DrawFn) -> dict[str, Any]:
    age = draw(st.sampled_from(MINUTES))
    return {"status": draw(st.sampled_from(IN_PROGRESS)), "age": age,
            "idle": draw(st.sampled_from([m for m in MINUTES if m <= age])),
            "owner": draw(st.sampled_from(OWNERS).flatmap(cased)),
            "rtype": draw(st.sampled_from(TYPES).flatmap(cased)),
            "report": draw(st.sampled_from(REPORTS)),
            # fields the listed item leaves out (the API's answer does not always carry them)
            "missing": draw(rarely(st.sets(st.sampled_from(sorted(ITEM_FIELDS)), min_size=1),
                                   set()))}


def rarely(strategy: st.SearchStrategy[Any], empty: Any) -> st.SearchStrategy[Any]:
    """``empty`` two times in three: a selection that filters on everything selects nothing."""
    return st.one_of(st.just(empty), st.just(empty), strategy)


@st.composite
def a_filter(draw: st.DrawFn) -> dict[str, Any]:
    minutes = st.sampled_from(MINUTES)
    some = st.lists(st.sampled_from(IN_PROGRESS), unique=True, min_size=1)
    return {
        "older_than": draw(st.one_of(minutes, minutes, st.none())),
        "by_status": draw(rarely(st.dictionaries(st.sampled_from(IN_PROGRESS), minutes,
                                                 min_size=1, max_size=3), {})),
        "idle_for": draw(rarely(minutes, None)),
        "statuses": draw(rarely(some, None)),
        "types": draw(rarely(st.lists(st.sampled_from(TYPES).flatmap(cased), min_size=1,
                                      max_size=2), [])),
        "owners": draw(rarely(st.lists(st.sampled_from(OWNERS).flatmap(cased), min_size=1,
                                       max_size=2), [])),
        "reports": draw(rarely(st.lists(st.sampled_from(REPORTS), min_size=1, max_size=1), [])),
    }


@st.composite
def a_selection(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "global": draw(a_filter()),
        "rules": draw(rarely(st.lists(a_filter(), min_size=1, max_size=2), [])),
        "ex_owners": draw(rarely(st.lists(st.sampled_from(OWNERS).flatmap(cased), min_size=1,
                                          max_size=2), [])),
        "ex_types": draw(rarely(st.lists(st.sampled_from(TYPES).flatmap(cased), min_size=1,
                                         max_size=1), [])),
        "ex_reports": draw(rarely(st.lists(st.sampled_from(REPORTS), min_size=1, max_size=1),
                                  [])),
    }


# A change on the server after listing page N: a run finishes, moves on to another
# in-progress status, or an old run appears at the front of the listing (pages shift).
FLIP = st.tuples(st.integers(1, 4), st.sampled_from(["finish", "progress", "insert"]),
                 st.integers(0, 30), a_run())


def _argv(sel: dict[str, Any]) -> tuple[list[str], str | None]:
    g = sel["global"]
    argv = ["run", "--page-size", "3", "--rate", "1000", "--concurrency", "4",
            "--max-cancel", "1000", "--yes"]
    if g["older_than"] is not None:
        argv += ["--older-than", f"{g['older_than']}m"]
    for status, minutes in g["by_status"].items():
        argv += ["--older-than", f"{status}={minutes}m"]
    if g["idle_for"] is not None:
        argv += ["--idle-for", f"{g['idle_for']}m"]
    for status in g["statuses"] or ():
        argv += ["--status", status]
    for flag, key in (("--report-type", "types"), ("--created-by", "owners"),
                      ("--report-id", "reports")):
        for value in g[key]:
            argv += [flag, value]
    for flag, key in (("--exclude-created-by", "ex_owners"),
                      ("--exclude-report-type", "ex_types"),
                      ("--exclude-report-id", "ex_reports")):
        for value in sel[key]:
            argv += [flag, value]
    return argv, _rules_toml(sel["rules"])


def _rules_toml(rules: list[dict[str, Any]]) -> str | None:
    if not rules:
        return None
    out = []
    for index, rule in enumerate(rules):
        lines = ["[[rules]]", f'name = "rule{index}"']
        if rule.get("older_than") is not None:
            lines.append(f'older_than = "{rule["older_than"]}m"')
        if rule.get("idle_for") is not None:
            lines.append(f'idle_for = "{rule["idle_for"]}m"')
        if rule.get("by_status"):
            table = ", ".join(f'{s} = "{m}m"' for s, m in rule["by_status"].items())
            lines.append(f"older_than_by_status = {{{table}}}")
        for key, name in (("statuses", "statuses"), ("types", "report_types"),
                          ("owners", "created_by"), ("reports", "report_ids")):
            if rule.get(key):
                lines.append(f"{name} = [{', '.join(repr(v) for v in rule[key])}]")
        out.append("\n".join(lines).replace("'", '"'))
    return "\n\n".join(out) + "\n"


def _covers(f: dict[str, Any], status: str) -> bool:
    return f.get("older_than") is not None or f.get("idle_for") is not None \
        or status in f.get("by_status", {})


def _one_of(value: str | None, names: list[str]) -> bool:
    """A known value equal to one of ``names`` but for letter case (the data here is ASCII)."""
    return value is not None and value.lower() in {n.lower() for n in names}


def _passes(run: Served, status: str, idle: int, f: dict[str, Any], g: dict[str, Any]) -> bool:
    """One set of filters, as the README states them, in plain words."""
    if f.get("statuses") and status not in f["statuses"]:
        return False
    if f.get("types") and not _one_of(run.rtype, f["types"]):
        return False
    if f.get("owners") and not _one_of(run.owner, f["owners"]):
        return False
    if f.get("reports") and run.run_id not in f["reports"] \
            and (run.report is None or run.report not in f["reports"]):
        return False
    by_status = f.get("by_status", {})
    if by_status and not _covers(f, status) and not _covers(g, status):
        return False  # a per-status table covers only the statuses it names
    if run.age < max(f.get("older_than") or 0, by_status.get(status, 0)):
        return False
    return f.get("idle_for") is None or idle >= f["idle_for"]


def eligible(run: Served, status: str, idle: int, sel: dict[str, Any]) -> bool:
    """May a run in this state be cancelled by this selection? Written from the README."""
    g = sel["global"]
    if status not in (g["statuses"] or IN_PROGRESS):
        return False
    if run.run_id in sel["ex_reports"] or run.report in sel["ex_reports"]:
        return False
    for value, excluded in ((run.owner, sel["ex_owners"]), (run.rtype, sel["ex_types"]),
                            (run.report, sel["ex_reports"])):
        if excluded and (value is None or _one_of(value, excluded)):
            return False  # excluded, or not known not to be: unknown values never pass
    if run.age < FLOOR_MIN:
        return False
    if not sel["rules"]:
        return _passes(run, status, idle, g, {})
    # through a rule: the global filters and the rule, each table covered by either
    return any(_passes(run, status, idle, g, r) and _passes(run, status, idle, r, g)
               for r in sel["rules"])


class Stage:
    """The emulator's runs on a fixed clock, and the flips applied as pages are answered."""

    def __init__(self, emu: Emulator, now: float) -> None:
        self.emu, self.now, self.served = emu, now, {}

    def add(self, spec: dict[str, Any], run_id: str) -> None:
        run = self.emu.add_run(status=spec["status"], age_s=spec["age"] * 60,
                               updated_age_s=spec["idle"] * 60, report_type=spec["rtype"],
                               created_by=spec["owner"], run_id=run_id)
        run.report_id = spec["report"]
        missing = spec.get("missing", set())
        if missing:
            self.emu.config.item_patch[run_id] = {ITEM_FIELDS[f]: REMOVE for f in missing}
        known = {f: (None if f in missing else spec[f]) for f in ITEM_FIELDS}
        self.served[run_id] = Served(run_id, known["owner"], known["rtype"], known["report"],
                                     spec["age"], [(spec["status"], spec["idle"])])

    def flip(self, action: str, index: int, spec: dict[str, Any]) -> None:
        ids = sorted(self.served)
        if action == "insert":
            self.add({**spec, "age": 600, "idle": min(spec["idle"], 600)}, f"new-{index:02d}")
            return
        run = self.emu.runs.get(ids[index % len(ids)]) if ids else None
        if run is None or run.status not in IN_PROGRESS:
            return
        moved = "COMPLETED" if action == "finish" else spec["status"]
        run.status, run.updated_on = moved, self.now
        if moved in IN_PROGRESS:
            self.served[run.id].held.append((moved, 0))


async def _selection_scenario(runs: list[dict[str, Any]], sel: dict[str, Any],
                              flips: list[Any]) -> None:
    argv, config = _argv(sel)
    now = float(int(time.time()))  # whole seconds: startedOn (in ms) is then exact
    emu = Emulator(EmulatorConfig(runs=0, clock=lambda: now))
    await emu.start()
    try:
        stage = Stage(emu, now)
        for index, spec in enumerate(runs):
            stage.add(spec, f"run-{index:02d}")
        todo = sorted(flips, key=lambda f: f[0])
        emu.config.after_list = lambda answered: [stage.flip(a, i, s) for page, a, i, s in todo
                                                  if page == answered]
        try:
            built = _settings([*argv, "--base-url", emu.base_url], config)
        except ConfigError:
            event("refused at load")  # e.g. no basis, or a per-status table that is partial
            return
        result = await run_job(built, JobDeps(now=lambda: datetime.fromtimestamp(now, UTC),
                                              policy=RetryPolicy(base=0, cap=0)))
        assert result.error is None, result.error
        deleted = set(emu.deletes_received())
        eligible_at_start = any(eligible(r, *r.held[0], sel) for r in stage.served.values())
        event(f"eligible {'some' if eligible_at_start else 'none'}, "
              f"deleted {'some' if deleted else 'none'}, flips {'some' if flips else 'none'}")
        for run_id in deleted:
            run = stage.served[run_id]
            assert any(eligible(run, s, idle, sel) for s, idle in run.held), (run_id, run, sel)
        if not flips:  # and with nothing changing meanwhile, every eligible run was cancelled
            want = {i for i, r in stage.served.items() if eligible(r, *r.held[0], sel)}
            assert deleted == want
    finally:
        await emu.stop()


@settings(max_examples=examples(60, 1000), deadline=None, suppress_health_check=SLOW)
@given(runs=st.lists(a_run(), min_size=1, max_size=12), sel=a_selection(),
       flips=rarely(st.lists(FLIP, min_size=1, max_size=3), []))
def test_every_delete_satisfies_the_selection_predicate(runs, sel, flips):
    asyncio.run(_selection_scenario(runs, sel, flips))


# ---------------------------------------------------------------- 2. the report is the server's

STEPS_FIRST = ("ok", "other_cancel", "finish", "refuse", "forbid", "503", "reset", "timeout",
               "lost_504", "lost_drop", "lost_stall")
STEPS_LATER = ("ok", "refuse", "forbid", "503", "reset", "timeout", "lost_504", "lost_drop",
               "lost_stall")
ATTEMPTS = 3
SCHEDULE = st.tuples(st.sampled_from(STEPS_FIRST),
                     st.lists(st.sampled_from(STEPS_LATER), max_size=ATTEMPTS - 1)).map(
    lambda t: [t[0], *t[1]])


def expected_outcome(emu: Emulator, run_id: str, steps: list[str], job_id: str) -> str:
    """What the server's journal says happened to a run, in the report's words."""
    received = emu.deletes_received()[run_id]
    if received == 0:
        return "not_attempted"
    by = emu.cancelled_by.get(run_id)
    if by is not None:
        return "already_cancelled" if by == OTHER_USER else (
            "cancelled" if by.startswith(f"zr-{job_id}-") else "unknown")
    if emu.runs[run_id].status == "COMPLETED":
        return "already_finished"
    executed = (steps + ["ok"] * ATTEMPTS)[:received]
    return "failed" if executed[-1] in ("refuse", "forbid") else "still_running"


async def _truth_scenario(schedules: list[list[str]]) -> None:
    emu = Emulator(EmulatorConfig(runs=0, cancel_stall_s=0.4))
    await emu.start()
    try:
        ids = [emu.add_run(status="STARTED", age_s=7200, run_id=f"r{i}").id
               for i in range(len(schedules))]
        emu.config.cancel_script = dict(zip(ids, schedules, strict=True))
        built = _settings(["run", "--base-url", emu.base_url, "--older-than", "1h",
                           "--rate", "1000", "--concurrency", "4", "--max-attempts",
                           str(ATTEMPTS), "--attempt-timeout", "0.2s", "--retry-budget",
                           "100000", "--max-passes", "1"])
        result = await run_job(built, JobDeps(policy=RetryPolicy(max_attempts=ATTEMPTS,
                                                                 base=0, cap=0)))
        result.settle_unattempted()
        got = {i: str(result.records[i].outcome) for i in ids}
        want = {i: expected_outcome(emu, i, s, result.job_id) for i, s in zip(ids, schedules,
                                                                            strict=True)}
        assert got == want, (schedules, emu.cancelled_by)
    finally:
        await emu.stop()


@settings(max_examples=examples(15, 300), deadline=None, suppress_health_check=SLOW)
@given(schedules=st.lists(SCHEDULE, min_size=1, max_size=6))
@example(schedules=[["lost_504"], ["lost_drop", "503"], ["other_cancel"], ["finish"],
                    ["503", "refuse"], ["503", "503", "503"]])
@example(schedules=[["503", "forbid"], ["lost_504", "forbid"], ["timeout", "refuse"]])
def test_each_outcome_is_what_the_servers_journal_says(schedules):
    asyncio.run(_truth_scenario(schedules))


# ---------------------------------------------------------------- 3. one meaning per exit code

ENDINGS = {"ok": 0, "deadline": 5, "signal": 5, "budget": 5, "bad_secret": 3,
           "forbidden": 3, "refusals": 1, "unusable_listing": 6, "internal": 6}


def _stage_ending(emu: Emulator, ending: str, runs: int) -> tuple[list[str], dict[str, str]]:
    ids = [emu.add_run(status="STARTED", age_s=7200).id for _ in range(runs)]
    args: list[str] = []
    env = dict(ENV)
    if ending in ("deadline", "signal"):
        emu.config.stall = {"delete": 30.0}
        args = ["--deadline", "0.5s"] if ending == "deadline" else []
    elif ending == "budget":
        emu.config.fail_503_ratio = 1.0
        args = ["--retry-budget", "10"]
    elif ending == "bad_secret":
        env["ZUORA_CLIENT_SECRET"] = "not-the-secret"
    elif ending == "forbidden":
        emu.config.forbid_cancel = True
    elif ending == "refusals":
        emu.config.cancel_script = {i: ["refuse"] for i in ids}
    elif ending == "unusable_listing":
        emu.config.list_fault = "html"
    return args, env


def _signal_on_first_delete(emu: Emulator) -> threading.Thread:
    def send() -> None:
        end = time.monotonic() + 20
        while not emu.deletes_received() and time.monotonic() < end:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)  # the DELETE stalls 30 s: the job is running

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _each_ending(test: Any) -> Any:
    """Every ending at least once, whatever Hypothesis draws besides."""
    for ending in sorted(ENDINGS):
        test = example(ending=ending, runs=5, concurrency=1, output="json")(test)
    return test


@settings(max_examples=examples(3, 150), deadline=None, suppress_health_check=SLOW)
@given(ending=st.sampled_from(sorted(ENDINGS)), runs=st.integers(5, 8),
       concurrency=st.integers(1, 4), output=st.sampled_from(["text", "json"]))
@_each_ending
def test_each_ending_exits_with_its_documented_code(emu_thread, cli, monkeypatch, ending, runs,
                                                    concurrency, output):
    monkeypatch.setattr("worker.control.GRACE_SECONDS", 0.2)
    emu = emu_thread(runs=0)
    args, env = _stage_ending(emu, ending, runs)
    sender = _signal_on_first_delete(emu) if ending == "signal" else None
    patch = mock.patch.object(cancel_module, "_settle_answer", side_effect=RuntimeError("bug")) \
        if ending == "internal" else mock.MagicMock()
    with patch:
        res = cli(emu, "run", "--older-than", "1h", "--rate", "1000", "--concurrency",
                  str(concurrency), "--output", output, *args, env=env)
    if sender is not None:
        sender.join(5)
    assert res.code == ENDINGS[ending], (ending, res.stderr[-2000:])
    if res.report is not None:
        assert res.report["exit_code"] == res.code


# ---------------------------------------------------------------- 4. a stop is bounded

@dataclass(frozen=True)
class Stall:
    kind: str  # what hangs: token, list, delete, or the follow-up get of a refusal
    deadline: float
    grace: float


async def _stop_scenario(stall: Stall, runs: int) -> float:
    emu = Emulator(EmulatorConfig(runs=0, stall={stall.kind: 30.0}))
    await emu.start()
    try:
        ids = [emu.add_run(status="STARTED", age_s=7200).id for _ in range(runs)]
        if stall.kind == "get":
            emu.config.cancel_script = {i: ["refuse"] for i in ids}
        built = _settings(["run", "--base-url", emu.base_url, "--older-than", "1h",
                           "--rate", "1000", "--attempt-timeout", "60s"])
        loop = asyncio.get_running_loop()
        started = loop.time()
        control = JobControl(stall.deadline, grace_s=stall.grace)
        result = await run_job(built, JobDeps(control=control))
        took = loop.time() - started
        assert result.error is None, result.error
        assert result.stop_reason == "deadline reached"
        result.settle_unattempted()
        assert all(r.outcome is not None for r in result.records.values() if r.selected)
        if stall.kind == "get":  # a definitive refusal stays one when its GET is cut short
            assert {str(r.outcome) for r in result.records.values() if r.selected} \
                <= {"failed", "not_attempted"}
        return took
    finally:
        await emu.stop()


@settings(max_examples=examples(6, 120), deadline=None, suppress_health_check=SLOW)
@given(stall=st.builds(Stall, kind=st.sampled_from(["token", "list", "delete", "get"]),
                       deadline=st.floats(0.2, 0.6), grace=st.floats(0.05, 0.4)),
       runs=st.integers(1, 6))
def test_a_stalled_call_never_keeps_the_job_past_deadline_and_grace(stall, runs):
    took = asyncio.run(_stop_scenario(stall, runs))
    assert took <= stall.deadline + stall.grace + 1.5, (stall, took)  # 1.5 s: a busy machine


def test_the_oracles_know_every_step_and_ending():
    """The suites above cover every scripted step and every ending the CLI maps."""
    from worker.emulator.config import CANCEL_STEPS

    assert set(STEPS_FIRST) == set(CANCEL_STEPS)
    assert set(ENDINGS.values()) == {0, 1, 3, 5, 6}
    assert Counter(ENDINGS.values())[5] == 3  # deadline, signal, budget
