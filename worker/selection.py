"""Pure selection: decide for each listed run whether it is cancelled, and why (not).

Exclusions always win; a run must pass the global filters AND (when ``[[rules]]`` exist) at
least one rule; no run younger than the age floor, or unparseable, is ever selected. Owners
(e-mail addresses, user names) and report types match without regard to letter case, in
inclusions, exclusions and rules alike; run and report ids match exactly. The max-cancel
guard (:func:`guard_max_cancel`) is decided here too.

A run's age threshold is the larger of ``older_than`` and its status's entry in
``older_than_by_status`` (so ``--older-than 1h --older-than STARTED=20m`` still needs 1h).
When no rule matches, the reason is the one every rule gave (e.g. ``no_updated_on``) or, when
the rules disagree, ``no_rule``.
"""

from __future__ import annotations

import functools
import string
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from worker.config import Filters, Selection
from worker.errors import GuardRefused
from worker.models import IN_PROGRESS, ReportRun

CONFLICTING = "conflicting_status"  # listed in progress and in a terminal status by one job
CHANGED = "conflicting_fields"  # listed with two report ids, report types or owners by one job
Sighting = tuple[str | None, str | None, str | None, str | None]
"""What one listing said of a run: (id, report id, report type, owner)."""


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
        misses = {r.name: filter_miss(run, r.filters, now) for r in selection.rules}
        rule = next((name for name, miss in misses.items() if miss is None), None)
        if rule is None:
            return Verdict.no(_rule_miss(set(misses.values())))
    if age < selection.min_age:
        return Verdict.no("age_floor")
    return Verdict(True, "selected", rule)


def _rule_miss(reasons: set[str | None]) -> str:
    """Why no rule matched: the reason every rule gave when they agree, else ``no_rule``."""
    if len(reasons) == 1:
        only = next(iter(reasons))
        if only is not None:
            return only
    return "no_rule"


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _narrow(value: str) -> str:
    """An inclusion's fold: ASCII letters only (``Straße`` never selects ``STRASSE``'s runs,
    nor the Kelvin sign ``k``'s: an inclusion that widens selects runs nobody named)."""
    return value.translate(_ASCII_LOWER)


def _broad(value: str) -> str:
    """An exclusion's fold: Unicode case folding, so it protects every spelling that folds to
    it (an exclusion that widens only protects more)."""
    return value.casefold()


@functools.lru_cache(maxsize=256)
def folded(values: tuple[str, ...], broad: bool) -> frozenset[str]:
    fold = _broad if broad else _narrow
    return frozenset(fold(value) for value in values)


def matches(value: str, values: tuple[str, ...], *, broad: bool = False) -> bool:
    """Whether an owner or report type is one of ``values`` without regard to letter case:
    narrowly for inclusions, broadly for exclusions (``broad``)."""
    return (_broad if broad else _narrow)(value) in folded(values, broad)


UNKNOWN = {"report_type": "unknown_report_type", "created_by": "unknown_owner",
           "report_id": "unknown_report_id"}


def _excluded(run: ReportRun, selection: Selection) -> str | None:
    """Why an exclusion keeps the run; also when an exclusion names a field the run's answer
    did not carry (``unknown_*``): it cannot be shown not to be excluded, so it is not."""
    ex = selection.exclude
    if run.id in ex.report_ids or (run.report_id is not None and run.report_id in ex.report_ids):
        return "excluded_report_id"
    for name, values in (("report_type", ex.report_types), ("created_by", ex.created_by)):
        value = getattr(run, name)
        if values and value is None:
            return UNKNOWN[name]
        if values and matches(value, values, broad=True):
            return f"excluded_{name}"
    if ex.report_ids and run.report_id is None:
        return UNKNOWN["report_id"]
    return None


def unknown_field_warnings(reasons: Iterable[str]) -> list[str]:
    """How many runs were left alone because a filter or exclusion names a field their answer
    did not carry (``unknown_*``), as warnings."""
    counted = Counter(reason for reason in reasons if reason in UNKNOWN.values())
    words = {v: k.replace("_", " ").replace("created by", "owner") for k, v in UNKNOWN.items()}
    return [f"{n} run(s) not selected: a filter or exclusion names the {words[reason]}, which "
            "the API's answer did not carry for them (unknown values never pass)"
            for reason, n in sorted(counted.items())]


def missing_field_warnings(selection: Selection, runs: Iterable[ReportRun]) -> list[str]:
    """The fields the selection depends on that no listed run carried (a server that drops
    a column it does not know, or never returns it), said once for the job: every run is
    then left alone by the filter or exclusion that names it, and the cause is the server."""
    readable = [run for run in runs if run.parseable]
    if not readable:
        return []
    all_filters = (selection.filters, *(rule.filters for rule in selection.rules))
    needs = {
        "updated_on": ("updatedOn", "--idle-for",
                       any(f.idle_for is not None for f in all_filters)),
        "created_by": ("createdByUserProfile.username", "the owner filters and exclusions",
                       bool(selection.exclude.created_by)
                       or any(f.created_by for f in all_filters)),
        "report_type": ("reportType", "the report type filters and exclusions",
                        bool(selection.exclude.report_types)
                        or any(f.report_types for f in all_filters)),
    }
    return [f"no listed run carried {column}: {users} left all {len(readable)} alone (the "
            "server did not return that field; 'zuora-reaper check' shows what it returns)"
            for name, (column, users, needed) in needs.items()
            if needed and all(getattr(run, name) is None for run in readable)]


def unmatched_exclusions(selection: Selection, seen: Iterable[Sighting]) -> list[str]:
    """The exclusions no listed run matched (a typo there protects nothing), as warnings. A
    field some run did not carry is left to ``unknown_field_warnings``: the exclusion may well
    have named that run."""
    ex = selection.exclude
    if not (ex.report_ids or ex.report_types or ex.created_by):
        return []
    ids: set[str | None] = set()
    types: set[str | None] = set()
    owners: set[str | None] = set()
    for run_id, report_id, report_type, owner in seen:
        ids.update((run_id, report_id))
        types.add(None if report_type is None else _broad(report_type))
        owners.add(None if owner is None else _broad(owner))
    missed = [("--exclude-report-id", v) for v in ex.report_ids
              if None not in ids and v not in ids]
    missed += [("--exclude-report-type", v) for v in ex.report_types
               if None not in types and _broad(v) not in types]
    missed += [("--exclude-created-by", v) for v in ex.created_by
               if None not in owners and _broad(v) not in owners]
    return [f"exclusion {flag} {value!r} matched no listed run (a typo would protect "
            "nothing)" for flag, value in missed]


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
    for name, values in (("report_type", filters.report_types),
                         ("created_by", filters.created_by)):
        value = getattr(run, name)
        if values and value is None:
            return UNKNOWN[name]
        if values and not matches(value, values):
            return name
    if filters.report_ids and run.id not in filters.report_ids:
        if run.report_id is None:
            return UNKNOWN["report_id"]
        if run.report_id not in filters.report_ids:
            return "report_id"
    if (now - run.started_on).total_seconds() < threshold(filters, run.status):
        return "too_young"
    if filters.idle_for is not None:
        if run.updated_on is None:
            return "no_updated_on"
        if (now - run.updated_on).total_seconds() < filters.idle_for:
            return "not_idle"
    return None


def guard_max_cancel(selected: int, max_cancel: int, dry_run: bool) -> str | None:
    """Refuse (GuardRefused) a run that would cancel more than ``max_cancel`` runs; a plan
    cancels nothing, so it gets the warning that its run would refuse (None when within)."""
    if selected <= max_cancel:
        return None
    if dry_run:
        return (f"run would refuse: {selected} runs selected, more than --max-cancel "
                f"{max_cancel}; raise it with --max-cancel {selected} if the selection is right")
    raise GuardRefused(
        f"{selected} runs matched, more than --max-cancel {max_cancel}: cancelled none "
        f"of them. Check the filters with 'zuora-reaper plan', then raise the cap with "
        f"--max-cancel {selected} (or safety.max_cancel / ZUORA_REAPER_MAX_CANCEL)")
