"""``zuora-reaper check``: config, credentials and one listing page; never cancels."""

from __future__ import annotations

import sys

from worker.client import ApiClient, RetryPolicy
from worker.config import Settings
from worker.control import JobControl
from worker.errors import WorkerError
from worker.http import Transport
from worker.job import make_auth
from worker.listing import fetch_page, page_items
from worker.models import parse_run
from worker.pacer import Pacer, PacerConfig, RetryBudget
from worker.ratelimit_headers import RateLimitInfo, parse_concurrency, parse_ratelimit


async def run_check(settings: Settings) -> int:
    """Print what the target looks like; return 0, or the exit code of the failure."""
    out = sys.stdout
    t, creds = settings.target, settings.credentials
    out.write(f"target:       {t.base_url} ({t.environment or 'custom base URL'})\n")
    out.write(f"api root:     {t.api_root}\n")
    out.write(f"auth:         {t.auth}{', entity ' + creds.entity_id if creds.entity_id else ''}\n")
    pacing = settings.pacing
    try:
        async with Transport(limit=2, attempt_timeout=pacing.attempt_timeout) as transport:
            auth = make_auth(settings, transport)
            await auth.headers()
            out.write("credentials:  accepted" + (" (token obtained)\n" if t.auth == "oauth"
                                                  else " (checked on first call)\n"))
            client = ApiClient(t.api_root, transport, auth,
                               Pacer(PacerConfig(rate=pacing.rate, concurrency=1)),
                               RetryBudget(capacity=pacing.retry_budget),
                               JobControl(pacing.deadline), RetryPolicy(max_attempts=3))
            statuses = [("status", s) for s in settings.selection.filters.statuses]
            resp = await fetch_page(client, statuses, 1, settings.listing.page_size)
            runs = [parse_run(i) for i in page_items(resp, settings.listing.list_items_field, 1)]
    except WorkerError as exc:
        print(f"zuora-reaper: check failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    full = len(runs) >= settings.listing.page_size
    out.write(f"in progress:  {len(runs)}{'+' if full else ''} visible on the first page "
              f"({sum(1 for r in runs if not r.parseable)} unparseable)\n")
    rate, conc = parse_ratelimit(resp.headers), parse_concurrency(resp.headers)
    out.write(f"rate limit:   {_rate_text(rate)}\n")
    out.write(f"concurrency:  {conc.limit if conc and conc.limit else 'not reported'}"
              f"{f' ({conc.remaining} free)' if conc and conc.remaining is not None else ''}\n")
    out.write("check: OK\n")
    return 0


def _rate_text(info: RateLimitInfo | None) -> str:
    if info is None or info.limit is None:
        return "not reported"
    span = f" per {info.window:g}s" if info.window else ""
    return f"{info.limit}{span}, {info.remaining} remaining"
