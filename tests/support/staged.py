"""Servers staged by tests, written byte by byte so they can do what real servers do and ours
never would: a scripted Zuora on a raw socket (any endpoint can answer hostile bytes), a forward
proxy (CONNECT and absolute-form), and a test CA made with openssl.

Each server runs its own event loop in a thread, so both in-process async tests and CLI
subprocesses can use it. Every loop is bounded: a hostile reply stops after a byte budget or
when the client goes away.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import shutil
import ssl
import subprocess
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

TOKEN = "tok-staged-0123456789"
API = "/reporting/api/rest/v1"
Writer = asyncio.StreamWriter
Reply = Callable[["Received", Writer], Awaitable[None]]


@dataclass(frozen=True)
class Received:
    """One request as a staged server read it off the wire."""

    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


class NotHttp(Exception):
    """The client spoke something else than HTTP (a TLS ClientHello to a plain port)."""


async def read_request(reader: asyncio.StreamReader) -> Received | None:
    """One HTTP/1.1 request (Content-Length bodies only); None when the client closed.

    Raises NotHttp when the first byte is no HTTP (a TLS ClientHello starts with 0x16)."""
    try:
        first = await reader.readexactly(1)
        if first[0] < 0x20:
            raise NotHttp
        head = first + await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    method, target, _ = line.split(" ", 2)
    headers = {n.strip().lower(): v.strip() for n, _, v in (h.partition(":") for h in lines)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Received(method, target, headers, body)


def answer(body: bytes | Any = b"", status: int = 200, headers: tuple[tuple[str, str], ...] = (),
           reason: str = "Whatever") -> bytes:
    """The bytes of one answer; a non-bytes body is sent as JSON."""
    if not isinstance(body, bytes):
        body = orjson.dumps(body)
        headers = (("Content-Type", "application/json"), *headers)
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{n}: {v}" for n, v in headers),
             f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def fixed(data: bytes) -> Reply:
    async def reply(_req: Received, writer: Writer) -> None:
        writer.write(data)
        await writer.drain()
    return reply


def run_item(run_id: str, status: str = "STARTED", age_s: float = 7200.0) -> dict[str, Any]:
    started = time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime(time.time() - age_s))
    return {"id": run_id, "reportId": "rep-1", "reportName": "Stuck", "reportType": "Detail",
            "status": status, "startedOn": started, "updatedOn": started,
            "createdByUserProfile": {"username": "alice@example.com"}}


# ---------------------------------------------------------------- hostile replies


def redirect(status: int, location: str) -> Reply:
    return fixed(answer(b"", status, (("Location", location),), reason="Moved"))


def endless_headers(budget: int = 512 * 2**20) -> Reply:
    """Header lines forever (up to ``budget`` bytes, or until the client hangs up)."""
    async def reply(_req: Received, writer: Writer) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        line = b"X-Filler: " + b"a" * 90 + b"\r\n"
        sent = 0
        while sent < budget and not writer.is_closing():
            writer.write(line * 100)
            sent += len(line) * 100
            await writer.drain()
    return reply


def long_header_line(size: int = 2**20) -> Reply:
    return fixed(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * size + b"\r\nContent-Length: 2\r\n\r\n{}")


def many_headers(count: int = 10_000) -> Reply:
    lines = b"".join(b"X-H%d: v\r\n" % i for i in range(count))
    return fixed(b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 2\r\n\r\n{}")


def gzip_bomb(inflated: int = 256 * 2**20) -> Reply:
    """A small gzip body (~250 KB) that inflates to ``inflated`` bytes of JSON-looking text;
    compressed a megabyte at a time, so the test process never holds the inflated text."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # a gzip container
    parts, chunk = [packer.compress(b'{"a":"')], b"0" * 2**20
    parts += [packer.compress(chunk) for _ in range(inflated // len(chunk))]
    body = b"".join(parts) + packer.compress(b'"}') + packer.flush()
    return fixed(answer(body, headers=(("Content-Type", "application/json"),
                                       ("Content-Encoding", "gzip"))))


def deep_json(depth: int = 100_000) -> Reply:
    body = b"[" * depth + b"]" * depth
    return fixed(answer(body, headers=(("Content-Type", "application/json"),)))


def status_page(status: int, body: bytes, content_type: str) -> Reply:
    return fixed(answer(body, status, (("Content-Type", content_type),)))


NGINX_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center>"
             b"<h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n"
             b"</body>\r\n</html>\r\n")
PROBLEM_404 = orjson.dumps({"type": "https://stoplight.io/prism/errors#NO_PATH_MATCHED_ERROR",
                            "title": "Route not resolved, no path matched",
                            "status": 404,
                            "detail": "The route /reportruns hasn't been found in the spec"})


# ---------------------------------------------------------------- the threaded server base


class ThreadedServer:
    """An asyncio server on 127.0.0.1 in its own thread; subclasses implement ``handle``."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        future.result(10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._guarded, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _guarded(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        try:
            await self.handle(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


# ---------------------------------------------------------------- a scripted Zuora


@dataclass
class Script:
    """What the scripted Zuora serves: the runs on listing page 1 (later pages are empty), and
    replies that replace the normal answer of an endpoint (``token``, ``list``, ``list2`` for
    page 2 and later, ``get``, ``delete``, ``other`` for any other path)."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[str, Reply] = field(default_factory=dict)
    later_pages: list[list[dict[str, Any]]] = field(default_factory=list)  # pages 2, 3, ...
    applied_behind: bool = False  # a replaced DELETE answer was still applied (a gateway's)


class ScriptedZuora(ThreadedServer):
    """Token, listing, GET and DELETE of the Reporting API, each replaceable by a hostile reply.

    Any other path (a webhook, a Pushgateway) gets ``200 {}``. Every request is recorded.
    """

    def __init__(self, script: Script | None = None, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(tls)
        self.script = script or Script()
        self.requests: list[Received] = []
        self.cancelled: set[str] = set()  # ids a DELETE reached (whatever it was answered)

    def seen(self, endpoint: str) -> list[Received]:
        return [r for r in self.requests if endpoint_of(r) == endpoint]

    async def handle(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        try:
            await self._serve(reader, writer)
        except NotHttp:  # what nginx does with a TLS ClientHello on a plain port
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
            await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        while (req := await read_request(reader)) is not None:
            self.requests.append(req)
            endpoint = endpoint_of(req)
            custom = self.script.replies.get(endpoint)
            if endpoint == "delete" and (custom is None or self.script.applied_behind):
                self.cancelled.add(req.path.rsplit("/", 1)[1])
            await (custom or self._normal)(req, writer)
            if custom is not None:
                return  # a hostile reply ends its connection

    async def _normal(self, req: Received, writer: Writer) -> None:
        writer.write(answer(self._body(req)))
        await writer.drain()

    def _body(self, req: Received) -> Any:
        endpoint = endpoint_of(req)
        if endpoint == "token":
            return {"access_token": TOKEN, "token_type": "bearer", "expires_in": 3600}
        if endpoint == "list":
            return {"success": True, "response": self.script.runs}
        if endpoint == "list2":
            page = req.json()["pagination"]["currentPage"]
            later = self.script.later_pages
            return {"success": True, "response": later[page - 2] if page - 2 < len(later) else []}
        run_id = req.path.rsplit("/", 1)[1]
        if endpoint == "get":
            item = next((r for r in self.script.runs if r["id"] == run_id), run_item(run_id))
            if run_id in self.cancelled:
                item = {**item, "status": "CANCELED"}
            return {"success": True, "response": item}
        if endpoint == "delete":
            return {"success": True, "response": f"Report run {run_id} is being cancelled"}
        return {}


def endpoint_of(req: Received) -> str:
    path = req.path
    if path == "/oauth/token":
        return "token"
    if path.endswith("/reportruns") and req.method == "POST":
        page = (req.json() or {}).get("pagination", {}).get("currentPage", 1)
        return "list" if page == 1 else "list2"
    if re.search(r"/reportruns/[^/]+$", path):
        return {"GET": "get", "DELETE": "delete"}.get(req.method, "other")
    return "other"


# ---------------------------------------------------------------- a forward proxy


class ForwardProxy(ThreadedServer):
    """A forward proxy: CONNECT tunnels and absolute-form requests, each recorded.

    ``seen`` holds ``"CONNECT host:port"`` or ``"METHOD absolute-url"``; ``auth`` the
    Proxy-Authorization headers received. With ``require`` set (``user:password``), a request
    without those credentials gets a 407.
    """

    def __init__(self, require: str | None = None) -> None:
        super().__init__()
        self.require = require
        self.seen: list[str] = []
        self.auth: list[str] = []

    def _allowed(self, req: Received) -> bool:
        header = req.headers.get("proxy-authorization")
        if header:
            self.auth.append(header)
        if self.require is None:
            return True
        return header == "Basic " + base64.b64encode(self.require.encode()).decode()

    async def handle(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        upstreams: dict[str, tuple[asyncio.StreamReader, Writer]] = {}
        try:
            while (req := await read_request(reader)) is not None:
                self.seen.append(f"{req.method} {req.target}")
                if not self._allowed(req):
                    writer.write(answer(b"", 407, (("Proxy-Authenticate", "Basic"),)))
                    await writer.drain()
                    return
                if req.method == "CONNECT":
                    await self._tunnel(req.target, reader, writer)
                    return
                await self._forward(req, upstreams, writer)
        finally:
            for _, up in upstreams.values():
                up.close()

    async def _tunnel(self, target: str, reader: asyncio.StreamReader, writer: Writer) -> None:
        host, _, port = target.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer),
                             return_exceptions=True)

    async def _forward(self, req: Received, upstreams: dict[str, Any], writer: Writer) -> None:
        url = urlsplit(req.target)
        if url.netloc not in upstreams:
            upstreams[url.netloc] = await asyncio.open_connection(url.hostname, url.port or 80)
        up_reader, up_writer = upstreams[url.netloc]
        headers = {k: v for k, v in req.headers.items()
                   if k not in ("proxy-authorization", "proxy-connection")}
        head = [f"{req.method} {url.path or '/'}{'?' + url.query if url.query else ''} HTTP/1.1",
                *(f"{k}: {v}" for k, v in headers.items())]
        up_writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + req.body)
        await up_writer.drain()
        writer.write(await _read_answer(up_reader))
        await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: Writer) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def _read_answer(reader: asyncio.StreamReader) -> bytes:
    """One whole answer: Content-Length or chunked bodies (what our servers send)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    found = re.search(rb"\r\ncontent-length:\s*(\d+)", lower)
    if found:
        return head + await reader.readexactly(int(found.group(1)))
    if b"transfer-encoding: chunked" not in lower:
        return head
    body = b""
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        body += size_line + await reader.readexactly(size + 2)
        if size == 0:
            return head + body


# ---------------------------------------------------------------- a test CA


@dataclass(frozen=True)
class PrivateCA:
    """A CA and server certificates signed by it (PEM files in ``folder``)."""

    folder: Path

    @property
    def ca_file(self) -> str:
        return str(self.folder / "ca.pem")

    def server_context(self, name: str = "good") -> ssl.SSLContext:
        """``good`` (localhost, 127.0.0.1), ``wrong_name`` (other.invalid) or ``expired``."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.folder / f"{name}.pem", self.folder / "srv.key")
        return context


def make_ca(folder: Path) -> PrivateCA:
    """Make the CA and its certificates with openssl (openssl(1), as real-servers.md does)."""
    if shutil.which("openssl") is None:
        import pytest
        pytest.skip("openssl is not installed")
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "srv.key",
        "-out", "srv.csr")
    sans = {"good": "DNS:localhost,IP:127.0.0.1", "wrong_name": "DNS:other.invalid",
            "expired": "DNS:localhost,IP:127.0.0.1"}
    for name, san in sans.items():
        (folder / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "0" if name == "expired" else "2",
            "-extfile", f"{name}.ext", "-out", f"{name}.pem")
    time.sleep(1.1)  # "-days 0" ends validity now: a second later the certificate has expired
    return PrivateCA(folder)
