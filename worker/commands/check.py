"""``zuora-reaper check``: config, credentials and one listing page; never cancels.

Prints the target, the auth mode and entity, whether the credentials were accepted, how many
in-progress runs the first page shows, and the rate and concurrency limits the server reported
next to the configured pacing. ``--output json`` prints the same facts as one JSON object.
It fails with the errors of ``run`` (AuthError for refused credentials, ApiUnreachable...).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from typing import Any

from worker.api_bodies import parse_run, run_path
from worker.capture import write_capture
from worker.client import connect
from worker.config import Settings
from worker.control import JobControl
from worker.errors import WorkerError
from worker.http import Response
from worker.listing import columns_for, fetch_page, page_body
from worker.pacer import PacerConfig, cancels_with, plan_for
from worker.ratelimit import Limits, Window, parse_concurrency_limit, parse_limits
from worker.retry import RetryPolicy

PROBE_ATTEMPTS = 3  # a check answers quickly: fewer attempts than a job

LABELS = (("target", "target"), ("api_root", "api root"), ("proxy", "proxy"),
          ("trust", "trust"), ("auth", "auth"), ("entity", "entity"),
          ("credentials", "credentials"), ("statuses", "statuses"),
          ("in_progress", "in progress"), ("rate_limit", "rate limit"),
          ("concurrency_limit", "concurrency"), ("pacing", "pacing"))


async def run_check(settings: Settings,
                    exit_code_of: Callable[[WorkerError | None], int]) -> WorkerError | None:
    """Print what the target looks like; return None, or the error of the failure.
    ``exit_code_of`` (the CLI's map) gives the exit code the facts show."""
    facts = _static_facts(settings)
    try:
        facts.update(await _probe(settings))
    except WorkerError as exc:
        facts.update(ok=False, error=f"{type(exc).__name__}: {exc}", exit_code=exit_code_of(exc))
        _emit(settings, facts)
        print(f"zuora-reaper: check failed: {facts['error']}", file=sys.stderr)
        return exc
    facts.update(ok=True, exit_code=exit_code_of(None))
    _emit(settings, facts)
    return None


def _static_facts(settings: Settings) -> dict[str, Any]:
    t, creds, pacing = settings.target, settings.credentials, settings.pacing
    return {
        "target": f"{t.base_url} ({t.environment or 'custom base URL'})",
        "api_root": t.api_root,
        "proxy": settings.network.describe(),
        "trust": settings.network.describe_trust(),
        "auth": t.auth,
        "entity": creds.entity_id or "none (the user's default entity)",
        "statuses": ", ".join(settings.selection.filters.statuses),
        "pacing": f"at most {pacing.rate:g} requests/s and {pacing.concurrency} in flight "
                  f"(configured; {pacing.quota_share:g} of a reported quota)",
    }


async def _probe(settings: Settings) -> dict[str, Any]:
    """Get a token (OAuth) and list one page, within ``--deadline`` (plus the grace period);
    raise the WorkerError of the first failure."""
    control = JobControl(settings.pacing.deadline)
    return await control.bounded(_ask(settings, control))


async def _ask(settings: Settings, control: JobControl) -> dict[str, Any]:
    t = settings.target
    async with connect(settings, control, policy=RetryPolicy(max_attempts=PROBE_ATTEMPTS),
                       concurrency=1) as client:
        await client.auth.headers()  # OAuth: fetches a token now, so a bad secret fails here
        statuses = [("status", s) for s in settings.selection.filters.statuses]
        resp = await fetch_page(client, statuses, 1, settings.listing.page_size,
                                columns_for(settings.selection))
        items = page_body(resp, settings.listing.list_items_field, 1,
                          settings.listing.page_size).items
        runs = [parse_run(i) for i in items]
        if settings.run.capture:
            first = next((r.id for r in runs if r.id is not None), None)
            got = await client.request("GET", run_path(first)) if first else None
            token = [v.split()[-1] for v in (await client.auth.headers()).values() if v]
            try:
                write_capture(settings.run.capture, resp, items, got,
                              [*settings.credentials.secrets(), *token])
            except OSError as exc:
                raise WorkerError(f"could not write the capture to {settings.run.capture}: "
                                  f"{exc}") from exc
    full = len(runs) >= settings.listing.page_size
    bad = sum(1 for r in runs if not r.parseable)
    return {
        "credentials": "accepted (token obtained, listing answered)" if t.auth == "oauth"
        else "accepted (listing answered)",
        "in_progress": f"{len(runs)}{'+' if full else ''} visible on the first page"
                       + (f" ({bad} unparseable)" if bad else ""),
        "in_progress_count": len(runs),
        "in_progress_more": full,
        **_limits(settings, resp),
    }


def _limits(settings: Settings, resp: Response) -> dict[str, Any]:
    """The limits the first answer announced, and what a job does with each quota window."""
    limits, conc = parse_limits(resp.headers), parse_concurrency_limit(resp.headers)
    facts: dict[str, Any] = {
        "concurrency_limit": f"{conc} requests in flight" if conc else "not reported",
        "reported_concurrency_limit": conc}
    if limits is None or not limits.windows:
        return {**facts, "rate_limit": "not reported (the job paces at --rate and learns from "
                                       "429s)", "quota_windows": [],
                "reported_rate_limit": None, "reported_rate_window_s": None}
    rows = [_window_row(settings, limits, window) for window in limits.windows]
    shortest = limits.windows[0]
    return {**facts, "rate_limit": "; ".join(row["text"] for row in rows), "quota_windows": rows,
            "reported_rate_limit": shortest.quota, "reported_rate_window_s": shortest.seconds}


def _window_row(settings: Settings, limits: Limits, window: Window) -> dict[str, Any]:
    """One window: its quota, what it has left (when the answer says), and what a job does
    with it: one of 15 minutes or less sets the pace, a longer one is a budget for the job."""
    pacing = settings.pacing
    rate, budgets = plan_for(PacerConfig(rate=pacing.rate, concurrency=pacing.concurrency,
                                         quota_share=pacing.quota_share), limits.windows)
    budget = budgets.get(window)
    left = limits.remaining if window in limits.described() else None
    if left is not None and budget is not None:
        budget = min(budget, math.floor(pacing.quota_share * left))
    text = f"{window.quota:,} requests per {window.seconds:g}s"
    text += f" ({left:,} left)" if left is not None else ""
    text += (f": paced at {rate:.3g}/s" if budget is None else
             f": a job may send {budget:,} (about "
             f"{cancels_with(budget, settings.listing.page_size):,} cancels)")
    return {"window": window.name, "seconds": window.seconds, "quota": window.quota,
            "remaining": left, "pace_per_s": None if budget is not None else round(rate, 3),
            "job_budget": budget, "text": text}


def _emit(settings: Settings, facts: dict[str, Any]) -> None:
    if settings.output.output == "json":
        print(json.dumps(facts, indent=2))
        return
    for key, label in LABELS:
        if key in facts:
            print(f"{label + ':':<13} {facts[key]}")
    print("check: OK" if facts["ok"] else "check: FAILED")
