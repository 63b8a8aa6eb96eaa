"""Run the job's coroutine on uvloop when it is installed, else on the stdlib loop.

uvloop's libuv transports cut the client's CPU per request by roughly a third (bench/README.md),
which is what lets one core drive a tenant's full quota. It is a dependency on Linux and macOS;
elsewhere, or with ``ZUORA_REAPER_EVENT_LOOP=asyncio``, the stdlib loop runs the same code.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when available and not disabled, else None (stdlib default)."""
    if os.environ.get("ZUORA_REAPER_EVENT_LOOP", "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Like ``asyncio.run``, on the fastest loop available."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)
