"""structlog setup: JSON lines off a TTY, readable console on one; secrets redacted always."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_SECRET_KEYS = {"authorization", "client_secret", "password", "apisecretaccesskey",
                "access_token", "token", "secret"}


class Redactor:
    """A processor that removes known secret values and bearer tokens from every event."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        # the substring test skips the regex (the costly part) on nearly every value
        return _BEARER.sub(r"\1***", text) if "bearer" in text.lower() else text

    def __call__(self, _logger: Any, _name: str,
                 event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in list(event.items()):
            if key.lower() in _SECRET_KEYS:
                event[key] = "***"
            elif isinstance(value, str):
                event[key] = self.scrub(value)
            elif isinstance(value, BaseException):
                event[key] = self.scrub(f"{type(value).__name__}: {value}")
        return event


REDACTOR = Redactor()


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` without the given secret values and bearer tokens (for error messages)."""
    return Redactor(secrets).scrub(text)


def redact_data(value: Any) -> Any:
    """A copy of plain JSON-like data with every string scrubbed by the configured REDACTOR."""
    if isinstance(value, str):
        return REDACTOR.scrub(value)
    if isinstance(value, dict):
        return {key: redact_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_data(item) for item in value]
    return value


def configure_logging(fmt: str = "auto", level: str = "info", *,
                      secrets: Iterable[str] = (), stream: TextIO | None = None) -> None:
    """Configure structlog (and the stdlib bridge) once per process; logs go to stderr."""
    stream = stream or sys.stderr
    REDACTOR.secrets = Redactor(secrets).secrets
    console = fmt == "console" or (fmt == "auto" and stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        REDACTOR,
    ]
    renderer: Any = (structlog.dev.ConsoleRenderer(colors=False) if console
                     else structlog.processors.JSONRenderer())
    tail: list[Any] = [] if console else [structlog.processors.dict_tracebacks]
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processor=renderer, foreign_pre_chain=shared))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
