"""Benchmark: zuora-reaper against the emulator on loopback, beside two naive baselines.

Prints its figures; it is not a test. Every client runs in its own process so its CPU time and
peak RSS come from ``os.wait4``; the emulator also runs in a process of its own (one fresh
emulator per scenario, so quota windows and runs start clean).

    .venv/bin/python bench/bench.py                 # the full run (~2-3 minutes)
    .venv/bin/python bench/bench.py --sizes 1000    # a quick one

See bench/README.md for the figures and what each one means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STUCK = ("STARTED", "QUERYDATA", "PROCESSINGDATA")
PAGE_SIZE = 100
# The emulator and the measured client each get a core of their own (when there are two), so
# neither's CPU time includes waiting on the other: steadier figures on a shared 2-vCPU VM.
EMULATOR_CPU, CLIENT_CPU = 0, 1


def pin(cpu: int) -> Any:
    """A preexec_fn that pins the child to ``cpu``, or None on a single-core machine."""
    if len(os.sched_getaffinity(0)) < 2:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


# ---------------------------------------------------------------- emulator process


def serve(args: argparse.Namespace) -> None:
    """Child process: serve one emulator until SIGTERM, then write its statistics as JSON."""
    from worker.emulator import Emulator, EmulatorConfig

    config = EmulatorConfig(
        runs=args.runs, seed=1, in_progress_share=1.0, rate=args.rate,
        rate_window=args.rate_window, concurrency=args.concurrency,
        concurrency_retry_after=args.concurrency_retry_after, latency_ms=args.latency_ms,
        page_cap=250,
    )

    async def main() -> None:
        emu = Emulator(config)
        url = await emu.start()
        print(url, flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        Path(args.stats).write_text(json.dumps(emulator_stats(emu)))  # noqa: ASYNC240 - at exit
        await emu.stop()

    asyncio.run(main())


def emulator_stats(emu: Any) -> dict[str, Any]:
    records = emu.records
    api = [r for r in records if r.kind in ("list", "get", "delete")]
    deletes = [r for r in records if r.kind == "delete"]
    lists = [r for r in records if r.kind == "list"]
    return {
        "api_requests": len(api),
        "deletes": len(deletes),
        "lists": len(lists),
        "tokens": sum(1 for r in records if r.kind == "token"),
        "rate_429": emu.limited_count("rate"),
        "concurrency_429": emu.limited_count("concurrency"),
        "other_errors": sum(1 for r in api if r.status >= 400 and r.limited is None),
        "cancelled": len(emu.cancelled_ids()),
        "max_in_flight": emu.max_in_flight,
        "api_times": sorted(r.t for r in api if r.limited is None),
    }


@contextlib.contextmanager
def emulator(runs: int, cfg: BenchConfig, tmp: Path) -> Iterator[tuple[str, Path]]:
    stats = tmp / f"emu-{time.monotonic_ns()}.json"
    cmd = [sys.executable, __file__, "_serve", "--runs", str(runs), "--rate", str(cfg.rate),
           "--rate-window", str(cfg.rate_window), "--concurrency", str(cfg.concurrency),
           "--concurrency-retry-after", str(cfg.concurrency_retry_after),
           "--latency-ms", str(cfg.latency_ms), "--stats", str(stats)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=pin(EMULATOR_CPU))
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        yield url, stats
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


# ---------------------------------------------------------------- naive baselines


def naive(args: argparse.Namespace) -> None:
    """Child process: list every stuck run, then DELETE them naively; print a JSON summary."""
    result = asyncio.run(_naive(args.base_url, args.mode, args.time_cap, args.rate,
                                args.concurrency))
    print(json.dumps(result))


async def _bare(ids: list[str], delete: Any, rate: float, concurrency: int) -> None:
    """The bare aiohttp loop: DELETEs at ``rate`` with at most ``concurrency`` in flight, and
    nothing else (no retries worth the name, no logs, no report): the floor of CPU per request
    for any client of this API on aiohttp."""
    gate = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    start, tasks = loop.time(), []

    async def one(run_id: str) -> None:
        try:
            await delete(run_id)
        finally:
            gate.release()

    for k, run_id in enumerate(ids):
        await asyncio.sleep(max(0.0, start + k / rate - loop.time()))
        await gate.acquire()
        tasks.append(asyncio.ensure_future(one(run_id)))
    await asyncio.gather(*tasks)


async def _naive(base_url: str, mode: str, time_cap: float, rate: float,
                 concurrency: int) -> dict[str, Any]:
    import aiohttp

    from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    async with aiohttp.ClientSession() as session:  # aiohttp defaults: 100 connections
        form = {"client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET,
                "grant_type": "client_credentials"}
        async with session.post(f"{base_url}/oauth/token", data=form) as resp:
            token = (await resp.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        root = f"{base_url}/reporting/api/rest/v1"
        ids = await _naive_list(session, root, headers)
        done: dict[str, int] = {}
        start = time.monotonic()

        async def delete(run_id: str) -> None:
            for attempt in range(6):  # plain retries: fixed exponential backoff, headers ignored
                async with session.delete(f"{root}/reportruns/{run_id}", headers=headers) as r:
                    await r.read()
                    if r.status not in (429, 500, 502, 503, 504):
                        done[run_id] = r.status
                        return
                await asyncio.sleep(0.1 * 2**attempt)
            done[run_id] = 429

        if mode == "bare":
            await _bare(ids, delete, rate, concurrency)
        elif mode == "seq":
            for run_id in ids:
                if time.monotonic() - start > time_cap:
                    break
                await delete(run_id)
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(time_cap):
                    await asyncio.gather(*(delete(i) for i in ids))
        elapsed = time.monotonic() - start
    ok = sum(1 for s in done.values() if s < 300)
    return {"listed": len(ids), "finished": len(done), "cancelled": ok,
            "cancel_seconds": elapsed}


async def _naive_list(session: Any, root: str, headers: dict[str, str]) -> list[str]:
    from worker.listing import list_body

    ids: list[str] = []
    page = 1
    while True:
        body = list_body(page, PAGE_SIZE)
        params = [("status", s) for s in STUCK]
        async with session.post(f"{root}/reportruns", params=params, json=body,
                                headers=headers) as r:
            data = await r.json()
        if r.status == 429:
            await asyncio.sleep(1)
            continue
        items = data["response"]["content"]
        if not items:
            return ids
        ids += [item["id"] for item in items]
        page += 1


# ---------------------------------------------------------------- measuring one client


@dataclass
class Measure:
    label: str
    n: int
    wall_s: float
    cpu_s: float
    maxrss_mb: float
    emu: dict[str, Any] = field(default_factory=dict)
    job_s: float | None = None
    cancelled: int = 0
    exit_code: int = 0
    note: str = ""


def run_child(cmd: list[str], env: dict[str, str] | None = None,
              stdout: Any = subprocess.DEVNULL) -> tuple[float, float, float, int]:
    """Run ``cmd``; return (wall s, CPU s, peak RSS MB, exit code) of that child alone."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=subprocess.DEVNULL, cwd=ROOT,
                            preexec_fn=pin(CLIENT_CPU))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode


def reaper_env() -> dict[str, str]:
    from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    env = {k: v for k, v in os.environ.items() if not k.startswith("ZUORA")}
    env.update(ZUORA_CLIENT_ID=DEMO_CLIENT_ID, ZUORA_CLIENT_SECRET=DEMO_CLIENT_SECRET)
    return env


def run_reaper(label: str, n: int, cfg: BenchConfig, tmp: Path, flags: list[str],
               command: str = "run") -> Measure:
    report = tmp / f"report-{time.monotonic_ns()}.json"
    with emulator(n, cfg, tmp) as (url, stats):
        cmd = [sys.executable, "-m", "worker", command, "--base-url", url,
               "--allow-young", "--older-than", "0s", "--max-cancel", str(n),
               "--report-file", str(report),
               "--lock-file", str(tmp / "reaper.lock"), "--page-size", str(PAGE_SIZE),
               "--log-level", "info", *flags]
        wall, cpu, rss, code = run_child(cmd, reaper_env())
    doc = json.loads(report.read_text())
    started = datetime.fromisoformat(doc["started_at"])
    finished = datetime.fromisoformat(doc["finished_at"])
    m = Measure(label, n, wall, cpu, rss, json.loads(stats.read_text()),
                job_s=(finished - started).total_seconds(), exit_code=code)
    m.cancelled = m.emu["cancelled"]
    return m


def run_naive(label: str, mode: str, n: int, cfg: BenchConfig, tmp: Path) -> Measure:
    with emulator(n, cfg, tmp) as (url, stats):
        out = tmp / f"naive-{time.monotonic_ns()}.json"
        with out.open("w") as fh:
            wall, cpu, rss, code = run_child(
                [sys.executable, __file__, "_naive", "--base-url", url, "--mode", mode,
                 "--time-cap", str(cfg.naive_cap_s if mode != "bare" else 3600),
                 "--rate", f"{cfg.rate:g}", "--concurrency", str(cfg.concurrency)],
                stdout=fh)
    summary = json.loads(out.read_text())
    m = Measure(label, n, wall, cpu, rss, json.loads(stats.read_text()),
                job_s=summary["cancel_seconds"], exit_code=code)
    m.cancelled = m.emu["cancelled"]
    if summary["finished"] < summary["listed"]:
        m.note = f"capped at {cfg.naive_cap_s:g}s: {summary['finished']}/{n} runs tried"
    return m


# ---------------------------------------------------------------- figures


@dataclass(frozen=True)
class BenchConfig:
    rate: float
    rate_window: float
    concurrency: int
    latency_ms: float
    concurrency_retry_after: float
    naive_cap_s: float


def physical_limit(n: int, cfg: BenchConfig) -> float:
    """max(N/R, N*L/C) + listing time (one page latency per page, listed serially)."""
    pages = -(-n // PAGE_SIZE) + 1  # the last, empty page ends the listing
    latency = cfg.latency_ms / 1000
    return max(n / cfg.rate, n * latency / cfg.concurrency) + pages * latency


def max_rate_window(times: list[float], width: float) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] < t - width:
            start += 1
        best = max(best, end - start + 1)
    return best


def describe(m: Measure, cfg: BenchConfig) -> dict[str, str]:
    phys = physical_limit(m.n, cfg)
    api = max(1, m.emu["api_requests"])
    limited = m.emu["rate_429"] + m.emu["concurrency_429"]
    job = m.job_s if m.job_s is not None else m.wall_s
    row = {
        "client": m.label,
        "N": str(m.n),
        "cancelled": f"{m.cancelled}",
        "job s": f"{job:.2f}",
        "process s": f"{m.wall_s:.2f}",
        "phys s": f"{phys:.2f}",
        "job/phys": f"{job / phys:.3f}" if m.cancelled == m.n else "-",
        "proc/phys": f"{m.wall_s / phys:.3f}" if m.cancelled == m.n else "-",
        "429 rate": str(m.emu["rate_429"]),
        "429 conc": str(m.emu["concurrency_429"]),
        "429 share": f"{100 * limited / api:.2f}%",
        "max in flight": str(m.emu["max_in_flight"]),
        "peak 1s": str(max_rate_window(m.emu["api_times"], 1.0)),
        "CPU s": f"{m.cpu_s:.2f}",
        "CPU/cancel": f"{1e6 * m.cpu_s / max(1, m.cancelled):.0f}us",
        "CPU/request": f"{1e6 * m.cpu_s / api:.0f}us",
        "RSS MB": f"{m.maxrss_mb:.0f}",
        "exit": str(m.exit_code),
    }
    if m.note:
        row["client"] += f" ({m.note})"
    return row


def print_table(rows: list[dict[str, str]]) -> None:
    if not rows:
        return
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in cols))
    sys.stdout.flush()


ZUORA_MAX_RATE = 833.0  # requests/s: Zuora's highest published quota (50,000 a minute)


def startup_cost(imports: str = "worker.cli, worker.job") -> tuple[float, float]:
    """CPU seconds and RSS of importing ``imports`` and exiting: the fixed cost per process
    (the median of three)."""
    runs = sorted(run_child([sys.executable, "-c", f"import {imports}"])[1:3] for _ in range(3))
    return runs[1]


def cpu_lines(m: Measure, startup_cpu: float) -> str:
    """CPU per request net of start-up, and what that is as a share of one core at Zuora's
    highest quota."""
    requests = max(1, m.emu["api_requests"])
    net = max(0.0, m.cpu_s - startup_cpu) / requests
    return (f"  {m.label}: {1e6 * net:.0f}us CPU per request net of start-up "
            f"({1e6 * max(0.0, m.cpu_s - startup_cpu) / max(1, m.cancelled):.0f}us per "
            f"cancel) = {100 * net * ZUORA_MAX_RATE:.0f}% of one core at "
            f"{ZUORA_MAX_RATE:g} req/s")


def compile_bytecode() -> None:
    """Compile worker/ as ``pip install`` does for a wheel: where PYTHONDONTWRITEBYTECODE is
    set (as on this machine), every client process would otherwise compile every module from
    source, which is start-up cost no installed deployment pays."""
    import compileall

    compileall.compile_dir(ROOT / "worker", quiet=1)


def bench(args: argparse.Namespace) -> None:
    cfg = BenchConfig(args.rate, args.rate_window, args.concurrency, args.latency_ms,
                      args.concurrency_retry_after, args.naive_cap)
    told = ["--rate", f"{cfg.rate:g}", "--quota-share", "1.0",
            "--concurrency", str(cfg.concurrency)]
    learn = ["--rate", f"{cfg.rate * 10:g}", "--quota-share", "1.0",
             "--concurrency", str(cfg.concurrency)]
    print(f"emulator: quota R={cfg.rate:g}/s in {cfg.rate_window:g}s windows, concurrency cap "
          f"C={cfg.concurrency}, latency L={cfg.latency_ms:g} ms; page size {PAGE_SIZE}")
    print(f"reaper told : {' '.join(told)}")
    print(f"reaper learn: {' '.join(learn)}")
    compile_bytecode()
    start_cpu, start_rss = startup_cost()
    bare_cpu, _ = startup_cost("aiohttp, worker.emulator, worker.listing")
    print(f"python + worker import alone: {start_cpu:.2f} CPU s, {start_rss:.0f} MB RSS; "
          f"the bare loop's imports: {bare_cpu:.2f} CPU s")
    rows: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for n in args.sizes:
            ms = [run_reaper("reaper (told R)", n, cfg, tmp, told),
                  run_reaper("reaper (learns R)", n, cfg, tmp, learn),
                  run_naive("bare aiohttp loop (R, C)", "bare", n, cfg, tmp)]
            if not args.skip_naive:
                ms += [run_naive("naive sequential", "seq", n, cfg, tmp),
                       run_naive("naive gather", "gather", n, cfg, tmp)]
            rows += [describe(m, cfg) for m in ms]
            print()
            print_table(rows[-len(ms):])
            for m in ms[:3]:
                print(cpu_lines(m, bare_cpu if m.label.startswith("bare") else start_cpu))
        if args.rss_runs:
            flags = ["--rate", "10000", "--concurrency", str(cfg.concurrency)]
            m = run_reaper("reaper plan", args.rss_runs, cfg, tmp, flags, command="plan")
            print()
            print(f"peak RSS, plan mode, {args.rss_runs} runs listed and selected "
                  f"(would_cancel): {m.maxrss_mb:.0f} MB (start-up alone {start_rss:.0f} MB); "
                  f"job {m.job_s:.2f}s, CPU {m.cpu_s:.2f}s, exit {m.exit_code}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd")
    s = sub.add_parser("_serve")
    s.add_argument("--runs", type=int, required=True)
    s.add_argument("--rate", type=float)
    s.add_argument("--rate-window", type=float)
    s.add_argument("--concurrency", type=int)
    s.add_argument("--concurrency-retry-after", type=float)
    s.add_argument("--latency-ms", type=float)
    s.add_argument("--stats", required=True)
    nv = sub.add_parser("_naive")
    nv.add_argument("--base-url", required=True)
    nv.add_argument("--mode", choices=("seq", "gather", "bare"), required=True)
    nv.add_argument("--time-cap", type=float, required=True)
    nv.add_argument("--rate", type=float, default=500.0)
    nv.add_argument("--concurrency", type=int, default=40)
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                   default=[1000, 10000])
    p.add_argument("--rate", type=float, default=500.0, help="emulator quota R, requests/s")
    p.add_argument("--rate-window", type=float, default=10.0, help="emulator quota window, s")
    p.add_argument("--concurrency", type=int, default=40, help="emulator concurrency cap C")
    p.add_argument("--latency-ms", type=float, default=50.0, help="emulator latency L")
    p.add_argument("--concurrency-retry-after", type=float, default=120.0)
    p.add_argument("--naive-cap", type=float, default=20.0,
                   help="seconds each naive baseline may spend cancelling")
    p.add_argument("--rss-runs", type=int, default=50_000)
    p.add_argument("--skip-naive", action="store_true")
    args = p.parse_args(argv)
    if args.cmd == "_serve":
        serve(args)
    elif args.cmd == "_naive":
        naive(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
