"""The pure selection judge: AND of filters, exclusions first, age floor, unparseable runs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.config import Exclusions, Filters, Rule, Selection
from worker.models import ReportRun
from worker.selection import judge, unknown_field_warnings, unmatched_exclusions

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


def _run(age_s: float = 3600, **kw: object) -> ReportRun:
    base = ReportRun(id="r1", report_id="rep-1", report_type="Detail", status="STARTED",
                     started_on=NOW - timedelta(seconds=age_s), updated_on=None,
                     created_by="alice@example.com")
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("run", "selection", "reason"), [
    (_run(), Selection(), "selected"),
    (_run(problem="unreadable startedOn", started_on=None), Selection(), "unparseable"),
    (_run(status="COMPLETED"), Selection(), "status"),
    (_run(status="QUERYDATA"), Selection(filters=Filters(statuses=("STARTED",))), "status"),
    (_run(age_s=100), Selection(), "age_floor"),
    (_run(age_s=100), Selection(min_age=0.0), "selected"),
    (_run(age_s=600), Selection(filters=Filters(older_than=3600)), "too_young"),
    (_run(), Selection(filters=Filters(report_types=("Summary",))), "report_type"),
    (_run(), Selection(filters=Filters(created_by=("bob@example.com",))), "created_by"),
    (_run(), Selection(filters=Filters(report_ids=("rep-2",))), "report_id"),
    (_run(), Selection(filters=Filters(report_ids=("r1",))), "selected"),
    (_run(), Selection(exclude=Exclusions(report_types=("Detail",))), "excluded_report_type"),
    (_run(), Selection(exclude=Exclusions(created_by=("alice@example.com",))),
     "excluded_created_by"),
    (_run(), Selection(exclude=Exclusions(report_ids=("rep-1",))), "excluded_report_id"),
    (_run(), Selection(exclude=Exclusions(report_ids=("r1",))), "excluded_report_id"),
    (_run(), Selection(filters=Filters(older_than_by_status=(("STARTED", 7200.0),))),
     "too_young"),
    (_run(status="QUERYDATA"),
     Selection(filters=Filters(older_than_by_status=(("STARTED", 7200.0),))), "selected"),
    (_run(), Selection(filters=Filters(idle_for=60)), "no_updated_on"),
    (_run(updated_on=NOW - timedelta(seconds=30)), Selection(filters=Filters(idle_for=60)),
     "not_idle"),
    (_run(), Selection(rules=(Rule("summ", Filters(report_types=("Summary",))),
                              Rule("bob", Filters(created_by=("bob@example.com",))))),
     "no_rule"),
])
def test_judge_reasons(run, selection, reason):
    """Each filter, exclusion and guard gives its own reason; a match says 'selected'."""
    verdict = judge(run, selection, NOW)
    assert verdict.reason == reason
    assert verdict.selected is (reason == "selected")


def test_rule_match_is_named():
    """When rules exist the verdict names the first rule that matched."""
    rules = (Rule("summ", Filters(report_types=("Summary",))), Rule("det", Filters()))
    verdict = judge(_run(), Selection(rules=rules), NOW)
    assert (verdict.selected, verdict.rule) == (True, "det")


NAMES = st.sampled_from(["a", "b", "c"])


@given(st.sampled_from(["Detail", "Summary"]), NAMES, NAMES,
       st.lists(st.sampled_from(["Detail", "Summary"]), max_size=2), st.lists(NAMES, max_size=2),
       st.lists(NAMES, max_size=2), st.lists(st.sampled_from(["Detail", "Summary"]),
                                             max_size=2),
       st.lists(NAMES, max_size=2), st.lists(NAMES, max_size=2),
       st.floats(min_value=0, max_value=10_000))
def test_judge_is_and_with_exclusions_winning(rtype, owner, rid, inc_t, inc_o, inc_r, exc_t,
                                              exc_o, exc_r, age):
    """Selected exactly when every inclusion matches, no exclusion does, and age is enough."""
    run = _run(age_s=age, report_type=rtype, created_by=owner, report_id=rid)
    selection = Selection(
        filters=Filters(report_types=tuple(inc_t), created_by=tuple(inc_o),
                        report_ids=tuple(inc_r), older_than=1000.0),
        exclude=Exclusions(report_types=tuple(exc_t), created_by=tuple(exc_o),
                           report_ids=tuple(exc_r)))
    expected = ((not inc_t or rtype in inc_t) and (not inc_o or owner in inc_o)
                and (not inc_r or rid in inc_r) and rtype not in exc_t and owner not in exc_o
                and rid not in exc_r and age >= 1000.0)
    assert judge(run, selection, NOW).selected is expected


@pytest.mark.parametrize(("run", "selection", "reason"), [
    (_run(created_by="ceo@example.com"),
     Selection(exclude=Exclusions(created_by=("CEO@Example.com",))), "excluded_created_by"),
    (_run(report_type="Detail"), Selection(exclude=Exclusions(report_types=("detail",))),
     "excluded_report_type"),
    (_run(report_type="DETAIL"), Selection(filters=Filters(report_types=("Detail",))),
     "selected"),
    (_run(created_by="Alice@Example.COM"),
     Selection(filters=Filters(created_by=("alice@example.com",))), "selected"),
    (_run(created_by="ALICE@example.com"),
     Selection(rules=(Rule("alice", Filters(created_by=("alice@EXAMPLE.com",))),)),
     "selected"),
    (_run(report_id="Rep-1"), Selection(exclude=Exclusions(report_ids=("rep-1",))),
     "selected"),  # ids are exact: another letter case is another id
])
def test_owners_and_report_types_match_without_regard_to_case(run, selection, reason):
    """--exclude-created-by CEO@example.com protects ceo@example.com; --exclude-report-type
    detail protects Detail: exclusions that depended on case failed open."""
    assert judge(run, selection, NOW).reason == reason


def test_an_exclusion_that_matched_nothing_listed_is_named():
    runs = [("r1", "rep-1", "Detail", "alice@example.com")]  # (id, report, type, owner)
    selection = Selection(exclude=Exclusions(created_by=("ALICE@example.com", "ceo@corp"),
                                             report_types=("Summary",),
                                             report_ids=("rep-1", "rep-9")))
    warnings = unmatched_exclusions(selection, runs)
    assert len(warnings) == 3
    assert any("--exclude-created-by 'ceo@corp'" in w for w in warnings)
    assert any("--exclude-report-type 'Summary'" in w for w in warnings)
    assert any("--exclude-report-id 'rep-9'" in w for w in warnings)
    assert unmatched_exclusions(Selection(), runs) == []


@pytest.mark.parametrize(("run", "selection", "reason"), [
    (_run(created_by=None), Selection(exclude=Exclusions(created_by=("ceo@example.com",))),
     "unknown_owner"),
    (_run(report_type=None), Selection(exclude=Exclusions(report_types=("Detail",))),
     "unknown_report_type"),
    (_run(report_id=None), Selection(exclude=Exclusions(report_ids=("rep-9",))),
     "unknown_report_id"),
    (_run(report_id=None), Selection(exclude=Exclusions(report_ids=("r1",))),
     "excluded_report_id"),  # the run id itself is named
    (_run(created_by=None), Selection(filters=Filters(created_by=("alice@example.com",))),
     "unknown_owner"),
    (_run(report_type=None), Selection(filters=Filters(report_types=("Detail",))),
     "unknown_report_type"),
    (_run(report_id=None), Selection(filters=Filters(report_ids=("rep-1",))),
     "unknown_report_id"),
    (_run(created_by=None), Selection(), "selected"),  # nothing names the owner
])
def test_a_field_a_filter_or_exclusion_names_must_be_known(run, selection, reason):
    """An owner exclusion cannot protect a run whose answer carries no owner: such a run is
    never selected (fail closed), with a reason that says which field was unknown."""
    assert judge(run, selection, NOW).reason == reason


def test_inclusions_fold_ascii_letters_only_and_exclusions_fold_broadly():
    """An inclusion that widened would select runs nobody named (Straße is not STRASSE, the
    Kelvin sign is not k); an exclusion protects every spelling that folds to it."""
    strasse = _run(created_by="STRASSE@corp.example")
    assert judge(strasse, Selection(filters=Filters(created_by=("straße@corp.example",))),
                 NOW).reason == "created_by"
    assert judge(strasse, Selection(exclude=Exclusions(created_by=("straße@corp.example",))),
                 NOW).reason == "excluded_created_by"
    kelvin = _run(created_by="\u212aim@corp.example")
    assert judge(kelvin, Selection(filters=Filters(created_by=("kim@corp.example",))),
                 NOW).reason == "created_by"


def test_unknown_fields_are_counted_in_a_warning():
    warnings = unknown_field_warnings(["unknown_owner", "selected", "unknown_owner",
                                       "unknown_report_type"])
    assert warnings[0].startswith("2 run(s) not selected: a filter or exclusion names the owner")
    assert warnings[1].startswith("1 run(s) not selected: a filter or exclusion names the "
                                  "report type")
