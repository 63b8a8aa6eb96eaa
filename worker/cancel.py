"""Cancel selected runs: one DELETE per run, a follow-up GET when refused, one outcome each.

This is the only module that sends a DELETE, and it is never called in plan mode.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime

import structlog

from worker.api_bodies import describe, parse_run, run_path, run_payload
from worker.client import ApiClient
from worker.control import JobControl
from worker.errors import (
    ApiError,
    ApiUnreachable,
    AuthError,
    InternalError,
    Interrupted,
    Kind,
    RedirectRefused,
    UnusableResponse,
)
from worker.http import Response
from worker.models import (
    CANCELLED_STATUSES,
    FINISHED_STATUSES,
    IN_PROGRESS,
    Outcome,
    RunRecord,
)
from worker.pool import drain
from worker.retry import CallState

log = structlog.get_logger("worker.cancel")

SYSTEMIC_THRESHOLD = 5
PERMISSION_HINT = ("the API user probably lacks the 'Manage All Reports' permission (needed to "
                   "cancel other users' runs), API Write Access, or the Reporting API is not "
                   "enabled for the tenant")


class SystemicGuard:
    """Stops the job when cancels keep failing the same non-retryable way: a 401 or 403 stops
    it as an authentication failure (exit 3), any other refusal (e.g. HTTP 400 "cannot be
    canceled" while the run goes on) as failed cancels (exit 1).

    Until one cancel has succeeded, and again while a failure streak runs, cancels go one at a
    time (``admit``), so a systemic refusal costs ``threshold`` DELETEs, not a pool's worth.
    """

    def __init__(self, control: JobControl, threshold: int = SYSTEMIC_THRESHOLD) -> None:
        self._control, self._threshold = control, threshold
        self._streak = 0
        self._signature: str | None = None
        self._proven = False
        self._probe = asyncio.Lock()

    def _trusted(self) -> bool:
        """True once a cancel succeeded and no failure streak runs: cancels go concurrently."""
        return self._proven and self._streak == 0

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold one cancel: concurrently once cancels are known to work (a cancel succeeded
        and no failure streak runs), else one at a time."""
        if not self._trusted():
            await self._probe.acquire()
            if not self._trusted():
                try:
                    yield
                finally:
                    self._probe.release()
                return
            self._probe.release()  # a cancel succeeded while we waited: go concurrently
        yield

    def success(self) -> None:
        self._streak, self._signature, self._proven = 0, None, True

    def failure(self, signature: str, message: str, kind: Kind) -> None:
        """One more cancel failed with ``signature``; ``kind`` is how the job ends when this
        makes a streak (AUTH for 401/403 only, FAILED for other refusals)."""
        self._streak = self._streak + 1 if signature == self._signature else 1
        self._signature = signature
        if self._streak >= self._threshold:
            self._control.request_stop(
                f"{self._streak} cancels in a row failed with {signature}: {message}", kind)


async def cancel_one(client: ApiClient, rec: RunRecord, guard: SystemicGuard) -> None:
    """Cancel one run and set its outcome, attempts and error. Never raises WorkerError."""
    assert rec.run.id is not None
    st = CallState()
    loop = asyncio.get_running_loop()
    start = loop.time()
    path = run_path(rec.run.id)
    try:
        resp = await client.request("DELETE", path, state=st)
        await _settle_answer(client, rec, path, resp, st, guard)
    except asyncio.CancelledError:
        if rec.outcome is None:
            _unanswered(rec, st, "interrupted in flight: server state unknown")
        else:  # a definitive refusal stays one when its follow-up GET is cut short
            rec.error = f"{rec.error}; follow-up GET interrupted"
        raise
    except Exception as exc:  # every failure becomes this run's outcome: never raised on
        _failed(client, rec, st, guard, exc)
    finally:
        rec.attempts = st.attempts
        rec.latency_s = loop.time() - start
        _log_outcome(rec, client.control.clock.now())


def _failed(client: ApiClient, rec: RunRecord, st: CallState, guard: SystemicGuard,
            exc: Exception) -> None:
    """Settle a cancel whose DELETE raised; stop the job when every other cancel would fail."""
    if isinstance(exc, ApiError | Interrupted) and st.attempts == 0:
        _unanswered(rec, st, str(exc))  # never sent (e.g. no token): not attempted
    elif isinstance(exc, AuthError):
        _refused(rec, st, str(exc))
        guard.failure("401", str(exc), Kind.AUTH)
    elif isinstance(exc, RedirectRefused):  # not followed, so not done
        _refused(rec, st, f"{type(exc).__name__}: {exc}")
    elif isinstance(exc, Interrupted):
        _unanswered(rec, st, f"stopped before a definitive answer: {exc}")
    elif isinstance(exc, ApiUnreachable):
        _unanswered(rec, st, f"no definitive answer: {exc}")
    elif isinstance(exc, ApiError):
        _unanswered(rec, st, f"{type(exc).__name__}: {exc}")
    else:  # a bug: this run's state is unknown, and the job stops
        stop = InternalError.of(exc)
        log.error("cancel.internal_error", run_id=rec.run.id, error=str(stop),
                  traceback=stop.trace)
        _unanswered(rec, st, str(stop))
        client.control.request_stop(str(stop), stop.kind)
        return
    _stop_if_systemic(client, exc)


def _stop_if_systemic(client: ApiClient, exc: Exception) -> None:
    """A failure that every other call would meet too stops the job: credentials refused, or
    an answer we cannot use safely (a redirect, an answer over a hard limit)."""
    if isinstance(exc, AuthError | UnusableResponse):
        client.control.request_stop(str(exc), exc.kind)


def _refused(rec: RunRecord, st: CallState, error: str) -> None:
    """A refusal: ``failed``, unless an earlier attempt of this DELETE got no definitive answer
    (it may have cancelled the run): then unknown until the read-back tells."""
    if st.unanswered:
        rec.settle(Outcome.UNKNOWN, f"{error}; an earlier attempt got no answer and may have "
                                    "cancelled it", unsure=True, refused=True)
    else:
        rec.settle(Outcome.FAILED, error)


def _unanswered(rec: RunRecord, st: CallState, error: str) -> None:
    """No definitive answer: not attempted when nothing was sent, else unknown until the
    read-back (``reconcile``) tells what the server did."""
    if st.attempts == 0:
        rec.settle(Outcome.NOT_ATTEMPTED)
    else:
        rec.settle(Outcome.UNKNOWN, error, unsure=True)


async def reconcile(client: ApiClient, records: list[RunRecord], workers: int) -> None:
    """Read back, with one paced and retried GET each, the runs whose DELETE went out without
    a definitive answer (timeout, connection lost, 5xx after the last attempt, an unusable
    answer), so the report says what the server did: cancelled, still_running, or unknown
    when no GET could tell (the job is stopping: its deadline, a signal, the retry budget)."""
    unsure = [rec for rec in records if rec.unsure and rec.outcome is Outcome.UNKNOWN]
    if not unsure:
        return
    log.info("reconcile.started", runs=len(unsure))
    await drain(unsure, workers, lambda rec: _read_back(client, rec),
                client.control.is_stopping)
    left = sum(1 for rec in unsure if rec.outcome is Outcome.UNKNOWN)
    log.info("reconcile.finished", runs=len(unsure), unknown=left)


async def _read_back(client: ApiClient, rec: RunRecord) -> None:
    assert rec.run.id is not None
    try:
        resp = await client.request("GET", run_path(rec.run.id))
    except (ApiError, Interrupted) as exc:
        rec.error = f"{rec.error}; read-back GET failed: {exc}"
        return
    state = run_state(rec, resp)
    if state is None:
        rec.error = f"{rec.error}; read-back GET answered HTTP {resp.status}: {describe(resp)}"
        return
    if state == "running":  # not cancelled: refused, if the last answer said so
        rec.settle(Outcome.FAILED if rec.refused else Outcome.STILL_RUNNING,
                   f"{rec.error}; read back: still {state_of(resp)}", reconciled=True)
        return
    rec.settle(FOUND_OUTCOME[state], None, reconciled=True)  # the server did it: confirmed


FOUND_OUTCOME = {"gone": Outcome.NOT_FOUND, "cancelled": Outcome.CANCELLED,
                 "finished": Outcome.ALREADY_FINISHED}


def run_state(rec: RunRecord, resp: Response) -> str | None:
    """What a GET of the run says of it: ``gone`` (404), ``cancelled``, ``finished`` or
    ``running``; None when the answer says nothing usable (not a 2xx, another run's id, a
    status we do not know), which is never read as a state."""
    if resp.status == 404:
        return "gone"
    run = parse_run(run_payload(resp.body))
    if not 200 <= resp.status < 300 or run.id != rec.run.id:
        return None
    if run.status in CANCELLED_STATUSES:
        return "cancelled"
    if run.status in FINISHED_STATUSES:
        return "finished"
    return "running" if run.status in IN_PROGRESS else None


def state_of(resp: Response) -> str | None:
    return parse_run(run_payload(resp.body)).status


async def _settle_answer(client: ApiClient, rec: RunRecord, path: str, resp: Response,
                         st: CallState, guard: SystemicGuard) -> None:
    """Give the run the outcome its DELETE's definitive answer says; a refusal (or a 2xx that
    cannot be read) is settled ``failed`` at once, then a GET tells whether the run is over.

    "was canceled" after an attempt of this call that got no definitive answer (a lost
    answer: 504, timeout, reset) means this job cancelled it: ``cancelled``, reconciled.
    """
    body = resp.body
    refused = isinstance(body, Mapping) and body.get("success") is False
    accepted = 200 <= resp.status < 300 and not refused
    if accepted and isinstance(body, Mapping) and body.get("success") is True:
        guard.success()
        message = str(body.get("response", "")).lower()
        if "was cancel" not in message:
            rec.settle(Outcome.CANCELLED)
        elif st.unanswered:
            rec.settle(Outcome.CANCELLED, reconciled=True)
        else:
            rec.settle(Outcome.ALREADY_CANCELLED)
        return
    if resp.status == 404:
        guard.success()
        rec.settle(Outcome.NOT_FOUND)
        return
    if resp.status == 403:
        detail = f"403 Forbidden: {describe(resp)}; {PERMISSION_HINT}"
        _refused(rec, st, detail)
        guard.failure("403", detail, Kind.AUTH)
        return
    refusal = f"HTTP {resp.status}: {describe(resp)}"
    if not accepted and not st.unanswered:  # definitive, whatever the GET that follows tells
        rec.settle(Outcome.FAILED, f"cancel refused ({refusal})")
    await _follow_up(client, rec, path, refusal, guard, st, accepted=accepted)


async def _follow_up(client: ApiClient, rec: RunRecord, path: str, refusal: str,
                     guard: SystemicGuard, st: CallState, *, accepted: bool) -> None:
    """The cancel was refused or unreadable: a GET tells whether the run is already over.

    ``accepted``: the DELETE got a 2xx whose body could not be read (no ``success: true``);
    a run now cancelled was then cancelled by this call, as it was after an attempt without a
    definitive answer. Nothing of ours is raised: when the GET cannot tell, a definitive
    refusal stays ``failed``; an unreadable 2xx, or a refusal after an attempt without an
    answer (which may have cancelled the run), is ``unknown`` until the read-back.
    """
    unsure = accepted or st.unanswered > 0
    try:
        resp = await client.request("GET", path)
    except (ApiError, Interrupted) as exc:
        _stop_if_systemic(client, exc)
        _cannot_tell(rec, refusal, f"follow-up GET failed: {exc}", unsure, accepted)
        return
    state = run_state(rec, resp)
    if state == "running" and accepted:  # an unreadable 2xx, and the run goes on
        rec.settle(Outcome.STILL_RUNNING, f"{refusal}; read back: still {state_of(resp)}",
                   reconciled=True)
        return
    if state is None or state == "running":
        now = (f"run status now {state_of(resp)}" if state == "running"
               else f"follow-up GET answered HTTP {resp.status}: {describe(resp)}")
        if not accepted:
            guard.failure(refusal.split(":", 1)[0], refusal, Kind.FAILED)
        _cannot_tell(rec, refusal, now, unsure and state is None, accepted)
        return
    guard.success()
    if state == "cancelled" and not unsure:
        rec.settle(Outcome.ALREADY_CANCELLED)
    else:
        rec.settle(FOUND_OUTCOME[state], reconciled=state == "cancelled")


def _cannot_tell(rec: RunRecord, refusal: str, detail: str, unsure: bool,
                 accepted: bool = False) -> None:
    if unsure:
        rec.settle(Outcome.UNKNOWN, f"{refusal}; {detail}", unsure=True, refused=not accepted)
    else:
        rec.settle(Outcome.FAILED, f"cancel refused ({refusal}); {detail}")


def _log_outcome(rec: RunRecord, now: datetime) -> None:
    age = rec.age_s(now)
    log.info("cancel.finished", run_id=rec.run.id, report_type=rec.run.report_type,
             age_s=round(age) if age is not None else None, outcome=str(rec.outcome),
             attempts=rec.attempts, latency_ms=round((rec.latency_s or 0) * 1000, 1),
             error=rec.error)


async def cancel_all(client: ApiClient, records: list[RunRecord], workers: int,
                     on_done: Callable[[RunRecord], None] | None = None) -> None:
    """Cancel ``records`` with a bounded pool of workers; stop dispatching when the job stops.

    Runs never dispatched end ``not_attempted``.
    """
    guard = SystemicGuard(client.control)

    async def handle(rec: RunRecord) -> None:
        async with guard.admit():
            await cancel_one(client, rec, guard)
        if on_done is not None:
            on_done(rec)

    try:
        await drain(records, workers, handle, client.control.is_stopping)
    finally:
        for rec in records:
            if rec.outcome is None:
                rec.settle(Outcome.NOT_ATTEMPTED)
