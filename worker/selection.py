"""Pure selection: decide for each listed run whether it is cancelled, and why (not).

Exclusions always win; a run must pass the global filters AND (when ``[[rules]]`` exist) at
least one rule; no run younger than the age floor, or unparseable, is ever selected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from worker.config import Filters, Selection
from worker.models import IN_PROGRESS, ReportRun


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a run is selected; ``reason`` is "selected" or why not; ``rule`` names the match."""

    selected: bool
    reason: str
    rule: str | None = None

    @classmethod
    def no(cls, reason: str) -> Verdict:
        return cls(False, reason)


def judge(run: ReportRun, selection: Selection, now: datetime) -> Verdict:
    """Return the verdict for one run at time ``now`` (aware UTC)."""
    if not run.parseable or run.started_on is None:
        return Verdict.no("unparseable")
    if run.status not in IN_PROGRESS:
        return Verdict.no("status")
    excluded = _excluded(run, selection)
    if excluded:
        return Verdict.no(excluded)
    age = (now - run.started_on).total_seconds()
    reason = filter_miss(run, selection.filters, now)
    if reason:
        return Verdict.no(reason)
    rule = None
    if selection.rules:
        rule = next((r.name for r in selection.rules if not filter_miss(run, r.filters, now)),
                    None)
        if rule is None:
            return Verdict.no("no_rule")
    if age < selection.min_age:
        return Verdict.no("age_floor")
    return Verdict(True, "selected", rule)


def _excluded(run: ReportRun, selection: Selection) -> str | None:
    ex = selection.exclude
    if run.report_id is not None and run.report_id in ex.report_ids:
        return "excluded_report_id"
    if run.id in ex.report_ids:
        return "excluded_report_id"
    if run.report_type is not None and run.report_type in ex.report_types:
        return "excluded_report_type"
    if run.created_by is not None and run.created_by in ex.created_by:
        return "excluded_created_by"
    return None


def threshold(filters: Filters, status: str) -> float:
    """The minimum age for ``status``: the larger of --older-than and its per-status value."""
    by_status = dict(filters.older_than_by_status)
    return max(filters.older_than or 0.0, by_status.get(status, 0.0))


def filter_miss(run: ReportRun, filters: Filters, now: datetime) -> str | None:
    """The first filter ``run`` fails (its reason), or None when it passes them all."""
    assert run.started_on is not None
    assert run.status is not None
    if run.status not in filters.statuses:
        return "status"
    if filters.report_types and run.report_type not in filters.report_types:
        return "report_type"
    if filters.created_by and run.created_by not in filters.created_by:
        return "created_by"
    if filters.report_ids and run.report_id not in filters.report_ids \
            and run.id not in filters.report_ids:
        return "report_id"
    if (now - run.started_on).total_seconds() < threshold(filters, run.status):
        return "too_young"
    if filters.idle_for is not None:
        if run.updated_on is None:
            return "no_updated_on"
        if (now - run.updated_on).total_seconds() < filters.idle_for:
            return "not_idle"
    return None
