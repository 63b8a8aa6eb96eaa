"""The HTTP edge: one connection pool per job, bodies read and capped, library errors translated.

Two engines send the bytes: ``builtin`` (``worker.wire``, the default: a lean HTTP/1.1 client;
a whole job costs ~1.7x the CPU on aiohttp, bench/README.md) and ``aiohttp`` (the full client,
kept for the webhook, which may point anywhere, and as an escape hatch: ``--http-client
aiohttp``).
Nothing above this module sees an engine's exception: network failures become TransientError,
TLS failures ApiUnreachable, and every answered request becomes a ``Response`` whatever its
status (classification of statuses is the client's job, because Zuora can say
``success:false`` in a 200).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import orjson

from worker.errors import ApiUnreachable, TransientError
from worker.wire import RawResponse, WireEngine, WireError, WireTLSError

MAX_BODY_BYTES = 8 * 1024 * 1024  # a listing page of 250 runs is ~100 KB; anything huge is wrong
USER_AGENT = "zuora-reaper/0.1 (+https://github.com/zuora-reaper)"
DEFAULT_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json",
                   "Accept-Encoding": "gzip, deflate"}
ENGINES = ("builtin", "aiohttp")
TEXT_CHARS = 2000  # of an answer's text kept for error messages


@dataclass(frozen=True, slots=True)
class Response:
    """An answered request. ``body`` is the parsed JSON, or None when it was not JSON."""

    status: int
    headers: Mapping[str, str]
    body: Any
    text: str
    elapsed: float
    truncated: bool = False

    @property
    def is_json(self) -> bool:
        return self.body is not None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class Engine(Protocol):
    """Sends one request and returns the raw answer; raises its own library's errors."""

    async def request(self, method: str, url: str, headers: Mapping[str, str],
                      body: bytes | None) -> RawResponse: ...

    async def close(self) -> None: ...

    @property
    def resent(self) -> int | None:
        """Requests sent again on a fresh connection after a pooled one closed under them
        (before any byte of an answer); None when the engine cannot tell."""


class Transport:
    """Owns the connection pool of a job; use as ``async with Transport(...) as t``."""

    def __init__(self, *, limit: int, attempt_timeout: float,
                 max_body_bytes: int = MAX_BODY_BYTES, engine: str = "builtin") -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown HTTP engine {engine!r}; allowed: {', '.join(ENGINES)}")
        self._limit, self._timeout, self._max_body = max(limit, 1), attempt_timeout, max_body_bytes
        self._kind = engine
        self._engine: Engine | None = None
        self._resent: int | None = 0  # kept from the engine once it is closed

    async def __aenter__(self) -> Transport:
        if self._kind == "builtin":
            self._engine = WireEngine(limit=self._limit, attempt_timeout=self._timeout,
                                      max_body=self._max_body, default_headers=DEFAULT_HEADERS)
        else:  # imported here: aiohttp's import costs ~0.2 s of CPU a job on builtin never needs
            from worker.aiohttp_engine import AiohttpEngine
            self._engine = AiohttpEngine(self._limit, self._timeout, self._max_body,
                                         DEFAULT_HEADERS)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._engine is not None:
            self._resent = self._engine.resent
            await self._engine.close()
            self._engine = None

    @property
    def resent(self) -> int | None:
        """The engine's resends so far (see ``Engine.resent``); 0 before the first request."""
        return self._engine.resent if self._engine is not None else self._resent

    async def send(self, method: str, url: str, *, headers: Mapping[str, str],
                   json_body: Any = None, form: Mapping[str, str] | None = None,
                   params: list[tuple[str, str]] | None = None) -> Response:
        """Send one request and read its (capped) body; network errors raise TransientError."""
        assert self._engine is not None, "Transport used outside 'async with'"
        body, all_headers = _encode_body(json_body, form, headers)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            raw = await self._engine.request(method, url, all_headers, body)
        except TimeoutError as exc:
            raise TransientError(f"{method} timed out: no answer within the attempt timeout",
                                 code="timeout") from exc
        except WireTLSError as exc:
            # Not transient: retrying cannot make an untrusted certificate trusted.
            raise ApiUnreachable(f"{method} refused: TLS verification failed "
                                 f"({type(exc).__name__}: {exc}); the certificate is not "
                                 "trusted by this machine", code="tls") from exc
        except (WireError, OSError) as exc:
            raise TransientError(f"{method} failed: {type(exc).__name__}: {exc}",
                                 code="connection") from exc
        # text is kept for error messages only: decode no more than they can show
        text = raw.body[:TEXT_CHARS * 2].decode("utf-8", errors="replace")[:TEXT_CHARS]
        return Response(status=raw.status, headers=raw.headers,
                        body=None if raw.truncated else parse_json(raw.body), text=text,
                        elapsed=loop.time() - start, truncated=raw.truncated)


def _encode_body(json_body: Any, form: Mapping[str, str] | None,
                 headers: Mapping[str, str]) -> tuple[bytes | None, Mapping[str, str]]:
    if form is not None:
        return (urlencode(form).encode(),
                {**headers, "Content-Type": "application/x-www-form-urlencoded"})
    if json_body is not None:
        return json.dumps(json_body).encode(), {**headers, "Content-Type": "application/json"}
    return None, headers


def parse_json(raw: bytes) -> Any:
    """The JSON value of ``raw``, or None when it is not JSON.

    orjson first (several times the stdlib's speed on a 250-run listing page); what it refuses
    gets the stdlib's more lenient reading (invalid UTF-8 replaced, NaN), so nothing that parsed
    before is lost.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        text = raw.decode("utf-8", errors="replace")
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None
