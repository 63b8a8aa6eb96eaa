"""The HTTP engines over real loopback sockets: a scripted raw server answers exact bytes.

Most tests go through ``Transport`` and run on both engines (``builtin`` = ``worker.wire``,
``aiohttp``) to prove they answer alike; connection-reuse counts are checked on the builtin
engine, whose pool is ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import shutil
import ssl
import subprocess
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from multidict import CIMultiDict

from worker.config import Settings
from worker.emulator import Emulator
from worker.errors import ApiUnreachable, TransientError
from worker.http import Transport
from worker.models import Outcome
from worker.wire import WireEngine, WireError, WireTLSError

ENGINES = ["builtin", "aiohttp"]
BIG = 64 * 1024


# -- the scripted server ---------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """What the server does with one request: write ``reply``, then maybe close or hang."""

    reply: bytes = b""
    close: bool = False  # FIN right after the reply (socket shutdown, no delay), then close
    hang: bool = False  # never answer; wait for the client to go away
    split: int = 0  # write the reply in pieces of this many bytes, each its own segment


@dataclass(frozen=True)
class Received:
    """One request as the server read it off the wire."""

    conn: int
    method: str
    target: str
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class RawServer:
    """An ``asyncio.start_server`` that answers requests in order with scripted ``Step``s."""

    steps: list[Step] = field(default_factory=list)
    connections: int = 0
    requests: list[Received] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)
    port: int = 0
    scheme: str = "http"
    _served: int = 0
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _server: asyncio.Server | None = None

    def script(self, *steps: Step) -> None:
        """Answer the next requests with ``steps``; the last step repeats once they run out."""
        self.steps, self._served = list(steps), 0

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    async def start(self, tls: ssl.SSLContext | None = None) -> None:
        self.scheme = "https" if tls else "http"
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _next_step(self) -> Step:
        step = self.steps[min(self._served, len(self.steps) - 1)] if self.steps else Step()
        self._served += 1
        return step

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        conn = self.connections
        try:
            while await self._serve_one(conn, reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(task)

    async def _serve_one(self, conn: int, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> bool:
        """Read one request and play the next step; False when the connection is done."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            self.raw += exc.partial
            return False
        self.raw += head
        request_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        method, target, _ = request_line.split(" ", 2)
        headers: CIMultiDict[str] = CIMultiDict(
            (name.strip(), value.strip()) for name, _, value in (h.partition(":") for h in lines))
        body = await reader.readexactly(int(headers.get("Content-Length", "0")))
        self.raw += body
        self.requests.append(Received(conn, method, target, headers, body))
        step = self._next_step()
        if step.hang:
            await reader.read()  # until the client closes or aborts
            return False
        size = step.split or max(len(step.reply), 1)
        for start in range(0, len(step.reply), size):
            writer.write(step.reply[start:start + size])
            if step.split:
                await writer.drain()
                await asyncio.sleep(0.002)  # lets the client read each piece on its own
        if step.close:
            writer.write_eof()  # FIN goes out now, right behind the answer
            return False
        await writer.drain()
        return True


@pytest.fixture
async def server() -> AsyncIterator[RawServer]:
    """A scripted plain-HTTP server on 127.0.0.1, stopped after the test."""
    srv = RawServer()
    await srv.start()
    yield srv
    await srv.stop()


def answer(body: bytes = b'{"ok": true}', status: str = "200 OK",
           headers: Iterable[tuple[str, str]] = (), *, length: bool = True) -> bytes:
    """The bytes of one HTTP/1.1 answer (with a Content-Length unless ``length`` is False)."""
    lines = [f"HTTP/1.1 {status}", *(f"{n}: {v}" for n, v in headers)]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*parts: bytes) -> bytes:
    """``parts`` as a chunked transfer coding, terminated by the zero chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


CLOSE = ("Connection", "close")
OK = Step(answer())


# -- connection reuse ------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_keep_alive_reuses_one_connection(server: RawServer, engine: str) -> None:
    """Twenty sequential requests on a keep-alive server travel over a single connection."""
    server.script(OK)
    async with Transport(limit=4, attempt_timeout=2, engine=engine) as transport:
        for i in range(20):
            resp = await transport.send("GET", server.url(f"/r/{i}"), headers={})
            assert resp.status == 200
            assert resp.body == {"ok": True}
    assert len(server.requests) == 20
    assert server.connections == 1
    assert [r.target for r in server.requests] == [f"/r/{i}" for i in range(20)]


@pytest.mark.parametrize("engine", ENGINES)
async def test_connection_close_answers_open_new_connections(server: RawServer,
                                                             engine: str) -> None:
    """When every answer says Connection: close, each request opens its own connection."""
    server.script(Step(answer(headers=[CLOSE])))
    async with Transport(limit=4, attempt_timeout=2, engine=engine) as transport:
        statuses = [(await transport.send("GET", server.url(), headers={})).status
                    for _ in range(5)]
    assert statuses == [200] * 5
    assert server.connections == 5
    assert [r.conn for r in server.requests] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("engine", ENGINES)
async def test_idle_connection_closed_by_server_is_replaced(server: RawServer,
                                                            engine: str) -> None:
    """A pooled connection the server closed while idle is noticed; the next request succeeds."""
    server.script(Step(answer(), close=True), OK)  # keep-alive answer, then the server hangs up
    async with Transport(limit=4, attempt_timeout=2, engine=engine) as transport:
        first = await transport.send("GET", server.url("/a"), headers={})
        await asyncio.sleep(0.05)  # the connection sits idle; the FIN arrives meanwhile
        second = await transport.send("GET", server.url("/b"), headers={})
    assert (first.status, second.status) == (200, 200)
    assert [(r.conn, r.target) for r in server.requests] == [(1, "/a"), (2, "/b")]


@pytest.mark.parametrize("engine", ENGINES)
async def test_server_hangup_right_after_answer_is_survived(server: RawServer,
                                                            engine: str) -> None:
    """A server that hangs up right behind a keep-alive answer does not fail the next GET;
    the builtin engine counts the resend (aiohttp resends without saying)."""
    server.script(Step(answer(), close=True), OK)
    async with Transport(limit=4, attempt_timeout=2, engine=engine) as transport:
        await transport.send("GET", server.url("/a"), headers={})
        second = await transport.send("GET", server.url("/b"), headers={})
    assert second.status == 200
    assert server.requests[-1].target == "/b"
    assert transport.resent == (1 if engine == "builtin" else None)  # kept after closing


async def test_post_is_not_resent_on_a_connection_found_closed(server: RawServer) -> None:
    """A POST on a pooled connection the server closed is never resent: the caller decides."""
    server.script(Step(answer(), close=True), OK)
    async with Transport(limit=4, attempt_timeout=2, engine="builtin") as transport:
        await transport.send("GET", server.url("/a"), headers={})
        with pytest.raises(TransientError) as caught:
            await transport.send("POST", server.url("/b"), headers={}, json_body={"x": 1})
    assert caught.value.code == "connection"
    assert [r.target for r in server.requests] == ["/a"]


# -- body framing ----------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_chunked_body_is_reassembled(server: RawServer, engine: str) -> None:
    """A chunked answer in several chunks, arriving in odd-sized pieces, is joined and parsed."""
    payload = json.dumps({"data": [{"id": f"run-{i}"} for i in range(50)]}).encode()
    parts = [payload[i:i + 300] for i in range(0, len(payload), 300)]
    assert len(parts) >= 3
    server.script(Step(answer(chunked(*parts), headers=[("Transfer-Encoding", "chunked")],
                              length=False), split=97), OK)
    async with Transport(limit=4, attempt_timeout=2, engine=engine) as transport:
        resp = await transport.send("GET", server.url(), headers={})
        after = await transport.send("GET", server.url(), headers={})
    assert resp.body == json.loads(payload)
    assert not resp.truncated
    assert after.body == {"ok": True}
    assert server.connections == 1  # a chunked body ends without closing the connection


@pytest.mark.parametrize("engine", ENGINES)
async def test_close_delimited_body_is_complete(server: RawServer, engine: str) -> None:
    """An answer with neither Content-Length nor chunking ends at the close and is whole."""
    payload = json.dumps({"items": list(range(2000))}).encode()
    server.script(Step(answer(payload, length=False), close=True))
    async with Transport(limit=4, attempt_timeout=2, engine=engine) as transport:
        resp = await transport.send("GET", server.url(), headers={})
    assert resp.status == 200
    assert resp.body == {"items": list(range(2000))}


@pytest.mark.parametrize("engine", ENGINES)
async def test_close_before_answer_is_connection_error(server: RawServer, engine: str) -> None:
    """A server that reads the request and hangs up gives TransientError 'connection' at once."""
    server.script(Step(close=True))
    started = time.monotonic()
    async with Transport(limit=4, attempt_timeout=5, engine=engine) as transport:
        with pytest.raises(TransientError) as caught:
            await transport.send("GET", server.url(), headers={})
    assert caught.value.code == "connection"
    assert time.monotonic() - started < 2  # noticed, not waited out
    # builtin never resends (retries are the client's, counted against its budget); aiohttp
    # resends an idempotent request once on a fresh connection after a server disconnect
    assert len(server.requests) == {"builtin": 1, "aiohttp": 2}[engine]


@pytest.mark.parametrize("engine", ENGINES)
async def test_body_shorter_than_content_length_is_connection_error(server: RawServer,
                                                                    engine: str) -> None:
    """A close before the declared Content-Length arrives is an error, not a short body."""
    server.script(Step(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\": 1}", close=True))
    async with Transport(limit=4, attempt_timeout=5, engine=engine) as transport:
        with pytest.raises(TransientError) as caught:
            await transport.send("GET", server.url(), headers={})
    assert caught.value.code == "connection"


@pytest.mark.parametrize("garbage", [
    b"NOT HTTP\r\n\r\n", b"HTTP/1.1 2x0 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n{}",
    pytest.param(answer(b"this is not gzip at all", headers=[("Content-Encoding", "gzip")]),
                 id="corrupt-gzip"),
])
@pytest.mark.parametrize("engine", ENGINES)
async def test_garbage_answer_is_connection_error(server: RawServer, engine: str,
                                                  garbage: bytes) -> None:
    """An answer that is not HTTP (or a body that claims gzip but is not) gives 'connection'."""
    server.script(Step(garbage))
    async with Transport(limit=4, attempt_timeout=2, engine=engine) as transport:
        with pytest.raises(TransientError) as caught:
            await transport.send("GET", server.url(), headers={})
    assert caught.value.code == "connection"


@pytest.mark.parametrize("engine", ENGINES)
async def test_interim_1xx_answer_is_skipped(server: RawServer, engine: str) -> None:
    """A 103 Early Hints before the final answer is skipped; the final 200 is returned."""
    server.script(Step(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + answer()))
    async with Transport(limit=4, attempt_timeout=2, engine=engine) as transport:
        resp = await transport.send("GET", server.url(), headers={})
    assert (resp.status, resp.body) == (200, {"ok": True})


# -- body cap --------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_body_over_cap_is_truncated(server: RawServer, engine: str, framing: str) -> None:
    """A body over max_body_bytes gives truncated=True and body None; the request succeeds."""
    payload = json.dumps({"x": "y" * 5000}).encode()
    reply = (answer(payload) if framing == "length" else
             answer(chunked(payload[:2000], payload[2000:]),
                    headers=[("Transfer-Encoding", "chunked")], length=False))
    server.script(Step(reply), OK)
    async with Transport(limit=4, attempt_timeout=2, max_body_bytes=1000,
                         engine=engine) as transport:
        resp = await transport.send("GET", server.url("/big"), headers={})
        after = await transport.send("GET", server.url("/small"), headers={})
    assert resp.status == 200
    assert resp.truncated is True
    assert resp.body is None
    assert after.body == {"ok": True}
    assert not after.truncated
    assert [r.target for r in server.requests] == ["/big", "/small"]


async def test_truncated_connection_is_not_reused(server: RawServer) -> None:
    """After a truncated body the builtin engine drops that connection and opens a new one."""
    server.script(Step(answer(b"z" * 5000)), OK)
    async with Transport(limit=4, attempt_timeout=2, max_body_bytes=1000) as transport:
        assert (await transport.send("GET", server.url(), headers={})).truncated
        assert (await transport.send("GET", server.url(), headers={})).body == {"ok": True}
    assert [r.conn for r in server.requests] == [1, 2]


@pytest.mark.parametrize("engine", ENGINES)
async def test_truncated_body_is_cut_at_cap(server: RawServer, engine: str) -> None:
    """What is kept of a truncated body is at most max_body_bytes."""
    server.script(Step(answer(b"z" * 5000)))
    async with Transport(limit=4, attempt_timeout=2, max_body_bytes=1000,
                         engine=engine) as transport:
        resp = await transport.send("GET", server.url(), headers={})
    assert resp.truncated
    assert len(resp.text) <= 1000


# -- content codings -------------------------------------------------------------------------


def _deflate_raw(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-15)
    return packer.compress(data) + packer.flush()


CODINGS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "deflate-zlib": ("deflate", zlib.compress),
    "deflate-raw": ("deflate", _deflate_raw),
}


@pytest.mark.parametrize("coding", list(CODINGS))
@pytest.mark.parametrize("engine", ENGINES)
async def test_compressed_body_is_decoded(server: RawServer, engine: str, coding: str) -> None:
    """gzip and deflate (zlib-wrapped or raw) bodies are inflated and parsed as JSON."""
    name, compress = CODINGS[coding]
    data = {"runs": [{"id": f"r{i}", "status": "STARTED"} for i in range(200)]}
    packed = compress(json.dumps(data).encode())
    server.script(Step(answer(packed, headers=[("Content-Encoding", name)])))
    async with Transport(limit=4, attempt_timeout=2, engine=engine) as transport:
        resp = await transport.send("GET", server.url(), headers={})
    assert resp.body == data
    assert server.requests[0].headers["Accept-Encoding"] == "gzip, deflate"


@pytest.mark.parametrize("engine", ENGINES)
async def test_gzip_bomb_is_truncated_at_cap(server: RawServer, engine: str) -> None:
    """A small gzip body that inflates past max_body_bytes is truncated, not inflated whole."""
    packed = gzip.compress(b" " * 2_000_000)
    assert len(packed) < 10_000
    server.script(Step(answer(packed, headers=[("Content-Encoding", "gzip")])))
    async with Transport(limit=4, attempt_timeout=2, max_body_bytes=BIG,
                         engine=engine) as transport:
        resp = await transport.send("GET", server.url(), headers={})
    assert resp.truncated
    assert resp.body is None


# -- timeouts --------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_attempt_timeout_then_fresh_connection(server: RawServer, engine: str) -> None:
    """A server that never answers gives 'timeout' within ~0.3 s; the next request reconnects."""
    server.script(Step(hang=True), OK)
    async with Transport(limit=4, attempt_timeout=0.3, engine=engine) as transport:
        started = time.monotonic()
        with pytest.raises(TransientError) as caught:
            await transport.send("GET", server.url("/slow"), headers={})
        waited = time.monotonic() - started
        resp = await transport.send("GET", server.url("/next"), headers={})
    assert caught.value.code == "timeout"
    assert 0.25 <= waited < 1.0
    assert resp.body == {"ok": True}
    assert [(r.conn, r.target) for r in server.requests] == [(1, "/slow"), (2, "/next")]


async def test_timed_out_pooled_connection_is_dropped(server: RawServer) -> None:
    """A keep-alive connection that times out mid-exchange is never handed out again."""
    server.script(OK, Step(hang=True), OK)
    async with Transport(limit=4, attempt_timeout=0.3) as transport:
        await transport.send("GET", server.url("/1"), headers={})
        with pytest.raises(TransientError, match="timed out"):
            await transport.send("GET", server.url("/2"), headers={})
        await transport.send("GET", server.url("/3"), headers={})
    assert [(r.conn, r.target) for r in server.requests] == [(1, "/1"), (1, "/2"), (2, "/3")]


# -- what goes on the wire -------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_request_bytes_on_the_wire(server: RawServer, engine: str) -> None:
    """Host carries the port; JSON, form and params are encoded; a bodiless DELETE has none."""
    server.script(OK)
    payload = {"name": "r1", "n": [1, 2], "s": "é"}
    async with Transport(limit=4, attempt_timeout=2, engine=engine) as transport:
        await transport.send("POST", server.url("/json"), headers={"X-Trace": "t1"},
                             json_body=payload)
        await transport.send("POST", server.url("/oauth/token"), headers={},
                             form={"grant_type": "client_credentials", "x": "a b&c=d"})
        await transport.send("GET", server.url("/list"), headers={},
                             params=[("status", "STARTED"), ("q", "a b/é&")])
        await transport.send("DELETE", server.url("/reportruns/r1"), headers={})
    posted, form, listed, deleted = server.requests
    assert all(r.headers["Host"] == f"127.0.0.1:{server.port}" for r in server.requests)
    assert posted.method == "POST"
    assert posted.target == "/json"
    assert posted.headers["Content-Type"] == "application/json"
    assert int(posted.headers["Content-Length"]) == len(posted.body)
    assert json.loads(posted.body) == payload
    assert posted.headers["X-Trace"] == "t1"
    assert form.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qsl(form.body.decode()) == [("grant_type", "client_credentials"),
                                             ("x", "a b&c=d")]
    assert int(form.headers["Content-Length"]) == len(form.body)
    parts = urlsplit(listed.target)
    assert parts.path == "/list"
    assert parse_qsl(parts.query) == [("status", "STARTED"), ("q", "a b/é&")]
    assert deleted.method == "DELETE"
    assert deleted.body == b""
    assert "Transfer-Encoding" not in deleted.headers
    assert deleted.headers.get("Content-Length", "0") == "0"
    assert "Content-Type" not in deleted.headers
    assert all(r.headers["User-Agent"].startswith("zuora-reaper/") for r in server.requests)


@pytest.mark.parametrize("engine", ENGINES)
async def test_params_on_a_url_without_path(server: RawServer, engine: str) -> None:
    """Params on a bare origin URL still reach the server as the query of '/'."""
    server.script(OK)
    async with Transport(limit=4, attempt_timeout=2, engine=engine) as transport:
        await transport.send("GET", f"http://127.0.0.1:{server.port}", headers={},
                             params=[("a", "1")])
    assert server.requests[0].target == "/?a=1"


@pytest.mark.parametrize("where", ["header", "path"])
@pytest.mark.parametrize("bad", ["\r\n", "\n", "\r"])
async def test_cr_lf_in_request_is_refused_before_sending(server: RawServer, where: str,
                                                          bad: str) -> None:
    """A CR or LF in a header value or the path is refused before any connection is made."""
    headers = {"X-Note": f"a{bad}X-Injected: 1"} if where == "header" else {}
    path = f"/a{bad}X-Injected: 1" if where == "path" else "/a"
    async with Transport(limit=4, attempt_timeout=2) as transport:
        with pytest.raises(TransientError, match="CR or LF") as caught:
            await transport.send("GET", server.url(path), headers=headers)
    assert caught.value.code == "connection"
    engine = WireEngine(limit=1, attempt_timeout=2, max_body=BIG)
    with pytest.raises(WireError, match="CR or LF"):
        await engine.request("GET", server.url(path), headers, None)
    await engine.close()
    await asyncio.sleep(0.02)  # anything sent would have reached the server by now
    assert server.connections == 0
    assert bytes(server.raw) == b""


@pytest.mark.parametrize("engine", ENGINES)
async def test_cr_lf_header_is_a_transient_error_on_both_engines(server: RawServer,
                                                                 engine: str) -> None:
    """Both engines refuse a CR/LF header with TransientError 'connection', sending no bytes."""
    async with Transport(limit=4, attempt_timeout=2, engine=engine) as transport:
        with pytest.raises(TransientError) as caught:
            await transport.send("GET", server.url(), headers={"X-Note": "a\r\nX-Injected: 1"})
    assert caught.value.code == "connection"
    assert bytes(server.raw) == b""


@pytest.mark.parametrize("engine", ENGINES)
async def test_non_latin1_header_never_escapes_untyped(server: RawServer, engine: str) -> None:
    """A header value outside latin-1 is sent or refused as a worker error, never a raw one."""
    server.script(OK)
    async with Transport(limit=4, attempt_timeout=2, engine=engine) as transport:
        resp = await transport.send("GET", server.url(), headers={"Zuora-Entity-Ids": "€"})
    assert resp.status == 200
    assert "Zuora-Entity-Ids: €".encode() in bytes(server.raw)  # sent as UTF-8, as aiohttp does


@pytest.mark.parametrize("engine", ENGINES)
async def test_response_headers_are_case_insensitive(server: RawServer, engine: str) -> None:
    """Response headers are found whatever the case of the name asked for."""
    server.script(Step(answer(headers=[("RateLimit-Remaining", "7"), ("retry-after", "3"),
                                       ("X-Multi", "a"), ("x-multi", "b")])))
    async with Transport(limit=4, attempt_timeout=2, engine=engine) as transport:
        resp = await transport.send("GET", server.url(), headers={})
    assert resp.header("ratelimit-remaining") == "7"
    assert resp.header("RATELIMIT-REMAINING") == "7"
    assert resp.header("Retry-After") == "3"
    assert resp.header("x-missing") is None
    assert isinstance(resp.headers, CIMultiDict)
    assert resp.headers.getall("X-MULTI") == ["a", "b"]


@pytest.mark.parametrize("engine", ENGINES)
async def test_connection_refused_is_connection_error(engine: str) -> None:
    """A port nobody listens on gives TransientError 'connection' quickly."""
    probe = RawServer()
    await probe.start()
    await probe.stop()  # the port is now closed
    async with Transport(limit=4, attempt_timeout=2, engine=engine) as transport:
        with pytest.raises(TransientError) as caught:
            await transport.send("GET", probe.url(), headers={})
    assert caught.value.code == "connection"


# -- TLS -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cert:
    """A self-signed certificate on disk and a server context serving it."""

    cert: Path
    server: ssl.SSLContext

    def client(self) -> ssl.SSLContext:
        """A verifying client context that trusts exactly this certificate."""
        return ssl.create_default_context(cafile=str(self.cert))


def _self_signed(directory: Path, name: str, san: str) -> Cert:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return Cert(cert, context)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cert]:
    """Two self-signed certificates: one for 127.0.0.1, one for example.invalid."""
    directory = tmp_path_factory.mktemp("certs")
    return {"loopback": _self_signed(directory, "127.0.0.1", "IP:127.0.0.1"),
            "other": _self_signed(directory, "example.invalid", "DNS:example.invalid")}


@pytest.fixture
async def tls_server(certs: dict[str, Cert]) -> AsyncIterator[Callable[[str], Any]]:
    """Factory: ``await tls_server("loopback"|"other")`` serves that certificate."""
    started: list[RawServer] = []

    async def start(which: str) -> RawServer:
        srv = RawServer()
        srv.script(OK)
        await srv.start(tls=certs[which].server)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        await srv.stop()


async def test_tls_with_trusted_certificate_succeeds(tls_server: Callable[[str], Any],
                                                     certs: dict[str, Cert]) -> None:
    """https to a server whose self-signed certificate the context trusts works, keep-alive too."""
    srv: RawServer = await tls_server("loopback")
    engine = WireEngine(limit=2, attempt_timeout=5, max_body=BIG,
                        ssl_context=certs["loopback"].client())
    try:
        first = await engine.request("GET", srv.url("/a"), {}, None)
        second = await engine.request("GET", srv.url("/b"), {}, None)
    finally:
        await engine.close()
    assert (first.status, json.loads(first.body)) == (200, {"ok": True})
    assert second.status == 200
    assert [r.target for r in srv.requests] == ["/a", "/b"]
    assert srv.connections == 1


@pytest.mark.parametrize("engine", ENGINES)
async def test_tls_untrusted_certificate_is_api_unreachable(tls_server: Callable[[str], Any],
                                                            engine: str) -> None:
    """With the default trust store a self-signed certificate is ApiUnreachable 'tls'."""
    srv: RawServer = await tls_server("loopback")
    async with Transport(limit=2, attempt_timeout=5, engine=engine) as transport:
        with pytest.raises(ApiUnreachable) as caught:
            await transport.send("GET", srv.url(), headers={})
    assert caught.value.code == "tls"
    assert not isinstance(caught.value, TransientError)
    assert srv.requests == []


async def test_tls_wrong_host_name_is_refused(tls_server: Callable[[str], Any],
                                              certs: dict[str, Cert]) -> None:
    """A trusted certificate for another name (example.invalid) is refused: the host is checked."""
    srv: RawServer = await tls_server("other")
    engine = WireEngine(limit=2, attempt_timeout=5, max_body=BIG,
                        ssl_context=certs["other"].client())
    try:
        with pytest.raises(WireTLSError, match=r"(?i)hostname|IP address mismatch"):
            await engine.request("GET", srv.url(), {}, None)
    finally:
        await engine.close()
    assert srv.requests == []


# -- a whole job against the emulator --------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_run_job_cancels_with_each_engine(make_emulator: Callable[..., Any],
                                                job_settings: Callable[..., Settings],
                                                job: Callable[..., Any], engine: str) -> None:
    """A full run_job on either engine cancels every old in-progress run with one DELETE each."""
    emu: Emulator = await make_emulator(runs=0)
    ids = {f"r{i}" for i in range(6)}
    for run_id in sorted(ids):
        emu.add_run(run_id=run_id, status="PROCESSINGDATA", age_s=7200)
    emu.add_run(run_id="young", age_s=60)
    settings = job_settings(emu, "run", {"pacing.http_client": engine,
                                         "filters.older_than": "1h"})
    assert settings.pacing.http_client == engine
    result = await job(settings)
    assert result.error is None
    outcomes = {k: r.outcome for k, r in result.records.items() if r.selected}
    assert outcomes == dict.fromkeys(ids, Outcome.CANCELLED)
    assert emu.cancelled_ids() == ids
    assert len(emu.deletes()) == len(ids)
    assert emu.runs["young"].status == "STARTED"
    assert result.counters.resent == (0 if engine == "builtin" else None)
