"""The HTTP edge: one connection pool per job, bodies read and capped, library errors translated.

Two engines send the bytes: ``builtin`` (``worker.wire``, the default: a lean HTTP/1.1 client
that costs about a third of aiohttp's CPU per request) and ``aiohttp`` (the full client, kept
for the webhook, which may point anywhere, and as an escape hatch: ``--http-client aiohttp``).
Nothing above this module sees an engine's exception: network failures become TransientError,
TLS failures ApiUnreachable, and every answered request becomes a ``Response`` whatever its
status (classification of statuses is the client's job, because Zuora can say
``success:false`` in a 200).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp
from multidict import CIMultiDict

from worker.errors import ApiUnreachable, TransientError
from worker.wire import RawResponse, WireEngine, WireError, WireTLSError

MAX_BODY_BYTES = 8 * 1024 * 1024  # a listing page of 250 runs is ~100 KB; anything huge is wrong
USER_AGENT = "zuora-reaper/0.1 (+https://github.com/zuora-reaper)"
DEFAULT_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json",
                   "Accept-Encoding": "gzip, deflate"}
ENGINES = ("builtin", "aiohttp")
CONNECT_TIMEOUT = 10.0


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


class Transport:
    """Owns the connection pool of a job; use as ``async with Transport(...) as t``."""

    def __init__(self, *, limit: int, attempt_timeout: float,
                 max_body_bytes: int = MAX_BODY_BYTES, engine: str = "builtin") -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown HTTP engine {engine!r}; allowed: {', '.join(ENGINES)}")
        self._limit, self._timeout, self._max_body = max(limit, 1), attempt_timeout, max_body_bytes
        self._kind = engine
        self._engine: Engine | None = None

    async def __aenter__(self) -> Transport:
        self._engine = (WireEngine(limit=self._limit, attempt_timeout=self._timeout,
                                   max_body=self._max_body) if self._kind == "builtin"
                        else AiohttpEngine(self._limit, self._timeout, self._max_body))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._engine is not None:
            await self._engine.close()
            self._engine = None

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
        except (WireTLSError, aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch) as exc:
            # Not transient: retrying cannot make an untrusted certificate trusted.
            raise ApiUnreachable(f"{method} refused: TLS verification failed "
                                 f"({type(exc).__name__}: {exc}); the certificate is not "
                                 "trusted by this machine", code="tls") from exc
        except (WireError, OSError, aiohttp.ClientError) as exc:
            raise TransientError(f"{method} failed: {type(exc).__name__}: {exc}",
                                 code="connection") from exc
        text = raw.body.decode("utf-8", errors="replace")
        return Response(status=raw.status, headers=raw.headers,
                        body=_parse_json(text, raw.truncated), text=text[:2000],
                        elapsed=loop.time() - start, truncated=raw.truncated)


def _encode_body(json_body: Any, form: Mapping[str, str] | None,
                 headers: Mapping[str, str]) -> tuple[bytes | None, dict[str, str]]:
    all_headers = {**DEFAULT_HEADERS, **headers}
    if form is not None:
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        return urlencode(form).encode(), all_headers
    if json_body is not None:
        all_headers["Content-Type"] = "application/json"
        return json.dumps(json_body).encode(), all_headers
    return None, all_headers


class AiohttpEngine:
    """The same exchange through aiohttp's client (the webhook's engine, and a fallback)."""

    def __init__(self, limit: int, attempt_timeout: float, max_body: int) -> None:
        connector = aiohttp.TCPConnector(limit=limit, ttl_dns_cache=300, family=socket.AF_UNSPEC)
        timeout = aiohttp.ClientTimeout(total=attempt_timeout,
                                        sock_connect=min(CONNECT_TIMEOUT, attempt_timeout))
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                              raise_for_status=False,
                                              skip_auto_headers=("Content-Type",))
        self._max_body = max_body

    async def request(self, method: str, url: str, headers: Mapping[str, str],
                      body: bytes | None) -> RawResponse:
        async with self._session.request(method, url, headers=headers, data=body) as resp:
            raw, truncated = await self._read(resp)
            return RawResponse(resp.status, CIMultiDict(resp.headers), raw, truncated)

    async def close(self) -> None:
        await self._session.close()

    async def _read(self, resp: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        length = resp.content_length
        if length is not None and length <= self._max_body \
                and "Content-Encoding" not in resp.headers:
            # a declared, uncompressed length within the cap (nearly every answer): one read,
            # no chunk loop (a compressed body may inflate past the cap: read it in chunks)
            return await resp.read(), False
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > self._max_body:
                resp.close()  # do not drain a runaway body; drop the connection instead
                return b"".join(chunks)[: self._max_body], True
        return b"".join(chunks), False


def _parse_json(text: str, truncated: bool) -> Any:
    if truncated or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
