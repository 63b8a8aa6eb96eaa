"""After the report is built: metrics file, Pushgateway, webhook. Never changes the exit code."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from worker.config import Settings
from worker.job import JobResult
from worker.logs import redact_data
from worker.notify import build_payload, post_webhook, should_notify
from worker.report import failed_ids

log = structlog.get_logger("worker.publish")


def publish(settings: Settings, result: JobResult, code: int, doc: dict[str, Any]) -> None:
    """Publish the finished job where the output settings ask; failures are only logged."""
    out = settings.output
    notify = bool(out.notify_webhook) and should_notify(doc)
    if not (out.metrics_file or out.pushgateway or notify):
        return
    # imported only when asked for: prometheus_client costs ~30 ms of start-up per job
    from worker.metrics import push_metrics, sample_of, write_metrics_file

    sample = sample_of(settings, result, code)
    if out.metrics_file:
        try:
            write_metrics_file(out.metrics_file, sample)
        except OSError as exc:
            log.warning("metrics.write_failed", path=out.metrics_file, error=str(exc))
    if out.pushgateway:
        push_metrics(out.pushgateway, sample, network=settings.network)
    if out.notify_webhook and notify:  # the first test narrows the type for mypy
        payload = redact_data(build_payload(doc, failed_ids(result), out.job_name,
                                            sample.duration_s))
        asyncio.run(post_webhook(out.notify_webhook, payload, network=settings.network))
