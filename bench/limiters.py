"""Benchmark: does pacing converge behind limiters we did not write? (issue 13)

One row per limiter model, each told the right rate and told 5x too much: the job's own time
over the limiter's own limit, the share of requests refused, and the rate achieved. Every model
is configured by the emulator's own command-line flags (``zuora-reaper emulator --limiter ...``,
parsed by its parser) and served in a process of its own, fresh for each run, which writes what
it received when it stops; the nginx rows put real nginx ``limit_req`` in front of an
unlimited emulator (skipped, and said so, when nginx is not installed:
``apt-get install -y nginx``). Prints its figures; it is not a test.

    python bench/limiters.py                      # the full table, about 7 minutes
    python bench/limiters.py --runs 300 --only bucket,window-1s   # a quick look, ~1 minute
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from local import job_seconds  # noqa: E402 - tests/support/local.py
from nginx import NGINX, limit_req  # noqa: E402 - tests/support/nginx.py: real nginx, staged

from worker.ratelimit import TENANTS  # noqa: E402


@dataclass(frozen=True)
class Model:
    key: str
    label: str
    emulator: tuple[str, ...]  # emulator flags; "{R}" is replaced by the limit's rate
    told: tuple[str, ...] = ("right", "5x")
    bound: str = "rate"  # "rate": limit = requests / R; "concurrency": requests * L / C;
    # "plan": requests / the pace the tenant's windows allow (quota_share x (q - 1) / 60 s)
    nginx: bool = False
    placeholder: bool = False
    tenant: str | None = None  # a Zuora tenant type's windows (emulator --tenant)


MODELS = (
    Model("window-1s", "fixed window 1 s, RateLimit headers + Retry-After",
          ("--rate", "{R}", "--rate-window", "1")),
    Model("window-10s", "fixed window 10 s, RateLimit headers + Retry-After",
          ("--rate", "{R}", "--rate-window", "10")),
    Model("window-60s", "fixed window 60 s, RateLimit headers + Retry-After",
          ("--rate", "{R}", "--rate-window", "60")),
    Model("window-1s-retry-after", "fixed window 1 s, Retry-After only",
          ("--rate", "{R}", "--rate-window", "1", "--no-rate-headers")),
    Model("window-1s-bare", "fixed window 1 s, bare 429",
          ("--rate", "{R}", "--rate-window", "1", "--no-rate-headers", "--no-retry-after")),
    Model("window-10s-bare", "fixed window 10 s, bare 429",
          ("--rate", "{R}", "--rate-window", "10", "--no-rate-headers", "--no-retry-after")),
    Model("bucket", "leaky bucket burst 5, bare 429 (emulated limit_req)",
          ("--rate", "{R}", "--limiter", "bucket", "--burst", "5")),
    Model("nginx", "nginx limit_req burst=5 nodelay (real nginx)", (), nginx=True),
    Model("placeholder", "placeholder headers, no real limit", ("--placeholder-headers",),
          told=("right",), placeholder=True),
    Model("concurrency", "concurrency cap 8, latency 200 ms", (
        "--concurrency", "8", "--latency-ms", "200"), told=("right",), bound="concurrency"),
    # Zuora's tenant types: every window counted at once, announced in its multi-window headers;
    # the job at its default --quota-share 0.5, told its default --rate 10 or more than any
    # tenant allows (1000/s), so that the windows set the pace.
    Model("api-sandbox", "Zuora API Sandbox (2.5k/min, 5k/h, 10k/day)",
          ("--tenant", "api-sandbox"), told=("default", "1000"), bound="plan",
          tenant="api-sandbox"),
    Model("developer-sandbox", "Zuora Developer Sandbox (12.5k/min, 25k/h, 50k/day)",
          ("--tenant", "developer-sandbox"), told=("1000",), bound="plan",
          tenant="developer-sandbox"),
    Model("production", "Zuora Production (50k/min, 2.25M/h, 27M/day)",
          ("--tenant", "production"), told=("1000",), bound="plan", tenant="production"),
    Model("api-sandbox-hour-spent", "Zuora API Sandbox, 4,900 of its hour used by others",
          ("--tenant", "api-sandbox", "--window-used", "3600=4900"), told=("1000",),
          bound="plan", tenant="api-sandbox"),
)
DEFAULT_RATE, DEFAULT_SHARE = 10.0, 0.5  # the job's defaults (worker/keys.py)
LATENCY_S, CAP = 0.2, 8
LOOKAHEAD = 4  # listing pages the job requests ahead (worker/listing.py)


def main() -> None:
    if sys.argv[1:2] == ["_serve"]:
        serve_child(sys.argv[2], sys.argv[3:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=50.0, help="the limiters' rate, requests/s")
    p.add_argument("--runs", type=int, default=1500, help="runs seeded per scenario")
    p.add_argument("--only", default="", help="comma-separated model keys")
    p.add_argument("--client-root", type=Path, default=ROOT,
                   help="run the job from this checkout (e.g. a worktree of an older commit), "
                        "against the same limiters, to compare")
    args = p.parse_args()
    keys = [k for k in args.only.split(",") if k]
    models = [m for m in MODELS if not keys or m.key in keys]
    print(f"limit R = {args.rate:g} requests/s; {args.runs} runs seeded (seed 5); "
          f"client --concurrency {CAP} --quota-share 1.0 (Zuora rows: its default 0.5) "
          "--page-size 100; "
          f"wall = the job's own time (report started_at..finished_at)\n")
    print(f"{'limiter':55} {'told':7} {'wall s':>7} {'limit s':>7} {'wall/limit':>10} "
          f"{'requests':>8} {'refused':>7} {'refused %':>9} {'achieved/s':>10} {'events':>6} "
          f"{'exit':>4}")
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            if model.nginx and NGINX is None:
                print(f"{model.label:55} skipped: nginx is not installed "
                      "(apt-get install -y nginx)")
                continue
            for told in model.told:
                row = measure(model, told, args, Path(tmp))
                print(row, flush=True)


def measure(model: Model, told: str, args: argparse.Namespace, tmp: Path) -> str:
    rate = args.rate
    flags = [f.replace("{R}", f"{rate:g}") for f in model.emulator]
    stats = tmp / f"emu-{time.monotonic_ns()}.json"
    with serve(flags, args.runs, stats, tmp, nginx_rate=rate if model.nginx else None) as url:
        told_rate, share = _told(model, told, rate)
        doc, code = run_job(url, told_rate, share, tmp, args.client_root)
    received = json.loads(stats.read_text())
    req = doc["requests"]
    refused = req["rate_limited"].get("rate", 0) + req["rate_limited"].get("concurrency", 0)
    accepted = req["total"] - refused
    wall = job_seconds(doc)
    if model.bound == "concurrency":  # listing LOOKAHEAD pages at a time, then the rest at C
        lists = received["list"]
        limit = (accepted - lists) * LATENCY_S / CAP + lists / LOOKAHEAD * LATENCY_S
    elif model.placeholder:
        limit = accepted / told_rate
    elif model.tenant is not None:
        minute = TENANTS[model.tenant][0]
        limit = accepted / min(told_rate, share * (minute.quota - 1) / minute.seconds)
    else:
        limit = accepted / rate
    share = refused / req["total"] if req["total"] else 0.0
    return (f"{model.label:55} {told:7} {wall:7.2f} {limit:7.2f} {wall / limit:10.3f} "
            f"{req['total']:8d} {refused:7d} {share:9.2%} {accepted / wall:10.1f} "
            f"{doc['pacing'].get('throttle_events', 0):6d} {code:4d}")


def _told(model: Model, told: str, rate: float) -> tuple[float, float]:
    """The job's --rate and --quota-share for this row."""
    if model.tenant is not None:
        return (DEFAULT_RATE if told == "default" else float(told)), DEFAULT_SHARE
    return rate * (5 if told == "5x" else 1), 1.0


def run_job(url: str, rate: float, share: float, tmp: Path,
            client_root: Path) -> tuple[dict, int]:
    from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    report = tmp / f"report-{time.monotonic_ns()}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZUORA")}
    env.update(ZUORA_CLIENT_ID=DEMO_CLIENT_ID, ZUORA_CLIENT_SECRET=DEMO_CLIENT_SECRET,
               PYTHONPATH=str(client_root))
    cmd = [sys.executable, "-m", "worker", "run", "--base-url", url, "--older-than", "0s",
           "--max-cancel", "100000", "--report-file", str(report),
           "--lock-file", str(tmp / "reaper.lock"), "--page-size", "100",
           "--rate", f"{rate:g}", "--quota-share", f"{share:g}", "--concurrency", str(CAP),
           "--log-level", "warning"]
    code = subprocess.run(cmd, env=env, cwd=client_root, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False).returncode
    return json.loads(report.read_text()), code


def serve_child(stats: str, flags: list[str]) -> None:
    """Child process: the emulator configured by its own flags, until SIGTERM; then the count
    of API requests it received, by kind, into ``stats``."""
    import asyncio

    from worker.emulator import Emulator
    from worker.emulator.cli import build_parser, config_from_args

    args = build_parser().parse_args(flags)

    async def run() -> None:
        emu = Emulator(config_from_args(args))
        print(f"listening on {await emu.start(args.host, args.port)}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        kinds = {k: emu.count(k) for k in ("list", "get", "delete", "token")}
        Path(stats).write_text(json.dumps(kinds))  # noqa: ASYNC240 - once, at exit
        await emu.stop()

    asyncio.run(run())


@contextmanager
def serve(flags: list[str], runs: int, stats: Path, tmp: Path,
          nginx_rate: float | None) -> Iterator[str]:
    """The emulator (behind nginx when ``nginx_rate``); yields the base URL the job uses."""
    cmd = [sys.executable, __file__, "_serve", str(stats), "--port", "0", "--runs", str(runs),
           "--seed", "5", *flags]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        if nginx_rate is None:
            yield url
        else:
            with limit_req(url, nginx_rate, burst=5) as front:
                yield front
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
