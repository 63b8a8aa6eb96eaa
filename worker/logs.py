"""structlog setup (JSON lines off a TTY, a readable console on one), the one redactor, and the
one URL hider (:func:`hide_url`).

Secrets are scrubbed where foreign text enters, never over our own finished documents: the
HTTP edge (an answer's text, a library's error text), the errors made from answers
(``worker.errors``), the bodies read into runs and error messages (``worker.api_bodies``) and a
bug's traceback. The report, the plan, stdout, the logs and the metrics are then written as
they are: scrubbing them as text turned a proxy user ``jsmith`` into ``***`` inside a
``--created-by jsmith@corp`` filter (and broke the plan's hash), and a short password ``pass``
into the ``***es`` of the report's key ``passes``.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO
from urllib.parse import quote, quote_plus, urlsplit

import orjson
import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
MIN_SECRET_LENGTH = 4  # shorter values would scrub ordinary words


def secret_forms(secret: str) -> list[str]:
    """``secret`` as a server may echo it back: as sent, URL-encoded (path and form styles),
    base64 (unpadded, so it is also found inside a longer encoding that starts with it),
    JSON-escaped and HTML-escaped (an error page quoting a header)."""
    forms = [secret, quote(secret, safe=""), quote_plus(secret),
             base64.b64encode(secret.encode()).decode().rstrip("="),
             json.dumps(secret)[1:-1], html.escape(secret), html.escape(secret, quote=False)]
    return list(dict.fromkeys(f for f in forms if len(f) >= MIN_SECRET_LENGTH))


class Redactor:
    """Removes known secret values (in every form a server may echo them) and bearer tokens
    from a text: applied where foreign text enters (see the module doc)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Know ``secret`` (in every form ``secret_forms`` gives) from now on."""
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            return
        known = set(self.secrets)
        self.secrets.extend(f for f in secret_forms(secret) if f not in known)
        self.secrets.sort(key=len, reverse=True)  # a longer form first: no half-scrubbed text

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        # the substring test skips the regex (the costly part) on nearly every value
        return _BEARER.sub(r"\1***", text) if "bearer" in text.lower() else text

    def scrub_cut(self, text: str, limit: int) -> str:
        """``text`` scrubbed, then cut to ``limit`` characters: scrubbed first, over enough of
        it that a secret straddling the cut is still found whole (cut first, its head stays)."""
        return self.scrub(text[:limit + self.longest])[:limit]

    @property
    def longest(self) -> int:
        """The length of the longest secret form known (0 for none)."""
        return len(self.secrets[0]) if self.secrets else 0

    def suspect(self, text: str) -> bool:
        """True when ``text`` may hold a known secret or a bearer token (scrub it then)."""
        return any(secret in text for secret in self.secrets) or "bearer" in text.lower()



REDACTOR = Redactor()
_min_level = logging.INFO


def debug_enabled() -> bool:
    """True when the configured level logs debug events (a cheap check for hot paths)."""
    return _min_level <= logging.DEBUG


def hide_url(url: str, *, show: str = "origin") -> str:
    """A URL as it may be shown in any output.

    ``show="origin"``: ``scheme://host[:port]`` only (a webhook's or gateway's path and query may
    carry a token); ``"marked"``: the same plus ``/***`` when something was dropped (``***``
    for a URL without a host); ``"all_but_user"``: everything but ``user:password@``, shown as
    ``***@`` (a proxy URL's one secret part).
    """
    parts = urlsplit(url)
    if show == "all_but_user":
        if parts.username is None and parts.password is None:
            return url
        return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
    if show == "marked" and (not parts.scheme or not parts.hostname):
        return "***"
    origin = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    hidden = parts.path not in ("", "/") or parts.query or parts.username or parts.fragment
    return origin + ("/***" if show == "marked" and hidden else "")


def url_secrets(url: str | None) -> list[str]:
    """What of a URL is secret, for the redactor: its password, and the path and query of a
    webhook (chat webhooks carry their token there)."""
    if not url:
        return []
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return [s for s in (parts.password, path if len(path) > 8 else None) if s]


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` without the given secret values and bearer tokens (for error messages)."""
    return Redactor(secrets).scrub(text)


def _orjson_text(event: Any, **kwargs: Any) -> str:
    """structlog's JSON serializer: orjson (the fast path structlog's docs recommend), as text
    so log lines share the stream's text layer with everything else written to it."""
    return orjson.dumps(event, **kwargs).decode()


PER_RUN_EVENTS = frozenset({"cancel.finished", "retry.scheduled", "auth.refreshed"})
"""Events of one run or one request: in JSON logs always, on the console only at debug (the
progress line and the summary say what they add up to)."""


def quiet_console(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
    """Drop per-run events from the console (a run of 1,000 cancels is not 1,000 lines)."""
    if event.get("event") in PER_RUN_EVENTS:
        raise structlog.DropEvent
    return event


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (a closed or exotic stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def bind_job(**fields: str | None) -> None:
    """Put ``fields`` (job_id, target, mode, version) on every log line of this job."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**{k: v for k, v in fields.items() if v})


def configure_logging(fmt: str = "auto", level: str = "info", *,
                      secrets: Iterable[str] = (), stream: TextIO | None = None) -> None:
    """Configure structlog (and the stdlib bridge) once per process; logs go to stderr.
    ``secrets`` are what the redactor knows from now on (the tokens are added as received)."""
    global _min_level
    stream = stream or sys.stderr
    REDACTOR.secrets = Redactor(secrets).secrets  # tokens are added as they are received
    console = fmt == "console" or (fmt == "auto" and is_terminal(stream))
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,  # job_id, target, mode, version (bind_job)
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    min_level = _LEVELS.get(level, logging.INFO)
    colors = console and is_terminal(stream) and not os.environ.get("NO_COLOR")
    renderer: Any = (structlog.dev.ConsoleRenderer(colors=colors) if console
                     else structlog.processors.JSONRenderer(serializer=_orjson_text))
    tail: list[Any] = [] if console else [structlog.processors.dict_tracebacks]
    quiet = [quiet_console] if console and min_level > logging.DEBUG else []
    processors = [*quiet, *shared, *tail, renderer]
    wrapper = structlog.make_filtering_bound_logger(min_level)
    factory = structlog.WriteLoggerFactory(stream)  # PrintLogger's bytes, one write per line
    structlog.configure(processors=processors, wrapper_class=wrapper, logger_factory=factory,
                        cache_logger_on_first_use=False)
    _min_level = min_level
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processor=renderer, foreign_pre_chain=shared))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
