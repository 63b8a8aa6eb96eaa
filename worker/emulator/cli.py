"""Command line: serve the emulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from worker.errors import ConfigError, Kind
from worker.ratelimit import TENANTS

from .config import (
    CANCEL_THEN,
    COLUMN_MODES,
    LIMITERS,
    LIST_SHAPES,
    TIME_FORMATS,
    USER_FIELDS,
    EmulatorConfig,
)
from .server import Emulator


def _add_limits(p: argparse.ArgumentParser) -> None:
    """The quota the emulator enforces and the headers it announces it with."""
    p.add_argument("--rate", type=float, default=None, help="requests/second quota")
    p.add_argument("--rate-window", type=float, default=60.0, help="quota window, seconds")
    p.add_argument("--limiter", choices=LIMITERS, default="window",
                   help="window: fixed windows of --rate-window (Zuora); bucket: a leaky "
                        "bucket with --burst refusing with a bare 429 (nginx limit_req)")
    p.add_argument("--burst", type=int, default=5, help="bucket: requests admitted over the rate")
    p.add_argument("--tenant", choices=tuple(TENANTS), default=None,
                   help="Zuora's quota windows of this tenant type, counted at once, with its "
                        "multi-window headers (the zuora limiter)")
    p.add_argument("--window-used", action="append", default=[], metavar="SECONDS=N",
                   help="zuora: N requests of another client already counted in that window, "
                        "e.g. 3600=4900 (repeatable)")
    p.add_argument("--no-rate-headers", dest="rate_headers", action="store_false",
                   help="window: send no RateLimit-* headers")
    p.add_argument("--no-retry-after", dest="rate_retry_after", action="store_false",
                   help="window: a refusal carries no Retry-After")
    p.add_argument("--placeholder-headers", action="store_true",
                   help="send RateLimit-Limit: unlimited, -Remaining: 0, -Reset: 0 (as mock "
                        "servers and some gateways do)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zuora-reaper emulator", description="Serve a Zuora Reporting API emulator."
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("--runs", type=int, default=200, help="size of the seeded population")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs-file", default=None, help="JSON list of runs replacing the seed")
    _add_limits(p)
    p.add_argument("--concurrency", type=int, default=None, help="max requests in flight")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--list-shape", choices=LIST_SHAPES, default="content")
    p.add_argument("--time-format", choices=TIME_FORMATS, default="epoch_ms")
    p.add_argument("--token-ttl", type=float, default=3600.0)
    p.add_argument("--fail-503-ratio", type=float, default=0.0)
    p.add_argument("--drop-ratio", type=float, default=0.0)
    p.add_argument("--cancel-then", choices=CANCEL_THEN, default=None,
                   help="apply every DELETE, then stall, drop or answer 504 (lost answers)")
    p.add_argument("--cancel-stall-s", type=float, default=30.0)
    p.add_argument("--no-get-envelope", dest="get_envelope", action="store_false",
                   help="GET answers the run object alone (Zuora's OpenAPI schema)")
    p.add_argument("--status-case", choices=("upper", "lower"), default="upper")
    p.add_argument("--report-id-field", choices=("reportId", "reportID"), default="reportId")
    p.add_argument("--user-field", choices=USER_FIELDS, default="nested",
                   help="how a listed run names its owner (none: it does not)")
    p.add_argument("--no-get-owner", dest="get_owner", action="store_false",
                   help="a GET answers without the owner, as Zuora documents it")
    p.add_argument("--columns", choices=COLUMN_MODES, default="any",
                   help="columns the docs do not show: answered, dropped, or refused (400)")
    p.add_argument("--page-size-fixed", type=int, default=None, metavar="N",
                   help="ignore pageSize: every listing page holds N runs")
    p.add_argument("--clamp-pages", action="store_true",
                   help="answer a page past the end with the last page again")
    p.add_argument("--no-list-totals", dest="list_totals", action="store_false",
                   help="no totalPages / totalElements in the listing")
    return p


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    return EmulatorConfig(
        runs=args.runs,
        seed=args.seed,
        runs_file=args.runs_file,
        rate=args.rate,
        rate_window=args.rate_window,
        limiter="zuora" if args.tenant else args.limiter,
        tenant=args.tenant or "api-sandbox",
        windows_used=dict(_used(item) for item in args.window_used),
        burst=args.burst,
        rate_headers=args.rate_headers,
        rate_retry_after=args.rate_retry_after,
        placeholder_headers=args.placeholder_headers,
        concurrency=args.concurrency,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        list_shape=args.list_shape,
        time_format=args.time_format,
        token_ttl=args.token_ttl,
        fail_503_ratio=args.fail_503_ratio,
        drop_ratio=args.drop_ratio,
        cancel_then=args.cancel_then,
        cancel_stall_s=args.cancel_stall_s,
        get_envelope=args.get_envelope,
        status_case=args.status_case,
        report_id_field=args.report_id_field,
        user_field=args.user_field,
        get_owner=args.get_owner,
        columns=args.columns,
        page_size_fixed=args.page_size_fixed,
        clamp_pages=args.clamp_pages,
        list_totals=args.list_totals,
    )


def _used(item: str) -> tuple[float, int]:
    seconds, sep, count = item.partition("=")
    if not sep:
        raise ValueError(f"--window-used {item!r} is not SECONDS=N, e.g. 3600=4900")
    return float(seconds), int(count)


def banner(base_url: str, config: EmulatorConfig) -> str:
    return "\n".join(
        [
            f"Zuora Reporting API emulator listening on {base_url}",
            f"export ZUORA_REAPER_BASE_URL={base_url}",
            f"export ZUORA_CLIENT_ID={config.client_id} ZUORA_CLIENT_SECRET={config.client_secret}",
            f"export ZUORA_USERNAME={config.username} ZUORA_PASSWORD={config.password}",
            f"rate limit: {describe_limit(config)}",
        ]
    )


def describe_limit(config: EmulatorConfig) -> str:
    """The rate limiter this emulator enforces, in a line (the last of the banner)."""
    placeholder = "; placeholder RateLimit headers" if config.placeholder_headers else ""
    if config.limiter == "zuora":
        windows = ", ".join(f"{w.quota:,} per {w.seconds:g}s" for w in TENANTS[config.tenant])
        return f"Zuora {config.tenant}: {windows}, multi-window ratelimit-* headers"
    if config.rate is None:
        return f"none{placeholder}"
    if config.limiter == "bucket":
        return (f"leaky bucket {config.rate:g}/s, burst {config.burst}, bare 429 "
                f"(nginx limit_req){placeholder}")
    told = [name for name, on in (("RateLimit headers", config.rate_headers),
                                  ("Retry-After", config.rate_retry_after)) if on]
    return (f"{config.rate * config.rate_window:g} per {config.rate_window:g}s fixed windows, "
            f"{' + '.join(told) or 'bare 429'}{placeholder}")


async def serve(emulator: Emulator, host: str, port: int) -> None:
    config = emulator.config
    base_url = await emulator.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    print(banner(base_url, config), flush=True)
    try:
        await stop.wait()
    finally:
        await emulator.stop()


def main(argv: list[str] | None = None) -> Kind:
    """``zuora-reaper emulator``: serve until SIGINT/SIGTERM. A bad setting is a ConfigError;
    a port that cannot be bound is printed and FAILED (``worker.cli`` maps both to exit codes).
    """
    args = build_parser().parse_args(argv)
    try:
        emulator = Emulator(config_from_args(args))
    except (ValueError, OSError) as exc:
        raise ConfigError("emulator", str(exc)) from exc
    try:
        asyncio.run(serve(emulator, args.host, args.port))
    except OSError as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return Kind.FAILED
    return Kind.OK
