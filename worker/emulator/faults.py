"""What goes wrong, on purpose: the faults a test or demo injects (5xx ratios, drops, latency,
broken listing pages, gateway pages). The limits a tenant enforces are in ``limits``."""

from __future__ import annotations

import functools
import math
import random

from .config import EmulatorConfig
from .replies import Reply, reasons

HUGE_BYTES = 21 * 1024 * 1024
GATEWAY_TIMEOUT_PAGE = (
    b"<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center>"
    b"<h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n"
    b"</html>\r\n")
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Zuora</title></head>"
    b"<body><h1>Service maintenance</h1><p>Please sign in again.</p></body></html>"
)


class Faults:
    """Seeded fault decisions, so the same seed and request order give the same faults."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"faults:{seed}")

    def _hit(self, ratio: float) -> bool:
        return ratio > 0 and self.rng.random() < ratio

    def should_drop(self, config: EmulatorConfig) -> bool:
        return self._hit(config.drop_ratio)

    def unavailable(self, config: EmulatorConfig) -> Reply | None:
        if not self._hit(config.fail_503_ratio):
            return None
        reply = reasons(503, 61000061, "Service temporarily unavailable, please retry")
        reply.headers["Retry-After"] = str(math.ceil(config.fault_retry_after))
        return reply

    def latency_s(self, config: EmulatorConfig) -> float:
        delay = config.latency_ms
        if config.jitter_ms > 0:
            delay += self.rng.uniform(-config.jitter_ms, config.jitter_ms)
        return max(0.0, delay) / 1000.0


@functools.cache
def huge_body() -> bytes:
    """Valid JSON bigger than 20 MB."""
    head = b'{"success":true,"response":{"content":[],"padding":"'
    return head + b"x" * HUGE_BYTES + b'"}}'


@functools.cache
def tiny_items_body() -> bytes:
    """A listing page of a million empty items: 3 MB on the wire, far more once parsed."""
    return b'{"success":true,"response":{"content":[' + b",".join([b"{}"] * 1_000_000) + b"]}}"


def list_fault_reply(kind: str, normal: Reply) -> Reply:
    """Replace a good list answer by the configured broken one."""
    if kind == "html":
        return Reply(200, raw=HTML_PAGE, content_type="text/html")
    if kind == "text":
        return Reply(200, raw=b"OK", content_type="text/plain")
    if kind == "no_list":
        return Reply(200, {"success": True, "response": {"total": 3}})
    if kind == "truncated":
        data = normal.payload()
        return Reply(200, raw=data[: max(1, len(data) // 2)])
    if kind == "huge":
        return Reply(200, raw=huge_body())
    if kind == "tiny_items":
        return Reply(200, raw=tiny_items_body())
    raise ValueError(f"unknown list_fault {kind!r}")
