"""The one exception tree of zuora-reaper.

Library errors (aiohttp, json, OS) are translated into these classes only at the HTTP edge
(``worker.http``); only the CLI turns them into exit codes (``worker.cli``).

::

    WorkerError
    ├── ConfigError                 bad flag, env var or config file            -> exit 2
    ├── GuardRefused                a safety guard refused to act               -> exit 4
    ├── LockHeld                    another job holds the target's lock         -> exit 4
    ├── Interrupted                 SIGTERM/SIGINT or --deadline                -> exit 5
    ├── InternalError               an unexpected exception (a bug) in a job    -> exit 6
    └── ApiError                    anything the API answered or failed to answer
        ├── AuthError               credentials refused, 401 after refresh, 403 -> exit 3
        ├── UnusableResponse        an answer we cannot use safely               -> exit 6
        │   └── RedirectRefused     a 3xx: redirects are never followed         -> exit 6
        ├── ApiUnreachable          listing could not reach the API             -> exit 6
        ├── TransientError          worth retrying: 429, 5xx, timeouts, resets
        │   └── RateLimited         429, with the kind ("rate"/"concurrency")
        └── PermanentError          4xx other than 401/404/429: never retried
"""

from __future__ import annotations

import traceback


class WorkerError(Exception):
    """Base of every error the worker raises on purpose."""

    exit_code = 1


class ConfigError(WorkerError):
    """A flag, environment variable or config key is invalid; raised before any network call."""

    exit_code = 2

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class GuardRefused(WorkerError):
    """A safety guard (max-cancel, age floor, stale plan) refused to cancel anything."""

    exit_code = 4


class LockHeld(WorkerError):
    """Another job already holds the lock for this target."""

    exit_code = 4


class Interrupted(WorkerError):
    """The job was stopped by a signal or by its deadline before it finished."""

    exit_code = 5


class InternalError(WorkerError):
    """An exception nobody expected (a bug): the job still reports what it knows, exit 6."""

    exit_code = 6
    trace: str = ""  # the formatted traceback, for the log line

    @classmethod
    def of(cls, exc: BaseException) -> InternalError:
        """``internal error: <Type>: <message>`` of the first exception of a group."""
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        error = cls(f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
        error.trace = "".join(traceback.format_exception(exc))  # no locals: they may hold secrets
        return error


class ApiError(WorkerError):
    """The API answered something we cannot use, or could not be reached."""

    exit_code = 6

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class AuthError(ApiError):
    """Credentials were refused, a token could not be refreshed, or a permission is missing."""

    exit_code = 3


class UnusableResponse(ApiError):
    """An answer that cannot be used safely: a body not JSON or of the wrong shape, a redirect,
    or an answer over a hard limit (headers, body size, JSON depth, items per page)."""

    exit_code = 6


class RedirectRefused(UnusableResponse):
    """The server answered with a redirect; redirects are never followed, on any call."""


class ApiUnreachable(ApiError):
    """The API could not be reached, or kept failing, while listing."""

    exit_code = 6


class TransientError(ApiError):
    """A failure worth retrying: 5xx, timeouts, dropped connections."""


class RateLimited(TransientError):
    """A 429; ``kind`` is "rate" (quota spent) or "concurrency" (too many in flight)."""

    def __init__(self, message: str, *, kind: str, status: int = 429,
                 code: str | None = None, retry_after: float | None = None,
                 reset: float | None = None) -> None:
        super().__init__(message, status=status, code=code, retry_after=retry_after)
        self.kind = kind
        self.reset = reset


class PermanentError(ApiError):
    """A definitive refusal (4xx other than 401/404/429, or success:false): never retried."""
