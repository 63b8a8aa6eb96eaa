"""The HTTP edge: one aiohttp session per job, hard limits on answers, library errors translated.

aiohttp is the one HTTP client (API, token, webhook). Nothing above this module sees an
aiohttp, ssl or OS exception:

- network failures and timeouts become ``TransientError`` (retried by the client); only what
  the network, TLS, the HTTP parser and timeouts raise (``NETWORK_ERRORS``) is translated: any
  other exception is a bug and goes up as it is, so it is never resent as a network error;
- TLS failures become ``ApiUnreachable`` naming which failure it is (untrusted issuer, host
  name mismatch, expired, or no TLS on that port): retrying cannot fix them;
- a 3xx becomes ``RedirectRefused`` (exit 6): redirects are never followed, so credentials and
  DELETEs never go to a ``Location`` nobody configured;
- an answer over a hard limit becomes ``UnusableResponse`` (exit 6), so a hostile server costs
  bounded memory and time: headers (``MAX_HEADERS`` fields, ``MAX_LINE_SIZE`` bytes a line; the
  limits of aiohttp's own parser, stated here), the body (``MAX_BODY_BYTES``, counted after
  decompression) and JSON nesting (``MAX_JSON_DEPTH``, orjson's own limit).

Every other answer becomes a ``Response`` whatever its status: classifying statuses is the
client's job, because Zuora can say ``success:false`` in a 200.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp
import orjson
from aiohttp import http_exceptions
from multidict import CIMultiDict, CIMultiDictProxy

from worker import __version__
from worker.errors import (
    ApiError,
    ApiUnreachable,
    RedirectRefused,
    TransientError,
    UnusableResponse,
)
from worker.logs import REDACTOR, hide_url
from worker.network import Network

MAX_BODY_BYTES = 8 * 1024 * 1024  # a listing page of 250 runs is ~100 KB; anything huge is wrong
MAX_HEADERS = 128  # header fields per answer (aiohttp's default; Zuora sends about 20)
MAX_LINE_SIZE = 8190  # bytes per status or header line (aiohttp's default)
MAX_JSON_DEPTH = 1024  # orjson refuses deeper documents; Zuora's bodies are 4 levels deep
CONNECT_TIMEOUT = 10.0
TEXT_CHARS = 2000  # of an answer's text kept for error messages
SNIPPET_CHARS = 200
_CHUNK = 65536
# What the network, TLS, the HTTP parser and timeouts raise: translated by ``translate``. Any
# other exception out of a request is a bug, never a network error that is worth a resend.
NETWORK_ERRORS = (aiohttp.ClientError, http_exceptions.HttpProcessingError, OSError, TimeoutError)


USER_AGENT = f"zuora-reaper/{__version__} aiohttp/{aiohttp.__version__}"
DEFAULT_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}


@dataclass(frozen=True, slots=True)
class Response:
    """An answered request. ``body`` is the parsed JSON, or None when it was not JSON."""

    status: int
    headers: Mapping[str, str]
    body: Any
    text: str
    elapsed: float

    @property
    def is_json(self) -> bool:
        return self.body is not None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def snippet(self) -> str:
        """A short one-line description of a non-JSON answer: an HTML page's ``<title>``, else
        its first ``SNIPPET_CHARS`` characters (tags dropped); "empty body" for none."""
        return text_snippet(self.text)


_TITLE = re.compile(r"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]{0,500}>")


def text_snippet(text: str) -> str:
    """See ``Response.snippet``."""
    found = _TITLE.search(text)
    if found and found.group(1).strip():
        text = found.group(1)
    elif "<" in text:
        text = _TAG.sub(" ", text)
    # unescaping makes new text of the page's (an escaped echo of a secret): scrubbed again
    line = REDACTOR.scrub(" ".join(unescape(text).split()))
    if len(line) > SNIPPET_CHARS:
        line = line[:SNIPPET_CHARS - 1] + "…"
    return line or "empty body"


class Transport:
    """Owns the job's one aiohttp session; use as ``async with Transport(...) as t``."""

    def __init__(self, *, limit: int, attempt_timeout: float, network: Network | None = None,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self._limit, self._timeout, self._max_body = max(limit, 1), attempt_timeout, max_body_bytes
        self._network = network or Network()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Transport:
        connector = aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300,
                                         family=socket.AF_UNSPEC,
                                         ssl=self._network.ssl_context())
        timeout = aiohttp.ClientTimeout(total=self._timeout,
                                        sock_connect=min(CONNECT_TIMEOUT, self._timeout))
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers=DEFAULT_HEADERS,
            skip_auto_headers=("Content-Type",), trust_env=False, raise_for_status=False,
            max_line_size=MAX_LINE_SIZE, max_field_size=MAX_LINE_SIZE, max_headers=MAX_HEADERS)
        # aiohttp silently sends an idempotent request (GET, DELETE) a second time when a pooled
        # connection drops under it (aio-libs/aiohttp#10790; no public switch). Our retry loop
        # must be the only one: a DELETE whose answer was lost is then counted as an attempt
        # that may have been applied. aiohttp's own test client turns it off the same way.
        self._session._retry_connection = False
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, method: str, url: str, *, headers: Mapping[str, str],
                   json_body: Any = None, form: Mapping[str, str] | None = None,
                   params: list[tuple[str, str]] | None = None,
                   max_body: int | None = None) -> Response:
        """Send one request (never following a redirect) and read its capped body.

        ``max_body``: a tighter cap for this answer (bytes, after decompression), refused
        before it is parsed; never above the transport's own."""
        assert self._session is not None, "Transport used outside 'async with'"
        body, all_headers = _encode_body(json_body, form, headers)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        what = f"{method} {urlsplit(url).path}"
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            async with self._session.request(method, url, headers=all_headers, data=body,
                                             allow_redirects=False,
                                             proxy=self._network.proxy_for(url)) as resp:
                if 300 <= resp.status < 400:
                    raise _redirect(method, url, resp.status, resp.headers.get("Location"))
                raw = await self._read(what, resp, min(max_body or self._max_body,
                                                        self._max_body))
                status, answer_headers = resp.status, text_headers(resp.headers)
        except NETWORK_ERRORS as exc:  # anything else is a bug: it is not retried as one
            raise translate(method, url, exc) from exc
        # the text kept for error messages: foreign text, scrubbed as it enters
        head = raw[:(TEXT_CHARS + REDACTOR.longest) * 4]  # at most 4 bytes a character
        text = REDACTOR.scrub_cut(head.decode("utf-8", errors="replace"), TEXT_CHARS)
        return Response(status=status, headers=answer_headers,
                        body=parse_json(raw, f"{what} answer"),
                        text=text, elapsed=loop.time() - start)

    async def _read(self, what: str, resp: aiohttp.ClientResponse, cap: int) -> bytes:
        """The body, decompressed, or UnusableResponse once it passes ``cap`` bytes."""
        length = resp.content_length
        if length is not None and length <= cap and "Content-Encoding" not in resp.headers:
            # a declared, uncompressed length within the cap (nearly every answer): one read
            return await resp.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                resp.close()  # do not drain a runaway body; drop the connection instead
                raise UnusableResponse(
                    f"{what} answer refused: its body passed the cap of {_size(cap)} "
                    "(after decompression)", status=resp.status, code="limit")
        return b"".join(chunks)


def _size(cap: int) -> str:
    return f"{cap // 2**20} MiB" if cap >= 2**20 and cap % 2**20 == 0 else f"{cap:,} bytes"


def text_headers(headers: CIMultiDictProxy[str]) -> CIMultiDictProxy[str]:
    """The answer's headers as valid text: aiohttp keeps a byte that is not UTF-8 as a lone
    surrogate, which no JSON encoder (our log lines) accepts; it becomes U+FFFD here."""
    if all(name.isascii() and value.isascii() for name, value in headers.items()):
        return headers  # nearly every answer

    def text(value: str) -> str:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")

    return CIMultiDictProxy(CIMultiDict((text(k), text(v)) for k, v in headers.items()))


def _encode_body(json_body: Any, form: Mapping[str, str] | None,
                 headers: Mapping[str, str]) -> tuple[bytes | None, Mapping[str, str]]:
    if form is not None:
        return (urlencode(form).encode(),
                {**headers, "Content-Type": "application/x-www-form-urlencoded"})
    if json_body is not None:
        return orjson.dumps(json_body), {**headers, "Content-Type": "application/json"}
    return None, headers


def _redirect(method: str, url: str, status: int, location: str | None) -> RedirectRefused:
    where = "with no Location"
    if location:
        try:
            where = f"to {hide_url(urljoin(url, location))}"
        except ValueError:
            where = "to an unreadable Location"
    return RedirectRefused(
        f"{method} {urlsplit(url).path or '/'} answered HTTP {status}, a redirect {where}; "
        "redirects are not followed: check --base-url / --environment (and any proxy or "
        "gateway in between)", status=status, code="redirect")


# ---------------------------------------------------------------- errors of the libraries

# OpenSSL's reasons when the other end does not speak TLS (e.g. plain http on that port)
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL",
                      "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG", "UNEXPECTED_RECORD"})
_EXPIRED, _NOT_YET_VALID, _HOST_MISMATCH, _IP_MISMATCH = 10, 9, 62, 64
_UNTRUSTED = frozenset({2, 18, 19, 20, 21, 27})  # issuer unknown, self-signed, chain untrusted


def translate(method: str, url: str, exc: BaseException) -> ApiError:
    """The worker's error for an exception of aiohttp, ssl or the OS (see the module doc)."""
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
        return TransientError(f"{method} timed out: no answer within the attempt timeout",
                              code="timeout")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError |
                  aiohttp.ServerFingerprintMismatch | ssl.SSLError):
        return ApiUnreachable(f"{method} {hide_url(url)} refused: {tls_problem(exc)}",
                              code="tls")
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return _proxy_refused(method, url, exc)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return TransientError(f"{method} failed: could not connect to the proxy "
                              f"({type(exc).__name__})", code="proxy")
    if isinstance(exc, aiohttp.ClientConnectorError):  # no connection: nothing was sent
        return TransientError(f"{method} failed: could not connect: {_short(exc)}",
                              code="connect")
    limit = _over_limit(exc)
    if limit is not None:
        return UnusableResponse(f"{method} {urlsplit(url).path} answer refused: {limit}",
                                code="limit")
    return TransientError(f"{method} failed: {type(exc).__name__}: {_short(exc)}",
                          code="connection")


def tls_problem(exc: BaseException) -> str:
    """Which TLS failure this is, in words an operator can act on."""
    cert = getattr(exc, "certificate_error", None) or exc
    code = getattr(cert, "verify_code", None)
    detail = getattr(cert, "verify_message", None) or getattr(cert, "reason", None) or ""
    if code in (_HOST_MISMATCH, _IP_MISMATCH):
        return ("TLS host-name mismatch: the certificate is not for this host name "
                f"({detail}); check --base-url")
    if code == _EXPIRED:
        return "TLS certificate expired: the server's certificate is past its end date"
    if code == _NOT_YET_VALID:
        return "TLS certificate not yet valid: check this machine's clock"
    if code in _UNTRUSTED:
        return (f"TLS certificate not trusted ({detail}): its issuer is not in this machine's "
                "trust store; add a private CA with --ca-file (or SSL_CERT_FILE)")
    reason = _ssl_reason(exc)
    if reason in _NOT_TLS:
        return ("the server did not answer TLS (is that port plain http?); check the scheme "
                "and port of --base-url")
    return f"TLS handshake failed ({reason or type(cert).__name__}: {_short(cert)})"


def _ssl_reason(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    for _ in range(4):  # aiohttp wraps the ssl error: look a few causes deep
        if seen is None:
            return None
        reason = getattr(seen, "reason", None)
        if isinstance(reason, str):
            return reason
        inner = getattr(seen, "os_error", None)
        seen = inner if isinstance(inner, BaseException) else seen.__cause__
    return None


def _proxy_refused(method: str, url: str, exc: aiohttp.ClientHttpProxyError) -> ApiError:
    message = f"{method} {hide_url(url)}: the proxy answered HTTP {exc.status} to CONNECT"
    if exc.status in (502, 503, 504):
        return TransientError(message, status=exc.status, code="proxy")
    hint = "; check the proxy credentials" if exc.status == 407 else ""
    return ApiUnreachable(message + hint, status=exc.status, code="proxy")


def _over_limit(exc: BaseException) -> str | None:
    """A description when ``exc`` says the answer broke a limit of the parser; else None."""
    cause: BaseException | None = exc
    for _ in range(3):
        if cause is None:
            return None
        if isinstance(cause, http_exceptions.LineTooLong):
            return f"a status or header line is longer than {MAX_LINE_SIZE} bytes"
        if isinstance(cause, http_exceptions.DecompressSizeError):
            return f"its body passed the cap of {MAX_BODY_BYTES // 2**20} MiB when decompressed"
        if isinstance(cause, http_exceptions.BadHttpMessage) and "Too many" in str(cause):
            return f"more than {MAX_HEADERS} header fields"
        cause = cause.__cause__
    return None


def _short(exc: BaseException) -> str:
    return REDACTOR.scrub_cut(" ".join(str(exc).split()), 300)


# ---------------------------------------------------------------- JSON


def parse_json(raw: bytes, what: str = "answer") -> Any:
    """The JSON value of ``raw``, or None when it is not strict JSON.

    Strict (RFC 8259, orjson): invalid UTF-8, a lone surrogate escape (``"\\ud800"``), NaN or
    Infinity make the body "not JSON", never a value with replaced characters: an id read
    with a replacement character would be an id the server never sent. JSON nested deeper
    than ``MAX_JSON_DEPTH`` raises UnusableResponse: it is no Zuora answer.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc).lower():
            raise UnusableResponse(f"{what} refused: its JSON is nested deeper than "
                                   f"{MAX_JSON_DEPTH} levels", code="limit") from None
        return None
