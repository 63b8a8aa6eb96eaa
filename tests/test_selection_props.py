"""Property tests of judge(): exclusions and thresholds are never bypassed; it is deterministic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import event, given, settings
from hypothesis import strategies as st
from strategies import AGE, DURATION

from worker.config import Exclusions, Filters, Rule, Selection
from worker.models import IN_PROGRESS as STATUS_CHOICES
from worker.models import ReportRun
from worker.selection import judge

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
ALL_STATUSES = (*STATUS_CHOICES, "COMPLETED", "CANCELLED", "ERROR", "WEIRD")
IDS = ("r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8")
TYPES = ("Detail", "Summary", "Adhoc")
USERS = ("alice", "bob", "carol")


def subset(items, min_size=0, max_size=None):
    return st.lists(st.sampled_from(items), unique=True, min_size=min_size,
                    max_size=max_size or len(items)).map(tuple)


# Built once and reused by every draw. Weighted so that a fair share of runs is selected:
# mostly in-progress statuses, often no inclusion filter, small exclusions.
STATUS = st.sampled_from(STATUS_CHOICES * 4 + ALL_STATUSES)


def mostly(common, rare):
    return st.sampled_from((True, True, True, False)).flatmap(
        lambda usual: st.just(common) if usual else rare)


STATUSES = mostly(STATUS_CHOICES, subset(STATUS_CHOICES, min_size=1))
SOME_TYPES, SOME_USERS, SOME_IDS = (mostly((), subset(x)) for x in (TYPES, USERS, IDS))
EXCLUDE = st.tuples(subset(TYPES, max_size=1), subset(USERS, max_size=1),
                    subset(IDS, max_size=1))
BY_STATUS = st.dictionaries(st.sampled_from(STATUS_CHOICES), DURATION, max_size=3)
MAYBE_DURATION = st.none() | DURATION


@st.composite
def runs(draw):
    """A run with random identity, status, age and (maybe missing) updatedOn."""
    started = NOW - timedelta(seconds=draw(AGE))
    updated = draw(st.none() | AGE.map(lambda s: NOW - timedelta(seconds=s)))
    return ReportRun(id=draw(st.sampled_from(IDS)), report_id=draw(st.sampled_from(IDS)),
                     report_type=draw(st.none() | st.sampled_from(TYPES)),
                     status=draw(STATUS), started_on=started,
                     updated_on=updated, created_by=draw(st.none() | st.sampled_from(USERS)))


@st.composite
def filters(draw):
    """Random inclusion filters, thresholds (global and per status) and idle time."""
    return Filters(older_than=draw(MAYBE_DURATION),
                   older_than_by_status=tuple(sorted(draw(BY_STATUS).items())),
                   idle_for=draw(MAYBE_DURATION), statuses=draw(STATUSES),
                   report_types=draw(SOME_TYPES), created_by=draw(SOME_USERS),
                   report_ids=draw(SOME_IDS))


@st.composite
def selections(draw):
    """A Selection with random filters, 0-3 rules, exclusions and age floor."""
    names = draw(st.lists(st.sampled_from(("a", "b", "c")), unique=True, max_size=3))
    return Selection(filters=draw(filters()),
                     rules=tuple(Rule(n, draw(filters())) for n in names),
                     exclude=Exclusions(*draw(EXCLUDE)),
                     min_age=draw(st.sampled_from((0.0, 300.0))))


def _threshold(f: Filters, status: str) -> float:
    """The documented threshold, computed independently: max(--older-than, per-status)."""
    return max(f.older_than or 0.0, dict(f.older_than_by_status).get(status, 0.0))


def _respects(run: ReportRun, f: Filters) -> bool:
    assert run.started_on is not None
    assert run.status is not None
    age = (NOW - run.started_on).total_seconds()
    if age < _threshold(f, run.status) or run.status not in f.statuses:
        return False
    if f.idle_for is not None:
        return run.updated_on is not None and \
            (NOW - run.updated_on).total_seconds() >= f.idle_for
    return True


@settings(max_examples=250, deadline=None)
@given(run=runs(), sel=selections())
def test_selected_runs_respect_exclusions_and_thresholds(run, sel):
    """A selected run is in progress, named by no exclusion, and old enough for every bound."""
    verdict = judge(run, sel, NOW)
    event(verdict.reason)
    if not verdict.selected:
        assert verdict.reason != "selected"
        return
    ex = sel.exclude
    assert run.status in STATUS_CHOICES
    assert run.id not in ex.report_ids
    assert run.report_id not in ex.report_ids
    assert run.report_type not in ex.report_types
    assert run.created_by not in ex.created_by
    assert (NOW - run.started_on).total_seconds() >= sel.min_age
    assert _respects(run, sel.filters)
    if sel.rules:
        rule = {r.name: r for r in sel.rules}[verdict.rule]
        assert _respects(run, rule.filters)
    else:
        assert verdict.rule is None


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(runs(), max_size=6), sel=selections(), extra=subset(USERS))
def test_selection_is_deterministic_and_exclusions_only_shrink_it(batch, sel, extra):
    """Judging twice (in any order) agrees; adding exclusions never selects a new run."""
    first = [judge(r, sel, NOW) for r in batch]
    again = [judge(r, sel, NOW) for r in reversed(batch)][::-1]
    assert first == again
    wider = Selection(sel.filters, sel.rules,
                      Exclusions(sel.exclude.report_types,
                                 tuple(sorted({*sel.exclude.created_by, *extra})),
                                 sel.exclude.report_ids), sel.min_age)
    for run, verdict in zip(batch, first, strict=True):
        narrowed = judge(run, wider, NOW)
        assert not narrowed.selected or verdict.selected
        if run.created_by in extra:
            assert not narrowed.selected
