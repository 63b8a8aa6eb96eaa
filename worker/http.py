"""The HTTP edge: one aiohttp session, bodies read and capped, aiohttp errors translated.

Nothing above this module sees an aiohttp exception: network failures become TransientError,
and every answered request becomes a ``Response`` whatever its status (classification of
statuses is the client's job, because Zuora can say ``success:false`` in a 200).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from worker.errors import ApiUnreachable, TransientError

MAX_BODY_BYTES = 8 * 1024 * 1024  # a listing page of 250 runs is ~100 KB; anything huge is wrong
USER_AGENT = "zuora-reaper/0.1 (+https://github.com/zuora-reaper)"


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


class Transport:
    """Owns the one ClientSession of a job; use as ``async with Transport(...) as t``."""

    def __init__(self, *, limit: int, attempt_timeout: float,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self._limit = limit
        self._timeout = aiohttp.ClientTimeout(total=attempt_timeout,
                                              sock_connect=min(10.0, attempt_timeout))
        self._max_body = max_body_bytes
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Transport:
        connector = aiohttp.TCPConnector(limit=max(self._limit, 1), ttl_dns_cache=300,
                                         family=socket.AF_UNSPEC)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, raise_for_status=False,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, method: str, url: str, *, headers: Mapping[str, str],
                   json_body: Any = None, form: Mapping[str, str] | None = None,
                   params: list[tuple[str, str]] | None = None) -> Response:
        """Send one request and read its (capped) body; network errors raise TransientError."""
        assert self._session is not None, "Transport used outside 'async with'"
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            async with self._session.request(method, url, headers=headers, json=json_body,
                                             data=form, params=params) as resp:
                raw, truncated = await self._read(resp)
                status, resp_headers = resp.status, resp.headers
        except TimeoutError as exc:
            raise TransientError(f"{method} timed out: no answer within the attempt timeout",
                                 code="timeout") from exc
        except (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch) as exc:
            # Not transient: retrying cannot make an untrusted certificate trusted.
            raise ApiUnreachable(f"{method} refused: TLS verification failed "
                                 f"({type(exc).__name__}: {exc}); the certificate is not "
                                 "trusted by this machine", code="tls") from exc
        except aiohttp.ClientError as exc:
            raise TransientError(f"{method} failed: {type(exc).__name__}: {exc}",
                                 code="connection") from exc
        text = raw.decode("utf-8", errors="replace")
        return Response(status=status, headers=resp_headers, body=_parse_json(text, truncated),
                        text=text[:2000], elapsed=loop.time() - start, truncated=truncated)

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
