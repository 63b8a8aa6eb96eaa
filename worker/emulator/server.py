"""Serving: the aiohttp application that records, limits and answers every request, and the
Emulator (in the caller's loop) / EmulatorThread (in its own thread) that run it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from email.utils import formatdate
from types import TracebackType
from typing import Any

from aiohttp import web

from worker.models import IN_PROGRESS

from .api import Route, cancel_run, check_auth, classify, get_run, issue_token, list_runs
from .config import EmulatorConfig
from .faults import GATEWAY_TIMEOUT_PAGE, Faults
from .limits import ConcurrencyGate, RateLimiter
from .replies import Reply, reasons, zan_error
from .runs import OTHER_USER, EmuRun, RequestRecord, State

API_KINDS = frozenset({"list", "get", "delete"})


@dataclass
class Core:
    """Everything one emulator instance serves from."""

    config: EmulatorConfig
    state: State
    rate: RateLimiter
    gate: ConcurrencyGate
    faults: Faults


CORE = web.AppKey("core", Core)


@dataclass(frozen=True)
class Body:
    value: Any
    ok: bool = True


async def read_body(request: web.Request, route: Route) -> Body:
    if route.kind == "token":
        form = await request.post()
        return Body({k: v for k, v in form.items() if isinstance(v, str)})
    raw = await request.read()
    if not raw.strip():
        return Body(None)
    try:
        return Body(json.loads(raw))
    except ValueError:
        return Body(raw.decode("utf-8", "replace"), ok=False)


async def handle_api(core: Core, route: Route, request: web.Request, body: Body) -> Reply | None:
    """Auth, concurrency, then the admitted part. None means: drop the connection."""
    config = core.config
    denied = check_auth(core.state, config, request.headers, route.legacy)
    if denied is not None:
        return denied
    refused = core.gate.enter(config.concurrency, config.concurrency_retry_after)
    if refused is not None:
        return refused
    try:
        return await admitted(core, route, request, body)
    finally:
        core.gate.leave()


async def admitted(core: Core, route: Route, request: web.Request, body: Body) -> Reply | None:
    config = core.config
    limited = core.rate.consume(config)
    if limited is not None:
        return limited
    if core.faults.should_drop(config):
        return None
    unavailable = core.faults.unavailable(config)
    if unavailable is not None:
        return unavailable
    delay = core.faults.latency_s(config) + config.stall.get(route.kind, 0.0)
    if delay > 0:
        await asyncio.sleep(delay)
    if route.kind == "delete":
        return await scripted_cancel(core, route, request, body)
    return operate(core, route, request, body)


async def scripted_cancel(core: Core, route: Route, request: web.Request,
                          body: Body) -> Reply | None:
    """A DELETE as its run's ``cancel_script`` step (then ``cancel_then``) has it answered."""
    config, state = core.config, core.state
    assert route.run_id is not None
    step = cancel_step(state, config, route.run_id)
    unapplied = await before_cancel(state, config, route.run_id, step)
    if unapplied is not None:
        return None if unapplied.status == 0 else unapplied
    reply = operate(core, route, request, body)
    lost = step.removeprefix("lost_") if step.startswith("lost_") else config.cancel_then
    return reply if lost is None else await after_cancel(config, reply, lost)


def cancel_step(state: State, config: EmulatorConfig, run_id: str) -> str:
    """The next step of ``run_id``'s cancel script ("ok" once it is spent)."""
    steps = config.cancel_script.get(run_id, ())
    used = state.script_pos[run_id]
    state.script_pos[run_id] += 1
    return steps[used] if used < len(steps) else "ok"


async def before_cancel(state: State, config: EmulatorConfig, run_id: str,
                        step: str) -> Reply | None:
    """What a step does before the cancel is applied; a Reply when it is not applied at all
    (status 0: drop the connection), None to go on."""
    run = state.runs.get(run_id)
    if step == "finish" and run is not None:
        run.status, run.updated_on = "COMPLETED", config.clock()
    elif step == "other_cancel" and run is not None and run.status in IN_PROGRESS:
        run.status, run.updated_on = "CANCELLED", config.clock()
        state.cancelled_by[run_id] = OTHER_USER
    elif step == "503":
        return reasons(503, 61000061, "Service temporarily unavailable, please retry")
    elif step == "reset":
        return Reply(0)
    elif step == "timeout":
        await asyncio.sleep(config.cancel_stall_s)
        return Reply(504, raw=GATEWAY_TIMEOUT_PAGE, content_type="text/html")
    elif step == "refuse" and run is not None:
        return zan_error(400, f"The report run {run_id} cannot be canceled now")
    elif step == "forbid":
        return zan_error(403, "You do not have the permission to cancel this report run.")
    return None


async def after_cancel(config: EmulatorConfig, reply: Reply, lost: str) -> Reply | None:
    """The DELETE is applied; its answer is lost: ``drop`` closes the connection, ``504``
    answers a gateway's timeout page, ``stall`` answers after ``cancel_stall_s``."""
    if lost == "drop":
        return None
    if lost == "504":
        return Reply(504, raw=GATEWAY_TIMEOUT_PAGE, content_type="text/html")
    await asyncio.sleep(config.cancel_stall_s)
    return reply


def operate(core: Core, route: Route, request: web.Request, body: Body) -> Reply:
    state, config = core.state, core.config
    if route.kind == "list":
        if not body.ok:
            return Reply(400, {"success": False, "message": "Malformed JSON request body"})
        return list_runs(state, config, request.query.getall("status", []), body.value)
    assert route.run_id is not None
    if route.kind == "get":
        return get_run(state, config, route.run_id)
    return cancel_run(state, config, route.run_id, request.headers.get("Zuora-Track-Id", ""))


async def dispatch(core: Core, route: Route, request: web.Request, body: Body) -> Reply | None:
    if route.kind == "token":
        stall = core.config.stall.get("token", 0.0)
        if stall > 0:
            await asyncio.sleep(stall)
        return issue_token(core.state, core.config, body.value)
    if route.kind == "other":
        return Reply(route.status, {"success": False, "message": "Not Found"})
    return await handle_api(core, route, request, body)


def response_headers(core: Core, route: Route, request: web.Request, reply: Reply) -> None:
    headers = reply.headers
    headers.setdefault("Zuora-Request-Id", str(uuid.uuid4()))
    # the emulated server's own clock (config.clock writes startedOn too): a skewed one shows
    headers.setdefault("Date", formatdate(core.config.clock() + core.config.date_skew_s,
                                          usegmt=True))
    track = request.headers.get("Zuora-Track-Id")
    if track is not None:
        headers["Zuora-Track-Id"] = track
    if route.kind in API_KINDS:
        config = core.config
        for name, value in core.rate.headers(config).items():
            headers.setdefault(name, value)
        for name, value in core.gate.headers(config.concurrency).items():
            headers.setdefault(name, value)


def record(
    core: Core,
    request: web.Request,
    route: Route,
    meta: tuple[int, float, Body],
    status: int,
    limited: str | None,
) -> None:
    seq, started, body = meta
    core.state.add_record(
        RequestRecord(
            seq=seq,
            t=started,
            method=request.method,
            path=request.path,
            query=tuple(request.query.items()),
            headers=dict(request.headers),
            body=body.value,
            status=status,
            run_id=route.run_id,
            kind=route.kind,
            limited=limited,
        )
    )


def drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the socket unanswered; aiohttp then fails to write and ignores it quietly."""
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.Response(status=500)


async def entry(request: web.Request) -> web.StreamResponse:
    core = request.app[CORE]
    seq, started = core.state.next_seq(), time.monotonic()
    route = classify(request.method, request.path)
    if route.kind == "delete" and route.run_id is not None:
        core.state.deletes_seen[route.run_id] += 1
    body = await read_body(request, route)
    reply = await dispatch(core, route, request, body)
    if reply is None:
        record(core, request, route, (seq, started, body), 0, None)
        return drop_connection(request)
    response_headers(core, route, request, reply)
    record(core, request, route, (seq, started, body), reply.status, reply.limited)
    return web.Response(
        status=reply.status,
        body=reply.payload(),
        headers=reply.headers,
        content_type=reply.content_type,
        charset="utf-8",
    )


def build_app(core: Core) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[CORE] = core
    app.router.add_route("*", "/{tail:.*}", entry)
    return app


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

    def deletes_received(self) -> Counter[str]:
        """DELETEs received per run id, counted as they arrive (a stalled one too)."""
        return Counter(self._core.state.deletes_seen)

    @property
    def cancelled_by(self) -> dict[str, str]:
        """The journal of cancels: run id -> the Zuora-Track-Id of the DELETE that applied
        it, or ``OTHER_USER`` (cancel_script "other_cancel")."""
        return dict(self._core.state.cancelled_by)

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
