"""The aiohttp application: one catch-all handler running Zuora's request pipeline.

Order per API request: record -> auth -> concurrency -> rate -> faults (drop / 503)
-> latency -> handler. The token endpoint skips limits and faults.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .auth import check_auth, issue_token
from .config import EmulatorConfig
from .faults import GATEWAY_TIMEOUT_PAGE, Faults
from .handlers import cancel_run, get_run, list_runs
from .limits import ConcurrencyGate, RateLimiter
from .model import RequestRecord
from .replies import Reply
from .routing import Route, classify
from .state import State

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
    limited = core.rate.consume(config.rate, config.rate_window)
    if limited is not None:
        return limited
    if core.faults.should_drop(config):
        return None
    unavailable = core.faults.unavailable(config)
    if unavailable is not None:
        return unavailable
    delay = core.faults.latency_s(config)
    if delay > 0:
        await asyncio.sleep(delay)
    reply = operate(core, route, request, body)
    if route.kind == "delete" and config.cancel_then is not None:
        return await after_cancel(config, reply)
    return reply


async def after_cancel(config: EmulatorConfig, reply: Reply) -> Reply | None:
    """The DELETE is applied; its answer is lost (``cancel_then``). None drops the connection."""
    if config.cancel_then == "drop":
        return None
    if config.cancel_then == "504":
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
    return cancel_run(state, config, route.run_id)


async def dispatch(core: Core, route: Route, request: web.Request, body: Body) -> Reply | None:
    if route.kind == "token":
        return issue_token(core.state, core.config, body.value)
    if route.kind == "other":
        return Reply(route.status, {"success": False, "message": "Not Found"})
    return await handle_api(core, route, request, body)


def response_headers(core: Core, route: Route, request: web.Request, reply: Reply) -> None:
    headers = reply.headers
    headers.setdefault("Zuora-Request-Id", str(uuid.uuid4()))
    track = request.headers.get("Zuora-Track-Id")
    if track is not None:
        headers["Zuora-Track-Id"] = track
    if route.kind in API_KINDS:
        config = core.config
        for name, value in core.rate.headers(config.rate, config.rate_window).items():
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
