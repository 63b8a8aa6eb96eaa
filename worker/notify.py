"""``--notify-webhook``: POST the job summary JSON when something was cancelled or failed.

The payload is built from the report document, which holds no secret; the exit reason is
scrubbed once more. The webhook URL is never logged whole (chat webhooks carry their token in
the path). Delivery is bounded (two attempts of a few seconds) and never changes the exit code.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from worker.errors import ApiError, TransientError
from worker.http import Transport, origin_of
from worker.logs import REDACTOR
from worker.network import Network

log = structlog.get_logger("worker.notify")

ATTEMPT_TIMEOUT_S = 5.0
ATTEMPTS = 2
MAX_FAILED_IDS = 100


def should_notify(doc: dict[str, Any]) -> bool:
    """True when the job cancelled something, failed to cancel something, or did not exit 0."""
    c = doc["counts"]
    return bool(c["cancelled"] or c["failed"] or c["still_running"] or c["unknown"]
                or doc["exit_code"])


def build_payload(doc: dict[str, Any], failed: list[str], job_name: str,
                  duration_s: float) -> dict[str, Any]:
    """The summary sent to the webhook: counts, target, duration, exit code, failed run ids."""
    reason = doc["exit_reason"]
    return {
        "event": "zuora_reaper.job_finished",
        "job_name": job_name,
        "job_id": doc["job_id"],
        "mode": doc["mode"],
        "target": doc["target"],
        "exit_code": doc["exit_code"],
        "exit_reason": REDACTOR.scrub(reason) if reason else None,
        "started_at": doc["started_at"],
        "finished_at": doc["finished_at"],
        "duration_s": round(duration_s, 3),
        "counts": doc["counts"],
        "requests": {k: doc["requests"][k] for k in ("total", "rate_limited", "retries")},
        "failed_run_ids": failed[:MAX_FAILED_IDS],
        "failed_run_ids_truncated": len(failed) > MAX_FAILED_IDS,
    }


async def post_webhook(url: str, payload: dict[str, Any],
                       attempt_timeout: float = ATTEMPT_TIMEOUT_S,
                       network: Network | None = None) -> bool:
    """POST ``payload``; retry once on a network error or 5xx. False (logged) when undelivered."""
    where = origin_of(url)
    problem = "not sent"
    async with Transport(limit=1, attempt_timeout=attempt_timeout,
                         network=network) as transport:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                resp = await transport.send("POST", url, headers={}, json_body=payload)
            except TransientError as exc:
                problem = str(exc)
            except ApiError as exc:  # a redirect, TLS, a proxy refusal: sending again won't help
                problem = str(exc)
                break
            else:
                if resp.status < 300:
                    log.info("notify.sent", webhook=where, status=resp.status)
                    return True
                problem = f"HTTP {resp.status}"
                if resp.status < 500:
                    break  # the receiver refused this payload: sending it again will not help
            if attempt < ATTEMPTS:
                await asyncio.sleep(0.5)
    log.warning("notify.failed", webhook=where, error=problem[:300])
    return False
