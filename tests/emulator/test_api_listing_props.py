"""Property tests of the pure list logic: paging covers every match exactly once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.emulator.api import page_of, parse_list_body, select, wanted_statuses
from worker.emulator.runs import TERMINAL, EmuRun
from worker.models import IN_PROGRESS

STATUSES = IN_PROGRESS + TERMINAL

runs_strategy = st.lists(
    st.builds(
        EmuRun,
        id=st.text("0123456789abcdef", min_size=32, max_size=32),
        report_id=st.just("r"),
        report_type=st.sampled_from(["Detail", "Summary"]),
        status=st.sampled_from(STATUSES),
        started_on=st.integers(0, 50).map(float),  # many ties on purpose
        updated_on=st.just(0.0),
        created_by=st.just("u"),
    ),
    max_size=60,
    unique_by=lambda r: r.id,
)


@settings(max_examples=150, deadline=None)
@given(
    runs=runs_strategy,
    size=st.integers(1, 20),
    cap=st.integers(1, 20),
    direction=st.sampled_from(["asc", "desc"]),
)
def test_pages_partition_matches(runs, size, cap, direction):
    statuses = wanted_statuses([])
    seen: list[str] = []
    page = 1
    while True:
        body = {
            "pagination": {"currentPage": page, "pageSize": size},
            "sort": [{"field": "startedOn", "direction": direction}],
        }
        query = parse_list_body(body, cap)
        assert query.page_size == min(size, cap)
        chunk = page_of(select(runs, statuses, query), query)
        if not chunk:
            break
        seen += [r.id for r in chunk]
        page += 1
    expected = {r.id for r in runs if r.status in IN_PROGRESS}
    assert len(seen) == len(set(seen))
    assert set(seen) == expected
    ordered = select(runs, statuses, parse_list_body(body, cap))
    starts = [r.started_on for r in ordered]
    assert starts == sorted(starts, reverse=direction == "desc")


def test_status_values_split_on_commas():
    assert wanted_statuses(["STARTED,QUERYDATA", "ERROR"]) == {"STARTED", "QUERYDATA", "ERROR"}
    assert wanted_statuses([]) == set(IN_PROGRESS)
