"""Emulator: start/stop the server and inspect its state; EmulatorThread for sync code."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from aiohttp import web

from .app import Core, build_app
from .config import EmulatorConfig
from .faults import Faults
from .limits import ConcurrencyGate, RateLimiter
from .model import EmuRun, RequestRecord
from .state import State


class Emulator:
    """A Zuora Reporting API emulator served over real HTTP."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        config = config if config is not None else EmulatorConfig()
        config.validate()
        self._core = Core(
            config, State(config), RateLimiter(), ConcurrencyGate(), Faults(config.seed)
        )
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 = a free port); return "http://host:port"."""
        self._core.rate = RateLimiter()
        runner = web.AppRunner(build_app(self._core), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def config(self) -> EmulatorConfig:
        return self._core.config

    @config.setter
    def config(self, value: EmulatorConfig) -> None:
        value.validate()
        self._core.config = value

    @property
    def runs(self) -> dict[str, EmuRun]:
        return self._core.state.runs

    @property
    def records(self) -> list[RequestRecord]:
        return self._core.state.records

    @property
    def max_in_flight(self) -> int:
        return self._core.gate.max_in_flight

    def add_run(
        self,
        *,
        status: str = "STARTED",
        age_s: float = 3600,
        report_type: str = "Detail",
        created_by: str = "alice@example.com",
        run_id: str | None = None,
        updated_age_s: float | None = None,
    ) -> EmuRun:
        """Add (or replace) one run started age_s seconds ago."""
        state = self._core.state
        now = self.config.clock()
        run = EmuRun(
            id=run_id if run_id is not None else state.new_run_id(),
            report_id=state.new_run_id(),
            report_type=report_type,
            status=status,
            started_on=now - age_s,
            updated_on=now - (updated_age_s if updated_age_s is not None else age_s),
            created_by=created_by,
        )
        state.runs[run.id] = run
        return run

    def clear_runs(self) -> None:
        self._core.state.runs.clear()

    def expire_tokens(self) -> None:
        self._core.state.expire_tokens()

    def deletes(self) -> list[RequestRecord]:
        return [r for r in self.records if r.kind == "delete"]

    def cancelled_ids(self) -> set[str]:
        return set(self._core.state.cancelled)

    def count(self, kind: str | None = None, status: int | None = None) -> int:
        return sum(
            1
            for r in self.records
            if (kind is None or r.kind == kind) and (status is None or r.status == status)
        )

    def limited_count(self, which: str) -> int:
        return sum(1 for r in self.records if r.limited == which)


class EmulatorThread:
    """Run an Emulator on its own event loop in a daemon thread (context manager).

    Set up runs and config before sending traffic: the handlers run on the emulator's
    thread, and state changes from the caller's thread are not synchronised.
    """

    def __init__(
        self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._config = config
        self._host = host
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="zuora-emulator", daemon=True
        )
        self.emulator: Emulator | None = None

    def __enter__(self) -> Emulator:
        emulator = Emulator(self._config)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            emulator.start(self._host, self._port), self._loop
        )
        try:
            future.result(timeout=30)
        except BaseException:
            self._shutdown()
            raise
        self.emulator = emulator
        return emulator

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.emulator is not None:
            stop = asyncio.run_coroutine_threadsafe(self.emulator.stop(), self._loop)
            stop.result(timeout=30)
        leftovers = asyncio.run_coroutine_threadsafe(_cancel_other_tasks(), self._loop)
        leftovers.result(timeout=30)  # handlers still sleeping (cancel_then="stall", latency)
        self._shutdown()

    def _shutdown(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


async def _cancel_other_tasks() -> None:
    """Cancel and reap every task of the running loop but this one."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
