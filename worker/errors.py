"""The one exception tree of zuora-reaper, and the kinds of failure a job can end with.

Library errors (aiohttp, json, OS) are translated into these classes only at the HTTP edge
(``worker.http``), and the database's at the state edge (``worker.state.store``). Every
error carries a :class:`Kind`; only the CLI (``worker.cli``) turns a
kind into an exit code.

::

    WorkerError                                                       kind
    ├── ConfigError                 bad flag, env var or config file  config
    │   └── StateUnavailable        the state store cannot be opened  config
    ├── StateError                  the state store failed mid-job    failed
    ├── GuardRefused                a safety guard refused to act     guard
    ├── LockHeld                    another job holds the lock        guard
    ├── Interrupted                 SIGTERM/SIGINT, deadline, budget  interrupted
    │   └── QuotaSpent              a quota window's share is spent   interrupted
    ├── InternalError               an unexpected exception (a bug)   unusable
    └── ApiError                    what the API answered or failed to answer
        ├── AuthError               credentials refused, 401, 403     auth
        ├── UnusableResponse        an answer we cannot use safely    unusable
        │   └── RedirectRefused     a 3xx: never followed             unusable
        ├── ApiUnreachable          the API could not be reached      unusable
        └── TransientError          worth retrying: 5xx, timeouts     unusable
            └── RateLimited         429 ("rate"/"concurrency")        unusable
"""

from __future__ import annotations

import traceback
from enum import StrEnum
from typing import ClassVar

from worker.durations import format_duration
from worker.logs import REDACTOR


class Kind(StrEnum):
    """How a job ended; the CLI maps each kind to one exit code (README, "Exit codes")."""

    OK = "ok"  # every selected run ended well, or there was nothing to do
    FAILED = "failed"  # some selected runs were not (surely) cancelled
    CONFIG = "config"  # bad usage or configuration, before any network call
    AUTH = "auth"  # credentials or permissions refused
    GUARD = "guard"  # a safety guard (or another job's lock) refused to act
    INTERRUPTED = "interrupted"  # a signal, the deadline or the retry budget stopped the job
    UNUSABLE = "unusable"  # the API answered something unusable or could not be reached


class WorkerError(Exception):
    """Base of every error the worker raises on purpose."""

    kind: ClassVar[Kind] = Kind.FAILED


class ConfigError(WorkerError):
    """A flag, environment variable or config key is invalid; raised before any network call."""

    kind = Kind.CONFIG

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class StateUnavailable(ConfigError):
    """The state store cannot be opened, is not a database of ours, or is newer than this
    version knows; ``unwritable`` when only permissions stand in the way (the default location
    then degrades to no memory, with a warning)."""

    def __init__(self, message: str, *, unwritable: bool = False) -> None:
        super().__init__("state.url", message)
        self.unwritable = unwritable


class StateError(WorkerError):
    """The state store failed after it was opened (a write, a read, the connection)."""

    kind = Kind.FAILED


class GuardRefused(WorkerError):
    """A safety guard (max-cancel, age floor, stale plan) refused to cancel anything."""

    kind = Kind.GUARD


class LockHeld(WorkerError):
    """Another job already holds the lock for this target."""

    kind = Kind.GUARD


class Interrupted(WorkerError):
    """The job was stopped by a signal or by its deadline before it finished."""

    kind = Kind.INTERRUPTED


class QuotaSpent(Interrupted):
    """A quota window's share for this job is spent: the job stops (nothing more is sent) and
    leaves the rest for the next job, so the tenant's window is never run dry."""

    def __init__(self, window: str, allowed: int, resets_in: float | None) -> None:
        when = (f", the window resets in {format_duration(max(1.0, resets_in))}"
                if resets_in is not None else "")
        super().__init__(f"the {window} quota share is spent ({allowed:,} requests for this "
                         f"job){when}")


class InternalError(WorkerError):
    """An exception nobody expected (a bug): the job still reports what it knows, exit 6."""

    kind = Kind.UNUSABLE
    trace: str = ""  # the formatted traceback, for the log line

    @classmethod
    def of(cls, exc: BaseException) -> InternalError:
        """``internal error: <Type>: <message>`` of the first exception of a group."""
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        text = REDACTOR.scrub_cut(" ".join(str(exc).split()), 300)
        error = cls(f"internal error: {type(exc).__name__}: {text}")
        # no locals (they may hold secrets); the messages in it are scrubbed
        error.trace = REDACTOR.scrub("".join(traceback.format_exception(exc)))
        return error


class ApiError(WorkerError):
    """The API answered something we cannot use, or could not be reached."""

    kind = Kind.UNUSABLE

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(REDACTOR.scrub(message))  # an answer's text may echo a secret
        self.status = status
        self.code = code
        self.retry_after = retry_after


class AuthError(ApiError):
    """Credentials were refused, a token could not be refreshed, or a permission is missing."""

    kind = Kind.AUTH


class UnusableResponse(ApiError):
    """An answer that cannot be used safely: a body not JSON or of the wrong shape, a redirect,
    or an answer over a hard limit (headers, body size, JSON depth, items per page)."""

    kind = Kind.UNUSABLE


class RedirectRefused(UnusableResponse):
    """The server answered with a redirect; redirects are never followed, on any call."""


class ApiUnreachable(ApiError):
    """The API could not be reached, or kept failing, while listing."""

    kind = Kind.UNUSABLE


class TransientError(ApiError):
    """A failure worth retrying: 5xx, timeouts, dropped connections."""


class RateLimited(TransientError):
    """A 429; ``limit`` is "rate" (quota spent) or "concurrency" (too many in flight)."""

    def __init__(self, message: str, *, limit: str, status: int = 429,
                 code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status, code=code, retry_after=retry_after)
        self.limit = limit
