"""Fixtures of the ops tests: a local HTTP receiver (Pushgateway / webhook) in its own thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web


@dataclass
class Received:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A tiny aiohttp server answering ``status`` (after ``delay`` seconds) to any request."""

    status: int = 200
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    base_url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(Received(request.method, request.path_qs, dict(request.headers),
                                      await request.read()))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text="ok")


class _ReceiverThread:
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.runner: web.AppRunner | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.receiver.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.receiver.base_url = f"http://127.0.0.1:{port}"

    async def _shutdown(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """Factory: ``rx = receiver(status=200, delay=0)``; served on a free loopback port."""
    threads: list[_ReceiverThread] = []

    def factory(**kwargs: float) -> Receiver:
        rt = _ReceiverThread(Receiver(**kwargs))  # type: ignore[arg-type]
        rt.thread.start()
        assert rt.ready.wait(5)
        threads.append(rt)
        return rt.receiver

    yield factory
    for rt in threads:
        rt.stop()
