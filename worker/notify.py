"""``--notify-webhook``: POST the job summary JSON when something was cancelled or failed.

The payload is built from the report document, which holds no secret (secrets are scrubbed
where foreign text enters, ``worker.logs``). The webhook URL is never logged whole (chat
webhooks carry their token in the path). Delivery is bounded (two attempts of a few seconds)
and never changes the exit code.
"""

from __future__ import annotations

from typing import Any

import structlog

from worker.config import Settings
from worker.errors import ApiError, TransientError
from worker.http import Transport
from worker.logs import hide_url
from worker.models import JobResult, Outcome
from worker.network import Network
from worker.report import iso, target_doc
from worker.retry import few_times

log = structlog.get_logger("worker.notify")

ATTEMPT_TIMEOUT_S = 5.0
ATTEMPTS = 2
RETRY_WAIT_S = 0.5
MAX_FAILED_IDS = 100


def should_notify(doc: dict[str, Any]) -> bool:
    """True when the job cancelled something, failed to cancel something, or did not exit 0."""
    c = doc["counts"]
    return bool(c["cancelled"] or c["failed"] or c["still_running"] or c["unknown"]
                or doc["exit_code"])  # notices go in a message of their own


def notices(result: JobResult) -> list[dict[str, Any]]:
    """The runs this job gave a notice (``--notice``): who owns them, which report, and the
    time after which a job cancels them."""
    return [{"run_id": rec.key, "owner": rec.run.created_by, "report_id": rec.run.report_id,
             "report_name": rec.run.report_name, "report_type": rec.run.report_type,
             "status": rec.run.status, "started_on": iso(rec.run.started_on),
             "cancel_after": iso(rec.cancel_after)}
            for rec in result.records.values() if rec.outcome is Outcome.NOTICED]


def notice_payload(settings: Settings, result: JobResult, given: list[dict[str, Any]]
                   ) -> dict[str, Any]:
    """The notices of one job (``--notice``), sent before the job's summary and as a message
    of their own: each run's owner, report and the time after which a job cancels it."""
    return {"event": "zuora_reaper.notices", "job_name": settings.output.job_name,
            "job_id": result.job_id, "target": target_doc(settings),
            "notice_s": settings.selection.notice, "count": len(given), "notices": given}


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
        "exit_reason": reason,
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
    """POST ``payload``; retry once on a network error or 5xx. False (logged) when undelivered.

    A redirect, a TLS or proxy refusal, or a 4xx is not sent again: it would not help.
    """
    where = hide_url(url)
    try:
        async with Transport(limit=1, attempt_timeout=attempt_timeout,
                             network=network) as transport:
            async for attempt in few_times(ATTEMPTS, lambda _: RETRY_WAIT_S):
                with attempt:
                    status = await _post(transport, url, payload)
    except ApiError as exc:
        log.warning("notify.failed", webhook=where, error=str(exc)[:300])
        return False
    log.info("notify.sent", webhook=where, status=status)
    return True


async def _post(transport: Transport, url: str, payload: dict[str, Any]) -> int:
    """One POST; a 5xx is worth another try, a 3xx or 4xx is final."""
    resp = await transport.send("POST", url, headers={}, json_body=payload)
    if resp.status >= 500:
        raise TransientError(f"HTTP {resp.status}", status=resp.status)
    if resp.status >= 300:
        raise ApiError(f"HTTP {resp.status}", status=resp.status)
    return resp.status
