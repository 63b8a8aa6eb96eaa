"""The HTTP edge (``worker.http``) over real loopback sockets: a scripted raw server answers
exact bytes, so framing, keep-alive, codings, limits, redirects and error translation are
checked against what servers really send, through aiohttp, the one HTTP client.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import re
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from worker.api_bodies import describe, describe_error
from worker.cli import exit_code_of
from worker.errors import ApiUnreachable, RedirectRefused, TransientError, UnusableResponse
from worker.http import (
    MAX_HEADERS,
    MAX_JSON_DEPTH,
    MAX_LINE_SIZE,
    Transport,
    parse_json,
    text_snippet,
    translate,
)

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


async def test_keep_alive_reuses_one_connection(server: RawServer) -> None:
    """Twenty sequential requests on a keep-alive server travel over a single connection."""
    server.script(OK)
    async with Transport(limit=4, attempt_timeout=2) as transport:
        for i in range(20):
            resp = await transport.send("GET", server.url(f"/r/{i}"), headers={})
            assert resp.status == 200
            assert resp.body == {"ok": True}
    assert len(server.requests) == 20
    assert server.connections == 1
    assert [r.target for r in server.requests] == [f"/r/{i}" for i in range(20)]


async def test_connection_close_answers_open_new_connections(server: RawServer) -> None:
    """When every answer says Connection: close, each request opens its own connection."""
    server.script(Step(answer(headers=[CLOSE])))
    async with Transport(limit=4, attempt_timeout=2) as transport:
        statuses = [(await transport.send("GET", server.url(), headers={})).status
                    for _ in range(5)]
    assert statuses == [200] * 5
    assert server.connections == 5
    assert [r.conn for r in server.requests] == [1, 2, 3, 4, 5]


async def test_idle_connection_closed_by_server_is_replaced(server: RawServer) -> None:
    """A pooled connection the server closed while idle is noticed; the next request succeeds."""
    server.script(Step(answer(), close=True), OK)  # keep-alive answer, then the server hangs up
    async with Transport(limit=4, attempt_timeout=2) as transport:
        first = await transport.send("GET", server.url("/a"), headers={})
        await asyncio.sleep(0.05)  # the connection sits idle; the FIN arrives meanwhile
        second = await transport.send("GET", server.url("/b"), headers={})
    assert (first.status, second.status) == (200, 200)
    assert [(r.conn, r.target) for r in server.requests] == [(1, "/a"), (2, "/b")]


async def test_server_hangup_right_after_answer_fails_only_that_attempt(
        server: RawServer) -> None:
    """A server that hangs up right behind a keep-alive answer fails the next request on that
    connection as one TransientError, which the client's one retry loop resends and counts:
    aiohttp's own silent resend of idempotent requests is off, so an attempt that may have
    reached the server is never hidden (a DELETE's lost answer is known as one)."""
    server.script(Step(answer(), close=True), OK)
    async with Transport(limit=4, attempt_timeout=2) as transport:
        await transport.send("GET", server.url("/a"), headers={})
        with contextlib.suppress(TransientError):  # the race: the FIN may not be seen yet
            await transport.send("GET", server.url("/b"), headers={})
        third = await transport.send("GET", server.url("/b"), headers={})
    assert third.status == 200
    assert server.requests[-1].target == "/b"


# -- body framing ----------------------------------------------------------------------------


async def test_chunked_body_is_reassembled(server: RawServer) -> None:
    """A chunked answer in several chunks, arriving in odd-sized pieces, is joined and parsed."""
    payload = json.dumps({"data": [{"id": f"run-{i}"} for i in range(50)]}).encode()
    parts = [payload[i:i + 300] for i in range(0, len(payload), 300)]
    assert len(parts) >= 3
    server.script(Step(answer(chunked(*parts), headers=[("Transfer-Encoding", "chunked")],
                              length=False), split=97), OK)
    async with Transport(limit=4, attempt_timeout=2) as transport:
        resp = await transport.send("GET", server.url(), headers={})
        after = await transport.send("GET", server.url(), headers={})
    assert resp.body == json.loads(payload)
    assert after.body == {"ok": True}
    assert server.connections == 1  # a chunked body ends without closing the connection


async def test_close_delimited_body_is_complete(server: RawServer) -> None:
    """An answer with neither Content-Length nor chunking ends at the close and is whole."""
    payload = json.dumps({"items": list(range(2000))}).encode()
    server.script(Step(answer(payload, length=False), close=True))
    async with Transport(limit=4, attempt_timeout=2) as transport:
        resp = await transport.send("GET", server.url(), headers={})
    assert resp.status == 200
    assert resp.body == {"items": list(range(2000))}


async def test_close_before_answer_is_connection_error(server: RawServer) -> None:
    """A server that reads the request and hangs up gives TransientError 'connection' at once."""
    server.script(Step(close=True))
    started = time.monotonic()
    async with Transport(limit=4, attempt_timeout=5) as transport:
        with pytest.raises(TransientError) as caught:
            await transport.send("GET", server.url(), headers={})
    assert caught.value.code == "connection"
    assert time.monotonic() - started < 4  # noticed, not waited out (the timeout is 5 s)
    # one request on the wire: aiohttp's own silent resend of idempotent requests is off
    assert len(server.requests) == 1


async def test_body_shorter_than_content_length_is_connection_error(server: RawServer) -> None:
    """A close before the declared Content-Length arrives is an error, not a short body."""
    server.script(Step(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\": 1}", close=True))
    async with Transport(limit=4, attempt_timeout=5) as transport:
        with pytest.raises(TransientError) as caught:
            await transport.send("GET", server.url(), headers={})
    assert caught.value.code == "connection"


@pytest.mark.parametrize("garbage", [
    b"NOT HTTP\r\n\r\n", b"HTTP/1.1 2x0 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n{}",
    pytest.param(answer(b"this is not gzip at all", headers=[("Content-Encoding", "gzip")]),
                 id="corrupt-gzip"),
])
async def test_garbage_answer_is_connection_error(server: RawServer, garbage: bytes) -> None:
    """An answer that is not HTTP (or a body that claims gzip but is not) gives 'connection'."""
    server.script(Step(garbage))
    async with Transport(limit=4, attempt_timeout=2) as transport:
        with pytest.raises(TransientError) as caught:
            await transport.send("GET", server.url(), headers={})
    assert caught.value.code == "connection"


async def test_interim_1xx_answer_is_skipped(server: RawServer) -> None:
    """A 103 Early Hints before the final answer is skipped; the final 200 is returned."""
    server.script(Step(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + answer()))
    async with Transport(limit=4, attempt_timeout=2) as transport:
        resp = await transport.send("GET", server.url(), headers={})
    assert (resp.status, resp.body) == (200, {"ok": True})


# -- body cap --------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_body_over_cap_is_unusable(server: RawServer, framing: str) -> None:
    """A body over max_body_bytes is UnusableResponse (never retried); the next request on the
    transport is answered normally."""
    payload = json.dumps({"x": "y" * 5000}).encode()
    reply = (answer(payload) if framing == "length" else
             answer(chunked(payload[:2000], payload[2000:]),
                    headers=[("Transfer-Encoding", "chunked")], length=False))
    server.script(Step(reply), OK)
    async with Transport(limit=4, attempt_timeout=2, max_body_bytes=1000) as transport:
        with pytest.raises(UnusableResponse, match="passed the cap") as caught:
            await transport.send("GET", server.url("/big"), headers={})
        after = await transport.send("GET", server.url("/small"), headers={})
    assert not isinstance(caught.value, TransientError)
    assert caught.value.code == "limit"
    assert "GET /big" in str(caught.value)
    assert after.body == {"ok": True}
    assert [r.target for r in server.requests] == ["/big", "/small"]


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
async def test_compressed_body_is_decoded(server: RawServer, coding: str) -> None:
    """gzip and deflate (zlib-wrapped or raw) bodies are inflated and parsed as JSON."""
    name, compress = CODINGS[coding]
    data = {"runs": [{"id": f"r{i}", "status": "STARTED"} for i in range(200)]}
    packed = compress(json.dumps(data).encode())
    server.script(Step(answer(packed, headers=[("Content-Encoding", name)])))
    async with Transport(limit=4, attempt_timeout=2) as transport:
        resp = await transport.send("GET", server.url(), headers={})
    assert resp.body == data
    assert server.requests[0].headers["Accept-Encoding"] == "gzip, deflate"


async def test_gzip_bomb_is_refused_at_cap(server: RawServer) -> None:
    """A small gzip body that inflates past max_body_bytes is refused, not inflated whole."""
    packed = gzip.compress(b" " * 2_000_000)
    assert len(packed) < 10_000
    server.script(Step(answer(packed, headers=[("Content-Encoding", "gzip")])))
    async with Transport(limit=4, attempt_timeout=2, max_body_bytes=BIG) as transport:
        with pytest.raises(UnusableResponse, match="passed the cap") as caught:
            await transport.send("GET", server.url(), headers={})
    assert caught.value.code == "limit"


# -- timeouts --------------------------------------------------------------------------------


async def test_attempt_timeout_then_fresh_connection(server: RawServer) -> None:
    """A server that never answers gives 'timeout' within ~0.3 s; the next request reconnects."""
    server.script(Step(hang=True), OK)
    async with Transport(limit=4, attempt_timeout=0.3) as transport:
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


async def test_request_bytes_on_the_wire(server: RawServer) -> None:
    """Host carries the port; JSON, form and params are encoded; a bodiless DELETE has none."""
    server.script(OK)
    payload = {"name": "r1", "n": [1, 2], "s": "é"}
    async with Transport(limit=4, attempt_timeout=2) as transport:
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


async def test_params_on_a_url_without_path(server: RawServer) -> None:
    """Params on a bare origin URL still reach the server as the query of '/'."""
    server.script(OK)
    async with Transport(limit=4, attempt_timeout=2) as transport:
        await transport.send("GET", f"http://127.0.0.1:{server.port}", headers={},
                             params=[("a", "1")])
    assert server.requests[0].target == "/?a=1"


async def test_cr_lf_header_is_a_bug_not_a_network_error(server: RawServer) -> None:
    """A CR/LF header is our bug (credentials with one are refused at load): aiohttp's
    ValueError goes up as it is, never as a TransientError that would be resent; no bytes."""
    async with Transport(limit=4, attempt_timeout=2) as transport:
        with pytest.raises(ValueError, match="control character"):
            await transport.send("GET", server.url(), headers={"X-Note": "a\r\nX-Injected: 1"})
    assert bytes(server.raw) == b""


async def test_only_network_errors_are_translated(server: RawServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug under a request (here a TypeError while reading the answer) is not a network
    error: it goes up unchanged, so nothing retries it as one."""
    server.script(OK)

    async def broken(self: Transport, *args: Any) -> bytes:
        raise TypeError("a bug")

    monkeypatch.setattr(Transport, "_read", broken)
    async with Transport(limit=4, attempt_timeout=2) as transport:
        with pytest.raises(TypeError, match="a bug"):
            await transport.send("GET", server.url(), headers={})


async def test_non_latin1_header_never_escapes_untyped(server: RawServer) -> None:
    """A header value outside latin-1 is sent or refused as a worker error, never a raw one."""
    server.script(OK)
    async with Transport(limit=4, attempt_timeout=2) as transport:
        resp = await transport.send("GET", server.url(), headers={"Zuora-Entity-Ids": "€"})
    assert resp.status == 200
    assert "Zuora-Entity-Ids: €".encode() in bytes(server.raw)  # sent as UTF-8, as aiohttp does


async def test_response_headers_are_case_insensitive(server: RawServer) -> None:
    """Response headers are found whatever the case of the name asked for."""
    server.script(Step(answer(headers=[("RateLimit-Remaining", "7"), ("retry-after", "3"),
                                       ("X-Multi", "a"), ("x-multi", "b")])))
    async with Transport(limit=4, attempt_timeout=2) as transport:
        resp = await transport.send("GET", server.url(), headers={})
    assert resp.header("ratelimit-remaining") == "7"
    assert resp.header("RATELIMIT-REMAINING") == "7"
    assert resp.header("Retry-After") == "3"
    assert resp.header("x-missing") is None
    assert isinstance(resp.headers, CIMultiDictProxy)
    assert resp.headers.getall("X-MULTI") == ["a", "b"]


async def test_connection_refused_is_connection_error() -> None:
    """A port nobody listens on gives TransientError 'connect' (nothing was sent) quickly."""
    probe = RawServer()
    await probe.start()
    await probe.stop()  # the port is now closed
    async with Transport(limit=4, attempt_timeout=2) as transport:
        with pytest.raises(TransientError) as caught:
            await transport.send("GET", probe.url(), headers={})
    assert caught.value.code == "connect"




# -- redirects are never followed ----------------------------------------------------------


@pytest.mark.parametrize("status", [300, 301, 302, 303, 305, 307, 308])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_redirect_is_refused_at_the_edge(server: RawServer, status: int,
                                               method: str) -> None:
    """A 3xx is RedirectRefused naming the status and the Location's origin; nothing else is
    sent, neither to the Location nor again to the server."""
    server.script(Step(answer(b"", f"{status} Moved", headers=[
        ("Location", "https://elsewhere.example:8443/oauth/token?client_secret=x")])))
    async with Transport(limit=4, attempt_timeout=2) as transport:
        with pytest.raises(RedirectRefused) as caught:
            await transport.send(method, server.url("/reportruns/r1"), headers={},
                                 form={"client_secret": "s3cret"} if method == "POST" else None)
    message = str(caught.value)
    assert f"{method} /reportruns/r1 answered HTTP {status}" in message
    assert "a redirect to https://elsewhere.example:8443;" in message
    assert "client_secret" not in message
    assert exit_code_of(caught.value) == 6
    assert caught.value.status == status
    assert len(server.requests) == 1


@pytest.mark.parametrize(("location", "words"), [
    ("/other/path", "a redirect to http://127.0.0.1:{port};"),
    (None, "a redirect with no Location;"),
])
async def test_redirect_message_for_relative_and_missing_location(server: RawServer,
                                                                  location: str | None,
                                                                  words: str) -> None:
    headers = [("Location", location)] if location else []
    server.script(Step(answer(b"", "302 Found", headers=headers)))
    async with Transport(limit=4, attempt_timeout=2) as transport:
        with pytest.raises(RedirectRefused, match=re.escape(words.format(port=server.port))):
            await transport.send("GET", server.url("/a"), headers={})


# -- hard limits on what a server may send --------------------------------------------------


@pytest.mark.parametrize(("reply", "words"), [
    (b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
     + b"Content-Length: 2\r\n\r\n{}", f"more than {MAX_HEADERS} header fields"),
    (b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * (MAX_LINE_SIZE + 10)
     + b"\r\nContent-Length: 2\r\n\r\n{}", f"longer than {MAX_LINE_SIZE} bytes"),
])
async def test_header_limits_make_the_answer_unusable(server: RawServer, reply: bytes,
                                                      words: str) -> None:
    """More header fields or longer lines than the stated limits: UnusableResponse at once."""
    server.script(Step(reply))
    async with Transport(limit=4, attempt_timeout=2) as transport:
        with pytest.raises(UnusableResponse, match=words) as caught:
            await transport.send("GET", server.url("/h"), headers={})
    assert caught.value.code == "limit"
    assert not isinstance(caught.value, TransientError)


async def test_headers_at_the_limits_are_read(server: RawServer) -> None:
    """Exactly the limits is fine (a Zuora answer has about 20 fields)."""
    fields = [(f"X-H{i}", "v") for i in range(MAX_HEADERS - 1)]
    server.script(Step(answer(headers=fields)))
    async with Transport(limit=4, attempt_timeout=2) as transport:
        resp = await transport.send("GET", server.url(), headers={})
    assert resp.body == {"ok": True}


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
async def test_json_nested_too_deep_is_unusable(server: RawServer, depth: int) -> None:
    server.script(Step(answer(b"[" * depth + b"]" * depth)))
    async with Transport(limit=4, attempt_timeout=2) as transport:
        with pytest.raises(UnusableResponse, match="nested deeper than 1024 levels"):
            await transport.send("GET", server.url("/deep"), headers={})


def test_json_at_the_depth_limit_parses() -> None:
    assert parse_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is not None


# -- what an error says of a non-JSON answer -------------------------------------------------


@pytest.mark.parametrize(("text", "want"), [
    ("<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1></body></html>",
     "502 Bad Gateway"),
    ("<html><body><h1>Service &amp; Gateway down</h1>\n<p>try later</p></body></html>",
     "Service & Gateway down try later"),
    ("upstream connect error or disconnect/reset before headers",
     "upstream connect error or disconnect/reset before headers"),
    ("x" * 500, "x" * 199 + "…"),
    ("  \n ", "empty body"),
])
def test_snippet_of_a_non_json_answer(text: str, want: str) -> None:
    assert text_snippet(text) == want


def test_problem_json_title_and_detail_are_described() -> None:
    body = {"type": "about:blank", "title": "Not Found", "status": 404,
            "detail": "no route /reportruns"}
    assert describe_error(body) == "Not Found; no route /reportruns"


async def test_html_error_page_is_described_by_its_title(server: RawServer) -> None:
    page = b"<html><head><title>504 Gateway Time-out</title></head><body>nginx</body></html>"
    server.script(Step(answer(page, "504 Gateway Time-out",
                              headers=[("Content-Type", "text/html")])))
    async with Transport(limit=4, attempt_timeout=2) as transport:
        resp = await transport.send("GET", server.url(), headers={})
    assert (resp.status, resp.body) == (504, None)
    assert describe(resp) == "504 Gateway Time-out"


# -- TLS failures in words -------------------------------------------------------------------


def _cert_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    exc.verify_code, exc.verify_message = code, message
    return exc


@pytest.mark.parametrize(("exc", "words"), [
    (_cert_error(20, "unable to get local issuer certificate"), "TLS certificate not trusted"),
    (_cert_error(19, "self-signed certificate in certificate chain"), "--ca-file"),
    (_cert_error(62, "Hostname mismatch"), "TLS host-name mismatch"),
    (_cert_error(64, "IP address mismatch"), "TLS host-name mismatch"),
    (_cert_error(10, "certificate has expired"), "TLS certificate expired"),
    (_cert_error(9, "certificate is not yet valid"), "not yet valid"),
])
def test_tls_failures_are_named(exc: BaseException, words: str) -> None:
    error = translate("GET", "https://rest.zuora.com/x?secret=1", exc)
    assert isinstance(error, ApiUnreachable)
    assert error.code == "tls"
    assert words in str(error)
    assert "secret" not in str(error)
