"""``zuora-reaper demo``: plan and run against the embedded emulator, then two passes with
memory across jobs a few seconds apart, then ``history``; and print what happened.

Everything stays on loopback: the emulator is served in-process on a free port with the demo
credentials, seeded with a reproducible population, a rate quota, a concurrency cap, a little
latency and a few recoverable 503s, so pacing and retries show in the numbers. The jobs run
exactly as ``zuora-reaper plan`` / ``run`` would (``worker.job.run_job`` over real HTTP), with a
state store in a temporary folder (never the user's). Between the passes some recent runs move
(their ``updatedOn`` changes): with ``--stalled-for`` they are not selected; the stalled ones
get a notice (``--notice``) on the first pass and are cancelled on the second.
``os.environ`` is neither read for settings nor changed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from worker.commands.history import render as render_history
from worker.config import Settings, load_settings
from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, EmulatorConfig
from worker.emulator.runs import USERS
from worker.errors import ConfigError, Interrupted, Kind
from worker.job import JobDeps, run_job
from worker.logs import configure_logging
from worker.memory import Memory, confirm_notices, record_job
from worker.models import JobResult, Outcome
from worker.report import counts, verdict
from worker.state.history import History, Scope, read_history
from worker.state.location import Location
from worker.state.store import Store, open_store

ExitCodes = Callable[[Kind], int]

BOT_USER = USERS[-1]  # "reporting-bot@example.com": its runs are scheduled, never cancelled
DEMO_ENV = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}
DEMO_FLAGS: dict[str, Any] = {
    "filters.older_than": "2h",
    "exclude.created_by": [BOT_USER],
    "safety.max_cancel": "1000",
    "pacing.rate": "200",
    "pacing.concurrency": "16",
    "pacing.deadline": "60s",
    "output.log_level": "warning",
}
MEMORY_FLAGS: dict[str, Any] = {**DEMO_FLAGS, "filters.older_than": "10m",
                                "filters.stalled_for": "1s", "safety.notice": "1s"}
RECENT = 12  # runs 20-100 minutes old: under --older-than 2h, left for the memory passes
MOVING = 4  # of them, the ones that move between passes
PAUSE_S = 1.3  # between passes: longer than --stalled-for and --notice
REAL_TENANT = f"""\
Point it at a real tenant (plan first: it never cancels anything):
  export ZUORA_CLIENT_ID=... ZUORA_CLIENT_SECRET=...   # an OAuth client of the API user
  zuora-reaper plan --environment us-sandbox --older-than 2h \\
      --exclude-created-by {BOT_USER} --report-file plan.json
  zuora-reaper run  --environment us-sandbox --older-than 2h \\
      --exclude-created-by {BOT_USER} --max-cancel 50 --report-file run.json
  (legacy zconnect hosts: --auth legacy with ZUORA_USERNAME / ZUORA_PASSWORD;
   every environment name: zuora-reaper plan --help)"""


@dataclass
class Phase:
    """One job of the demo and what the emulator saw while it ran."""

    name: str
    result: JobResult
    seconds: float
    kind: Kind
    reason: str | None
    emulator_requests: int
    emulator_deletes: int


@dataclass
class DemoRun:
    """The whole demo: the emulator's setup, both phases, and the end-of-demo checks."""

    base_url: str
    emulator: EmulatorConfig
    phases: list[Phase] = field(default_factory=list)
    checks: list[tuple[str, bool]] = field(default_factory=list)
    history: History | None = None

    @property
    def ok(self) -> bool:
        return all(ok for _, ok in self.checks) and all(p.kind is Kind.OK for p in self.phases)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zuora-reaper demo",
        description="Run 'plan' then 'run' against the embedded Zuora emulator (loopback "
                    "only, no credentials needed) and print what happened.")
    parser.add_argument("--runs", type=int, default=300, help="seeded population (default 300)")
    parser.add_argument("--seed", type=int, default=7, help="population seed (default 7)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def emulator_config(runs: int, seed: int) -> EmulatorConfig:
    """A tenant with limits and a few recoverable faults, so pacing and retries are visible."""
    return EmulatorConfig(
        runs=runs, seed=seed, rate=100.0, rate_window=1.0, concurrency=8,
        concurrency_retry_after=0.0, latency_ms=8.0, jitter_ms=4.0,
        fail_503_ratio=0.02, fault_retry_after=0.0, drift_complete=1)


def demo_settings(command: str, base_url: str, state: str = "none",
                  flags: dict[str, Any] | None = None) -> Settings:
    """The settings ``zuora-reaper COMMAND --base-url URL --state STATE <DEMO_FLAGS>`` would
    build."""
    given = {**(flags or DEMO_FLAGS), "target.base_url": base_url, "state.url": state}
    return load_settings(command, given, DEMO_ENV, None)


async def run_demo(runs: int, seed: int, codes: ExitCodes) -> DemoRun:
    """Serve the emulator; plan, run, and the two memory passes against it; check the
    emulator's records against what each job reported."""
    config = emulator_config(runs, seed)
    emu = Emulator(config)
    await emu.start()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="zuora-reaper-demo-") as folder:
        store = open_store(Location(f"sqlite:///{folder}/state.db", "sqlite", True,
                                    f"{folder}/state.db"))
        try:
            demo = DemoRun(emu.base_url, config)
            recent = [emu.add_run(age_s=(20 + 7 * i) * 60.0, created_by=USERS[i % 4]).id
                      for i in range(RECENT)]
            for command in ("plan", "run"):
                demo.phases.append(await _phase(emu, store, command, codes))
            await _memory_passes(demo, emu, store, recent, codes)
            demo.history = read_history(store, Scope(started - 60.0))
            demo.checks = _checks(demo, emu, recent)
            return demo
        finally:
            store.close()
            await emu.stop()


async def _memory_passes(demo: DemoRun, emu: Emulator, store: Store, recent: list[str],
                         codes: ExitCodes) -> None:
    """Two runs with --stalled-for and --notice, a pause apart; some recent runs move first."""
    for name in ("pass 1", "pass 2"):
        await asyncio.sleep(PAUSE_S)
        if name == "pass 1":
            for run_id in recent[:MOVING]:  # they made progress since the last job
                emu.runs[run_id].updated_on = emu.config.clock()
        demo.phases.append(await _phase(emu, store, "run", codes, name, MEMORY_FLAGS))


def _checks(demo: DemoRun, emu: Emulator, recent: list[str]) -> list[tuple[str, bool]]:
    plan, _run, first, second = demo.phases
    reported = {k for p in demo.phases for k, r in p.result.records.items()
                if r.outcome is Outcome.CANCELLED}
    listed = first.result.records  # the emulator completes a run per listing: some are gone
    moving = {k for k in recent[:MOVING] if k in listed}
    still = {k for k in recent[MOVING:] if k in listed}
    noticed = {k for k, r in first.result.records.items() if r.outcome is Outcome.NOTICED}
    assert demo.history is not None
    return [
        ("plan sent no DELETE", plan.emulator_deletes == 0),
        ("the emulator cancelled exactly the runs reported cancelled",
         emu.cancelled_ids() == reported),
        ("no excluded or too-young run was cancelled",
         all(_protected_ok(emu, rid, noticed) for rid in emu.cancelled_ids())),
        ("pass 1: moving runs were not stalled, the stalled ones got a notice and no DELETE",
         all(listed[k].reason == "not_stalled" for k in moving)
         and still <= noticed and not noticed & moving and first.emulator_deletes == 0),
        ("pass 2: the noticed runs were cancelled after the notice (those still running)",
         {k for k, r in second.result.records.items() if r.selected}
         == noticed & set(second.result.records) and not moving & emu.cancelled_ids()),
        ("history counts what the emulator cancelled", demo.history.cancelled
         == len(emu.cancelled_ids())),
    ]


def _protected_ok(emu: Emulator, run_id: str, noticed: set[str]) -> bool:
    run = emu.runs[run_id]
    old = emu.config.clock() - run.started_on >= 2 * 3600 or run_id in noticed
    return run.created_by != BOT_USER and old


async def _phase(emu: Emulator, store: Store, command: str, codes: ExitCodes,
                 name: str | None = None, flags: dict[str, Any] | None = None) -> Phase:
    settings = demo_settings(command, emu.base_url, flags=flags)
    seen, deletes = len(emu.records), len(emu.deletes())
    start = time.perf_counter()
    memory = Memory(store, settings, datetime.now(UTC))
    result = await run_job(settings, JobDeps(memory=memory))
    seconds = time.perf_counter() - start
    result.settle_unattempted()
    kind, reason = verdict(result)
    record_job(store, settings, result, codes(kind))
    confirm_notices(store, settings, result)  # no webhook here: the notices are the report's
    return Phase(name or command, result, seconds, kind, reason,
                 len(emu.records) - seen, len(emu.deletes()) - deletes)


# ---------------------------------------------------------------- output


def phase_rows(phase: Phase, codes: ExitCodes) -> dict[str, str]:
    """The table column of one phase: counts per outcome, time, requests, 429s, retries."""
    c = counts(phase.result)
    k = phase.result.counters
    rows: dict[str, object] = {"listed": c["listed"], "selected": c["selected"]}
    rows.update({o.value: c[o.value] for o in Outcome})
    reasons = Counter(r.reason for r in phase.result.records.values())
    rows.update({"  not stalled (moved)": reasons["not_stalled"],
                 "  notice pending": reasons["notice_pending"]})
    rows.update({
        "time taken": f"{phase.seconds:.2f}s",
        "requests sent": k.requests + k.network_errors,
        "  pace (req/s)": (f"{(k.requests + k.network_errors) / phase.seconds:.0f}"
                           if phase.seconds >= 0.2 else "-"),
        "  token requests": phase.result.token_requests,
        "  DELETEs (emulator)": phase.emulator_deletes,
        "429s seen (rate)": k.limited.get("rate", 0),
        "429s seen (concurrency)": k.limited.get("concurrency", 0),
        "5xx answers": k.by_class.get("5xx", 0),
        "retries": k.retries,
        "exit code": codes(phase.kind),
    })
    return {name: str(value) for name, value in rows.items()}


def render(demo: DemoRun, out: TextIO, codes: ExitCodes) -> None:
    """The readable summary: setup, the plan/run table, the checks, the real-tenant commands."""
    cfg = demo.emulator
    out.write(f"zuora-reaper demo: emulator on {demo.base_url} with {cfg.runs} runs "
              f"(seed {cfg.seed}); quota {cfg.rate:g} req/{cfg.rate_window:g}s, "
              f"{cfg.concurrency} in flight, {cfg.latency_ms:g}±{cfg.jitter_ms:g} ms latency, "
              f"{cfg.fail_503_ratio:.0%} 503s, {cfg.drift_complete} run completing per listing\n")
    out.write(f"filters: --older-than {DEMO_FLAGS['filters.older_than']} --exclude-created-by "
              f"{BOT_USER} --max-cancel {DEMO_FLAGS['safety.max_cancel']} --rate "
              f"{DEMO_FLAGS['pacing.rate']} --concurrency {DEMO_FLAGS['pacing.concurrency']}\n\n")
    columns = [phase_rows(p, codes) for p in demo.phases]
    names = list(columns[0])
    width = max(len(n) for n in names)
    cells = [max(len(p.name), *(len(col[n]) for n in names)) for p, col in
             zip(demo.phases, columns, strict=True)]
    out.write(" " * width + "".join(f"  {p.name:>{w}}" for p, w in
                                    zip(demo.phases, cells, strict=True)) + "\n")
    for name in names:
        out.write(f"{name:<{width}}" + "".join(f"  {col[name]:>{w}}" for col, w in
                                               zip(columns, cells, strict=True)) + "\n")
    out.write("\n")
    for label, ok in demo.checks:
        out.write(f"[{'ok' if ok else 'FAILED'}] {label}\n")
    for phase in demo.phases:
        if phase.reason:
            out.write(f"{phase.name}: exit {codes(phase.kind)}: {phase.reason}\n")
    if demo.history is not None:
        out.write(f"\nzuora-reaper history (memory across jobs; passes 1 and 2 ran with "
                  f"--older-than {MEMORY_FLAGS['filters.older_than']} --stalled-for "
                  f"{MEMORY_FLAGS['filters.stalled_for']} --notice "
                  f"{MEMORY_FLAGS['safety.notice']}, {PAUSE_S:g}s apart):\n")
        render_history(demo.history, out, chart=True)
    out.write("\n" + REAL_TENANT + "\n")


def as_json(demo: DemoRun, codes: ExitCodes) -> dict[str, Any]:
    return {
        "base_url": demo.base_url,
        "ok": demo.ok,
        "phases": {p.name: {**counts(p.result), "seconds": round(p.seconds, 3),
                            "requests": p.result.counters.requests,
                            "network_errors": p.result.counters.network_errors,
                            "token_requests": p.result.token_requests,
                            "emulator_requests": p.emulator_requests,
                            "emulator_deletes": p.emulator_deletes,
                            "rate_limited": dict(p.result.counters.limited),
                            "retries": p.result.counters.retries,
                            "exit_code": codes(p.kind), "exit_reason": p.reason}
                   for p in demo.phases},
        "checks": {label: ok for label, ok in demo.checks},
        "history": demo.history.as_dict() if demo.history is not None else None,
    }


def main(argv: Sequence[str], codes: ExitCodes) -> Kind:
    """Entry point of ``zuora-reaper demo``: OK when the run succeeded and every check held.
    ``codes`` is the CLI's map from kinds to exit codes, which the demo's table shows."""
    args = build_parser().parse_args(list(argv))
    if not 1 <= args.runs <= 100_000:
        raise ConfigError("--runs", "must be within 1 to 100000")
    configure_logging("console", "error")  # the table says it all (a notice without a
    # webhook, the demo's case, would warn on every pass)
    try:
        demo = asyncio.run(run_demo(args.runs, args.seed, codes))
    except KeyboardInterrupt:
        print("zuora-reaper demo: interrupted", file=sys.stderr)
        return Interrupted.kind
    if args.json:
        print(json.dumps(as_json(demo, codes), indent=2))
    else:
        render(demo, sys.stdout, codes)
    if not demo.ok:
        print("zuora-reaper demo: the demo did not go as expected (see above)", file=sys.stderr)
        return Kind.FAILED
    return Kind.OK
