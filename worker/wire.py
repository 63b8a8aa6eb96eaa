"""A lean HTTP/1.1 client engine: keep-alive connections on asyncio, parsed by httptools.

Why it exists: a job sends one small DELETE per run, and on a 2-vCPU machine aiohttp's client
costs 220-320 us of CPU per request, against ~90 us for the same exchange on a bare asyncio
protocol (bench/README.md). This engine keeps only what the job needs: HTTP/1.1 over TCP or
verified TLS, a bounded keep-alive pool per origin, Content-Length, chunked and close-delimited
bodies (llhttp, through httptools, does the parsing), gzip/deflate bodies, a body cap and one
timeout per exchange. No proxies, redirects, cookies or HTTP/2: the job needs none of them.

Errors stay inside the HTTP edge: ``worker.http`` translates ``WireError``, ``TimeoutError``
and ``OSError`` from here, and from the aiohttp engine, which raises the same ones.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict

CONNECT_TIMEOUT = 10.0
IDLE_SECONDS = 15.0  # drop pooled connections idle longer: servers close idle ones at ~60 s
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class WireError(Exception):
    """The exchange failed: connection closed early, unparseable answer, bad URL."""


class WireTLSError(WireError):
    """TLS verification or handshake failed: retrying cannot fix it."""


class ClosedBeforeAnswer(WireError):
    """The connection closed before one byte of the answer arrived."""


@dataclass(slots=True)
class RawResponse:
    """An answer as received: status, headers, the (decoded, capped) body. A transient carrier
    inside the HTTP edge: not frozen, since a frozen dataclass costs ~1 us more to build and
    one is built per request."""

    status: int
    headers: CIMultiDict[str]
    body: bytes
    truncated: bool


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request goes, parsed once per distinct origin and reused."""

    scheme: str
    host: str
    port: int
    host_header: str


class _Exchange:
    """The state of one response being received on a connection."""

    __slots__ = (
        "chunks",
        "done",
        "headers",
        "keep_alive",
        "received",
        "size",
        "status",
        "truncated",
        "waiter",
    )

    def __init__(self, waiter: asyncio.Future[RawResponse]) -> None:
        self.waiter = waiter
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []  # decoded once, when complete
        self.chunks: list[bytes] = []
        self.size = 0
        self.done = False
        self.truncated = False
        self.keep_alive = False
        self.received = False


class Connection(asyncio.Protocol):
    """One keep-alive connection; carries one exchange at a time."""

    def __init__(self, max_body: int) -> None:
        self._max_body = max_body
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._ex: _Exchange | None = None
        self.closed = False
        self.idle_since = 0.0

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._ex is None:  # bytes nobody asked for: the connection cannot be trusted
            self.close()
            return
        self._ex.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(WireError(f"unparseable HTTP answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ex = self._ex
        if ex is None or ex.waiter.done():
            return
        if ex.status and not _delimited(ex.headers):  # a body ended by the close: complete
            self.on_message_complete()
            return
        why = f" ({exc})" if exc else ""
        self._fail(WireError(f"connection closed before a complete answer{why}") if ex.received
                   else ClosedBeforeAnswer(f"connection closed before an answer{why}"))

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._ex is not None
        self._ex.headers.append((name, value))

    def on_headers_complete(self) -> None:
        ex = self._ex
        assert ex is not None
        ex.status = self._parser.get_status_code()
        ex.keep_alive = self._parser.should_keep_alive()  # only valid during the message

    def on_body(self, body: bytes) -> None:
        ex = self._ex
        assert ex is not None
        if ex.truncated:
            return
        room = self._max_body - ex.size
        if len(body) > room:
            ex.chunks.append(body[:room])  # keep what fits, answer now, drop the connection
            ex.size, ex.truncated = self._max_body, True
            self.on_message_complete()
            return
        ex.chunks.append(body)
        ex.size += len(body)

    def on_message_complete(self) -> None:
        ex = self._ex
        if ex is None or ex.done:
            return
        if 100 <= ex.status < 200 and ex.status != 101:  # interim (103 Early Hints...): skip
            ex.status, ex.headers, ex.chunks, ex.size = 0, [], [], 0
            return
        ex.done = True
        headers: CIMultiDict[str] = CIMultiDict(
            [(name.decode("latin-1"), value.decode("latin-1")) for name, value in ex.headers])
        try:
            body, truncated = _decode(b"".join(ex.chunks), headers, self._max_body)
        except zlib.error as exc:
            self._fail(WireError(f"undecodable {headers.get('Content-Encoding')} body: {exc}"))
            return
        if not ex.waiter.done():
            ex.waiter.set_result(RawResponse(ex.status, headers, body,
                                             truncated or ex.truncated))

    # -- used by the pool
    def begin(self, request: bytes, waiter: asyncio.Future[RawResponse]) -> None:
        assert self._transport is not None
        self._ex = _Exchange(waiter)
        self._transport.write(request)

    def reusable(self) -> bool:
        ex = self._ex
        return (not self.closed and ex is not None and ex.done and not ex.truncated
                and ex.keep_alive)

    def finish(self) -> None:
        self._ex = None

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, exc: Exception) -> None:
        ex = self._ex
        if ex is not None:
            ex.done = True
            if not ex.waiter.done():
                ex.waiter.set_exception(exc)
        self.close()


def _delimited(headers: list[tuple[bytes, bytes]]) -> bool:
    """Content-Length or chunked: the body's end is known without the connection closing."""
    return any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in headers)


def _decode(raw: bytes, headers: CIMultiDict[str], cap: int) -> tuple[bytes, bool]:
    """Undo gzip/deflate (capped at ``cap`` bytes after inflating); other bodies as they are."""
    coding = headers.get("Content-Encoding", "").strip().lower()
    if coding not in ("gzip", "deflate", "x-gzip") or not raw:
        return raw, False
    wbits = 31 if coding != "deflate" else (15 if raw[:1] == b"\x78" else -15)
    inflater = zlib.decompressobj(wbits)
    body = inflater.decompress(raw, cap + 1)
    return body[:cap], len(body) > cap


class WireEngine:
    """A bounded keep-alive pool: at most ``limit`` connections in use at once, all origins."""

    def __init__(self, *, limit: int, attempt_timeout: float, max_body: int,
                 connect_timeout: float = CONNECT_TIMEOUT,
                 ssl_context: ssl.SSLContext | None = None,
                 default_headers: Mapping[str, str] | None = None) -> None:
        self._slots = asyncio.Semaphore(max(limit, 1))
        self._timeout = attempt_timeout
        self._connect_timeout = min(connect_timeout, attempt_timeout)
        self._max_body = max_body
        self._ssl = ssl_context
        self._fixed = _header_lines(default_headers or {})  # encoded once, sent every time
        self._idle: dict[Origin, list[Connection]] = {}
        self._origins: dict[tuple[str, str], Origin] = {}
        self._deadlines: dict[asyncio.Future[RawResponse], float] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._tick = min(1.0, max(0.01, attempt_timeout / 10))
        self.resent = 0  # requests sent again after a pooled connection closed under them

    async def request(self, method: str, url: str, headers: Mapping[str, str],
                      body: bytes | None) -> RawResponse:
        """One exchange within the attempt timeout (connecting included).

        A pooled connection the server closed while idle fails before any byte of an answer
        (the close can cross our request on the wire); an idempotent request is then sent once
        more on a new connection, as browsers and aiohttp do. Any other failure is the caller's.
        """
        origin, target = self._split(url)
        request = _encode(method, target, origin.host_header, self._fixed, headers, body)
        loop = asyncio.get_running_loop()
        async with self._slots:
            now = loop.time()
            deadline = now + self._timeout
            conn = self._pooled(origin, now)
            if conn is not None:
                try:
                    return await self._exchange(origin, conn, request, deadline)
                except ClosedBeforeAnswer:
                    if method not in IDEMPOTENT:
                        raise
                    self.resent += 1
            conn = await self._connect(origin, deadline)
            return await self._exchange(origin, conn, request, deadline)

    async def _exchange(self, origin: Origin, conn: Connection, request: bytes,
                        deadline: float) -> RawResponse:
        """Send on ``conn`` and await the answer; pool the connection again when reusable.

        The deadline is kept by the engine's sweep (``_sweep``), not by a timer per exchange.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[RawResponse] = loop.create_future()
        self._deadlines[waiter] = deadline
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._tick, self._sweep)
        conn.begin(request, waiter)
        try:
            resp = await waiter
        except BaseException:
            conn.close()  # failed, cancelled or timed out mid-exchange: never reuse it
            raise
        finally:
            del self._deadlines[waiter]
        if conn.reusable():
            conn.finish()
            conn.idle_since = loop.time()
            self._idle.setdefault(origin, []).append(conn)
        else:
            conn.close()
        return resp

    def _sweep(self) -> None:
        """Fail every exchange past its deadline with TimeoutError; run again while any is in
        flight. One timer for all exchanges instead of one armed and cancelled per exchange
        (that costs ~4 us, and this runs once per cancel); a timeout fires at most one tick
        late (a tenth of the attempt timeout, at most 1 s)."""
        self._sweeper = None
        if not self._deadlines:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for waiter, deadline in list(self._deadlines.items()):
            if deadline <= now and not waiter.done():
                waiter.set_exception(TimeoutError("no complete answer within the attempt timeout"))
        self._sweeper = loop.call_later(self._tick, self._sweep)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def _pooled(self, origin: Origin, now: float) -> Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.close()
        return None

    async def _connect(self, origin: Origin, deadline: float) -> Connection:
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if origin.scheme == "https" else None
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + self._connect_timeout)):
                _, conn = await loop.create_connection(
                    lambda: Connection(self._max_body), origin.host, origin.port, ssl=tls,
                    server_hostname=origin.host if tls else None)
        except ssl.SSLError as exc:  # SSLCertVerificationError included
            raise WireTLSError(f"{type(exc).__name__}: {exc}") from exc
        return conn

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()  # verifies chain and host name
        return self._ssl

    def _split(self, url: str) -> tuple[Origin, str]:
        """(origin, request target). Origins are parsed once; paths arrive already quoted."""
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("http", "https"):
            raise WireError(f"unsupported URL {url!r}: only http:// and https://")
        cut = len(rest)
        for mark in "/?#":
            at = rest.find(mark)
            if 0 <= at < cut:
                cut = at
        authority, target = rest[:cut], rest[cut:].partition("#")[0]
        origin = self._origins.get((scheme, authority))
        if origin is None:
            origin = self._origins[scheme, authority] = _origin(scheme, authority)
        return origin, target if target.startswith("/") else "/" + target


def _origin(scheme: str, authority: str) -> Origin:
    parts = urlsplit(f"{scheme}://{authority}")
    if parts.hostname is None or parts.username is not None:
        raise WireError(f"unsupported URL authority {authority!r}")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    return Origin(scheme, host, port, shown if port == default else f"{shown}:{port}")


def _header_lines(headers: Mapping[str, str]) -> str:
    """``Name: value\\r\\n`` lines; refuses a CR or LF that would split or inject a header."""
    lines = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    if lines.count("\n") != len(headers) or lines.count("\r") != len(headers):
        raise WireError("refusing to send a header containing CR or LF")
    return lines


def _encode(method: str, target: str, host: str, fixed: str, headers: Mapping[str, str],
            body: bytes | None) -> bytes:
    if "\r" in target or "\n" in target:
        raise WireError("refusing to send a request target containing CR or LF")
    length = (f"Content-Length: {len(body or b'')}\r\n"
              if body is not None or method in ("POST", "PUT", "PATCH") else "")
    head = (f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{fixed}"
            f"{_header_lines(headers)}{length}\r\n")
    try:
        raw = head.encode()  # UTF-8, as aiohttp sends header values
    except UnicodeEncodeError as exc:
        raise WireError(f"unencodable request header or target: {exc}") from exc
    return raw + body if body else raw
