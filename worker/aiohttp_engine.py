"""The aiohttp engine: the same exchange as ``worker.wire`` through aiohttp's full client.

Used for the webhook (a server anywhere, behind anything) and as the ``--http-client aiohttp``
escape hatch. aiohttp's errors are translated here into the engine-neutral ``WireError`` and
``WireTLSError`` (``TimeoutError`` passes as it is), which ``worker.http`` maps for the worker.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

import aiohttp
from multidict import CIMultiDict

from worker.wire import CONNECT_TIMEOUT, RawResponse, WireError, WireTLSError


class AiohttpEngine:
    """The same exchange through aiohttp's client (the webhook's engine, and a fallback)."""

    def __init__(self, limit: int, attempt_timeout: float, max_body: int,
                 default_headers: Mapping[str, str] | None = None) -> None:
        connector = aiohttp.TCPConnector(limit=limit, ttl_dns_cache=300, family=socket.AF_UNSPEC)
        timeout = aiohttp.ClientTimeout(total=attempt_timeout,
                                        sock_connect=min(CONNECT_TIMEOUT, attempt_timeout))
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                              raise_for_status=False,
                                              headers=default_headers,
                                              skip_auto_headers=("Content-Type",))
        self._max_body = max_body
        # aiohttp also resends a request on a closed keep-alive connection, but does not say
        # how often: unknown
        self.resent: int | None = None

    async def request(self, method: str, url: str, headers: Mapping[str, str],
                      body: bytes | None) -> RawResponse:
        try:
            async with self._session.request(method, url, headers=headers, data=body) as resp:
                raw, truncated = await self._read(resp)
                return RawResponse(resp.status, CIMultiDict(resp.headers), raw, truncated)
        except TimeoutError:
            raise  # aiohttp's timeouts are also ClientErrors: keep them timeouts
        except (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch) as exc:
            raise WireTLSError(f"{type(exc).__name__}: {exc}") from exc
        except (aiohttp.ClientError, ValueError) as exc:  # ValueError: a CR/LF in a header
            raise WireError(f"{type(exc).__name__}: {exc}") from exc

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
