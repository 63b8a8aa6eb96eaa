"""Turn a JobResult into the exit code and its one-line reason (the CLI's only decision)."""

from __future__ import annotations

from worker.errors import InternalError
from worker.job import JobResult
from worker.models import UNSUCCESSFUL, Outcome
from worker.report import counts


def exit_status(result: JobResult) -> tuple[int, str | None]:
    """(exit code, one-line reason or None for 0)."""
    if isinstance(result.error, InternalError):
        return result.error.exit_code, str(result.error)
    if result.error is not None:
        return result.error.exit_code, f"{type(result.error).__name__}: {result.error}"
    if result.stop_reason:
        c = counts(result)
        return result.stop_exit, (f"stopped: {result.stop_reason} "
                                  f"({c['not_attempted']} selected runs not attempted)")
    c = counts(result)
    failed = sum(c[o.value] for o in UNSUCCESSFUL)
    if failed:
        unsure = c[Outcome.STILL_RUNNING.value] + c[Outcome.UNKNOWN.value]
        detail = f" ({unsure} of them still running or unknown)" if unsure else ""
        return 1, (f"{failed} selected run(s) failed to cancel{detail}; see the report for "
                   "each error")
    return 0, None
