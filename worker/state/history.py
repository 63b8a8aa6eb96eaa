"""``zuora-reaper history``'s numbers, from the state store alone (no request is sent).

Two reads: the jobs since ``--since``, and the *stuck* sightings (runs the selection matched,
whatever came of them; a partial index holds only those), then counting in Python. Runs are
counted once per category (a run spared in five jobs is one spared run); a report is a *repeat
offender* when its runs were stuck in 3 or more jobs.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from worker.models import UNSUCCESSFUL, Outcome
from worker.state.schema import jobs, sightings
from worker.state.store import Store

REPEAT_JOBS = 3  # a report stuck in this many jobs is a repeat offender
FAILED = frozenset(o.value for o in UNSUCCESSFUL)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which jobs: since when, and the target parts given (None: any)."""

    since: float
    base_url: str | None = None
    principal: str | None = None
    entity_id: str | None = None


@dataclass
class History:
    """The answer, as plain data (``as_dict`` is ``--output json``)."""

    since: float
    targets: list[dict[str, Any]] = field(default_factory=list)
    jobs: int = 0
    jobs_by_mode: dict[str, int] = field(default_factory=dict)
    cancelled: int = 0
    noticed: int = 0
    spared: int = 0
    failed: int = 0
    by_report_type: dict[str, int] = field(default_factory=dict)
    by_owner: dict[str, int] = field(default_factory=dict)
    by_report: dict[str, int] = field(default_factory=dict)
    by_week: dict[str, int] = field(default_factory=dict)
    repeat_offenders: list[dict[str, Any]] = field(default_factory=list)
    age_at_cancel_s: dict[str, float | None] = field(default_factory=dict)
    cancel_success_rate: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"since": datetime.fromtimestamp(self.since, UTC).isoformat(),
                **{k: v for k, v in vars(self).items() if k != "since"}}


def read_history(store: Store, scope: Scope) -> History:
    """Read and count; a database failure is a StateError."""
    try:
        with store.engine.connect() as conn:
            job_rows = list(conn.execute(_jobs_query(scope)))
            targets = {row.target for row in job_rows}
            stuck = list(conn.execute(_stuck_query(scope))) if targets else []
    except SQLAlchemyError as exc:
        raise store.fail("read the history", exc) from exc
    history = History(scope.since)
    history.jobs = len(job_rows)
    history.jobs_by_mode = dict(Counter(row.mode for row in job_rows))
    history.targets = _targets(job_rows)
    _count(history, [row for row in stuck if row.target in targets])
    return history


def _jobs_query(scope: Scope) -> Any:
    query = select(jobs.c.job_id, jobs.c.target, jobs.c.mode, jobs.c.base_url,
                   jobs.c.principal, jobs.c.entity_id).where(jobs.c.started_at >= scope.since)
    for column, value in ((jobs.c.base_url, scope.base_url), (jobs.c.principal, scope.principal),
                          (jobs.c.entity_id, scope.entity_id)):
        if value is not None:
            query = query.where(column == value)
    return query


def _stuck_query(scope: Scope) -> Any:
    s = sightings.c
    return select(s.job_id, s.target, s.run_id, s.seen_at, s.owner, s.report_id,
                  s.report_name, s.report_type, s.reason, s.outcome, s.age_s).where(
        s.stuck, s.seen_at >= scope.since)


def _targets(job_rows: Iterable[Any]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for row in job_rows:
        entry = seen.setdefault(row.target, {"id": row.target, "base_url": row.base_url,
                                             "principal": row.principal,
                                             "entity_id": row.entity_id, "jobs": 0})
        entry["jobs"] += 1
    return sorted(seen.values(), key=lambda t: (-t["jobs"], t["id"]))


def week_of(ts: float) -> str:
    year, week, _ = datetime.fromtimestamp(ts, UTC).isocalendar()
    return f"{year}-W{week:02d}"


def report_label(report_id: str | None, name: str | None) -> str:
    return f"{report_id or '-'} {name}" if name else (report_id or "-")


def _count(history: History, rows: list[Any]) -> None:
    cancelled = {row.run_id: row for row in rows if row.outcome == Outcome.CANCELLED.value}
    history.cancelled = len(cancelled)
    history.noticed = len({row.run_id for row in rows if row.outcome == Outcome.NOTICED.value})
    history.spared = len({row.run_id for row in rows if row.reason == "spared"})
    failed = {row.run_id for row in rows if row.outcome in FAILED} - set(cancelled)
    history.failed = len(failed)
    done = list(cancelled.values())
    history.by_report_type = _ranked(row.report_type or "-" for row in done)
    history.by_owner = _ranked(row.owner or "-" for row in done)
    history.by_report = _ranked(report_label(row.report_id, row.report_name) for row in done)
    history.by_week = dict(sorted(Counter(week_of(row.seen_at) for row in done).items()))
    history.repeat_offenders = _offenders(rows)
    ages = sorted(row.age_s for row in done if row.age_s is not None)
    history.age_at_cancel_s = {"median": _round(statistics.median(ages)) if ages else None,
                               "p95": _round(_p95(ages)) if ages else None}
    attempted = len(cancelled) + len(failed)
    history.cancel_success_rate = round(len(cancelled) / attempted, 4) if attempted else None


def _ranked(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0])))


def _offenders(rows: list[Any]) -> list[dict[str, Any]]:
    by_report: dict[str, set[str]] = defaultdict(set)
    runs: dict[str, set[str]] = defaultdict(set)
    names: dict[str, str | None] = {}
    for row in rows:
        key = row.report_id or "-"
        by_report[key].add(row.job_id)
        runs[key].add(row.run_id)
        names[key] = row.report_name or names.get(key)
    out = [{"report_id": key, "report_name": names[key], "jobs": len(job_ids),
            "runs": len(runs[key])}
           for key, job_ids in by_report.items() if len(job_ids) >= REPEAT_JOBS and key != "-"]
    return sorted(out, key=lambda o: (-o["jobs"], o["report_id"]))


def _p95(ages: list[float]) -> float:
    """The nearest-rank 95th percentile of sorted ``ages``."""
    return ages[max(0, -(-95 * len(ages) // 100) - 1)]


def _round(value: float) -> float:
    return round(value, 1)
