"""``zuora-reaper demo``: plan and run against the embedded emulator, then print what happened.

Everything stays on loopback: the emulator is served in-process on a free port with the demo
credentials, seeded with a reproducible population, a rate quota, a concurrency cap, a little
latency and a few recoverable 503s, so pacing and retries show in the numbers. The job runs
exactly as ``zuora-reaper plan`` / ``run`` would (``worker.job.run_job`` over real HTTP);
``os.environ`` is neither read for settings nor changed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from worker.config import Settings, load_settings
from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, EmulatorConfig
from worker.emulator.runs import USERS
from worker.errors import ConfigError, Interrupted, Kind
from worker.job import run_job
from worker.logs import configure_logging
from worker.models import JobResult, Outcome
from worker.report import counts, verdict

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


def demo_settings(command: str, base_url: str) -> Settings:
    """The settings ``zuora-reaper COMMAND --base-url URL <DEMO_FLAGS>`` would build."""
    return load_settings(command, {**DEMO_FLAGS, "target.base_url": base_url}, DEMO_ENV, None)


async def run_demo(runs: int, seed: int) -> DemoRun:
    """Serve the emulator, run plan then run against it, and check the emulator's records."""
    config = emulator_config(runs, seed)
    emu = Emulator(config)
    await emu.start()
    try:
        demo = DemoRun(emu.base_url, config)
        for command in ("plan", "run"):
            demo.phases.append(await _phase(emu, command))
        plan, run = demo.phases
        cancelled = {k for k, r in run.result.records.items() if r.outcome is Outcome.CANCELLED}
        demo.checks = [
            ("plan sent no DELETE", plan.emulator_deletes == 0),
            ("the emulator cancelled exactly the runs reported cancelled",
             emu.cancelled_ids() == cancelled),
            ("no excluded or too-young run was cancelled",
             all(_protected_ok(emu, rid) for rid in emu.cancelled_ids())),
        ]
        return demo
    finally:
        await emu.stop()


def _protected_ok(emu: Emulator, run_id: str) -> bool:
    run = emu.runs[run_id]
    return run.created_by != BOT_USER and emu.config.clock() - run.started_on >= 2 * 3600


async def _phase(emu: Emulator, command: str) -> Phase:
    settings = demo_settings(command, emu.base_url)
    seen, deletes = len(emu.records), len(emu.deletes())
    start = time.perf_counter()
    result = await run_job(settings)
    seconds = time.perf_counter() - start
    result.settle_unattempted()
    kind, reason = verdict(result)
    return Phase(command, result, seconds, kind, reason,
                 len(emu.records) - seen, len(emu.deletes()) - deletes)


# ---------------------------------------------------------------- output


def phase_rows(phase: Phase, codes: ExitCodes) -> dict[str, str]:
    """The table column of one phase: counts per outcome, time, requests, 429s, retries."""
    c = counts(phase.result)
    k = phase.result.counters
    rows: dict[str, object] = {"listed": c["listed"], "selected": c["selected"]}
    rows.update({o.value: c[o.value] for o in Outcome})
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
    }


def main(argv: Sequence[str], codes: ExitCodes) -> Kind:
    """Entry point of ``zuora-reaper demo``: OK when the run succeeded and every check held.
    ``codes`` is the CLI's map from kinds to exit codes, which the demo's table shows."""
    args = build_parser().parse_args(list(argv))
    if not 1 <= args.runs <= 100_000:
        raise ConfigError("--runs", "must be within 1 to 100000")
    configure_logging("console", "warning")
    try:
        demo = asyncio.run(run_demo(args.runs, args.seed))
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
