"""Paging: a listing ends on any honest signal (an empty page, the page totals, a page shorter
than an earlier one, a page that adds no new run), asks ahead only as far as the totals say,
and reads a page larger than asked."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.listing import LOOKAHEAD, MAX_PAGE_RUNS, PageBody, Paging
from worker.models import ReportRun


def _pages(emu):
    return [r.body["pagination"]["currentPage"] for r in emu.records if r.kind == "list"]


def _stuck(emu, count):
    for _ in range(count):
        emu.add_run(status="STARTED", age_s=7200)


PLAN = ("plan", "--older-than", "1h", "--rate", "1000")


def test_pages_are_asked_ahead_as_far_as_the_totals_say(emu_thread, cli):
    """Three full pages and totalPages 3: pages 2 and 3 together after page 1, and one past
    (totals alone never end a listing on a full page: a server's totals may be off)."""
    emu = emu_thread(runs=0, latency_ms=100)
    _stuck(emu, 30)
    res = cli(emu, *PLAN, "--page-size", "10", "--concurrency", "8")
    assert res.code == 0, res.stderr
    assert res.report["counts"]["listed"] == 30
    assert sorted(_pages(emu)) == [1, 2, 3, 4]
    assert emu.max_in_flight >= 2
    assert LOOKAHEAD >= 2


def test_without_totals_pages_go_one_at_a_time_and_end_on_the_empty_page(emu_thread, cli):
    """No totals: nothing is asked ahead (a guess costs quota on every job); three full pages
    end on the empty fourth."""
    emu = emu_thread(runs=0, latency_ms=20, list_totals=False)
    _stuck(emu, 30)
    res = cli(emu, *PLAN, "--page-size", "10", "--concurrency", "8")
    assert res.code == 0, res.stderr
    assert emu.max_in_flight == 1
    assert _pages(emu) == [1, 2, 3, 4]


@pytest.mark.parametrize("totals", [True, False])
def test_a_short_first_page_asks_one_page_more_whatever_the_totals_say(emu_thread, cli,
                                                                        totals):
    """7 runs, pages of 10: a short first page cannot tell a short listing from a server that
    caps its pages below the size asked, and a server's totals may be off: one more page."""
    emu = emu_thread(runs=0, list_totals=totals)
    _stuck(emu, 7)
    res = cli(emu, *PLAN, "--page-size", "10")
    assert res.code == 0, res.stderr
    assert _pages(emu) == [1, 2]


def test_a_page_shorter_than_an_earlier_one_ends_the_listing(emu_thread, cli):
    emu = emu_thread(runs=0, list_totals=False)
    _stuck(emu, 25)
    res = cli(emu, *PLAN, "--page-size", "10")
    assert res.code == 0, res.stderr
    assert _pages(emu) == [1, 2, 3]


def test_a_server_capping_pages_below_the_size_asked_is_listed_whole(emu_thread, cli):
    """Pages of 10 when 25 are asked, and no totals: every run is listed all the same."""
    emu = emu_thread(runs=0, list_totals=False, page_cap=10)
    _stuck(emu, 35)
    res = cli(emu, *PLAN, "--page-size", "25")
    assert res.code == 0, res.stderr
    assert res.report["counts"]["listed"] == 35
    assert _pages(emu) == [1, 2, 3, 4]


def test_a_server_repeating_its_last_page_costs_one_page_and_a_warning(emu_thread, cli):
    """A page past the end answered with the last page again (as many APIs clamp): the
    listing ends there, one page later, and says so once; it used to page on to --max-pages
    (1,000 requests a job)."""
    emu = emu_thread(runs=0, list_totals=False, clamp_pages=True)
    _stuck(emu, 30)
    res = cli(emu, *PLAN, "--page-size", "10")
    assert res.code == 0, res.stderr
    assert res.report["counts"]["listed"] == 30
    assert _pages(emu) == [1, 2, 3, 4]
    warnings = [w for w in res.report["warnings"] if "adds no run id" in w]
    assert warnings == ["listing page 4 adds no run id not already listed (a server that "
                        "answers a page past the end with an earlier one, or runs without "
                        "ids): the listing ends here"]
    assert "adds no run id" in res.stderr


def test_a_server_that_ignores_the_page_size_is_read_as_it_pages(emu_thread, cli):
    """Pages of 15 when 10 are asked: read (with a warning), and every run listed once."""
    emu = emu_thread(runs=0, list_totals=False, page_size_fixed=15)
    _stuck(emu, 40)
    res = cli(emu, *PLAN, "--page-size", "10")
    assert res.code == 0, res.stderr
    assert res.report["counts"]["listed"] == 40
    assert _pages(emu) == [1, 2, 3]
    assert any("pages of 15 runs, more than the 10 asked for" in w
               for w in res.report["warnings"])


def test_lookahead_never_exceeds_concurrency(emu_thread, cli):
    """With --concurrency 1 the listing stays serial: one list request in flight at a time."""
    emu = emu_thread(runs=0, latency_ms=20)
    _stuck(emu, 30)
    res = cli(emu, *PLAN, "--page-size", "10", "--concurrency", "1")
    assert res.code == 0, res.stderr
    assert emu.max_in_flight == 1
    assert _pages(emu) == [1, 2, 3, 4]


def test_page_cap_is_an_error_never_a_partial_listing(emu_thread, cli):
    """More pages than --max-pages: exit 6, the cap named, nothing cancelled."""
    emu = emu_thread(runs=0)
    _stuck(emu, 30)
    res = cli(emu, "run", "--page-size", "10", "--max-pages", "2", "--older-than", "1h")
    assert res.code == 6
    assert "page cap of 2 pages" in res.stderr
    assert emu.deletes() == []
    assert max(_pages(emu)) == 3  # the cap, and the one page that shows it is passed


@pytest.mark.parametrize("totals", [True, False])
@pytest.mark.parametrize("pages", [1, 3])
def test_max_pages_counts_pages_of_runs_not_the_empty_page_that_ends(emu_thread, cli, pages,
                                                                     totals):
    """--max-pages N lists N pages of runs: an empty page that ends the listing is not one
    of them (one page of runs used to fail with --max-pages 1)."""
    emu = emu_thread(runs=0, list_totals=totals)
    _stuck(emu, 10 * pages)
    res = cli(emu, "plan", "--page-size", "10", "--max-pages", str(pages), "--older-than", "1h")
    assert res.code == 0, res.stderr
    assert res.report["counts"]["listed"] == 10 * pages
    assert max(_pages(emu)) == pages + 1  # the empty page, or the one past full totals


# -- the invariant: every run listed once, at most one page more than the runs need ----------

TOTALS = ("none", "honest", "zero_based", "on_the_size_asked", "per_page")


def _served(ids: list[str], number: int, size: int, clamp: bool) -> list[str]:
    start = (number - 1) * size
    if clamp and ids and start >= len(ids):
        start = (len(ids) - 1) // size * size
    return ids[start:start + size]


def _totals(kind: str, runs: int, size: int, asked: int, page: int) -> tuple[int | None, ...]:
    """(totalPages, totalElements) as a server may give them, right or wrong."""
    pages = math.ceil(runs / size)
    return {"none": (None, None), "honest": (pages, runs),
            "zero_based": (max(0, pages - 1), None),
            "on_the_size_asked": (math.ceil(runs / asked), None),
            "per_page": (None, page)}[kind]


@settings(max_examples=400, deadline=None)
@given(runs=st.integers(0, 120), asked=st.integers(1, 30), cap=st.integers(1, 40),
       ignores_size=st.booleans(), clamp=st.booleans(), totals=st.sampled_from(TOTALS),
       filtered=st.sets(st.integers(1, 12), max_size=3), whole=st.booleans())
def test_every_server_paging_lists_every_run_with_at_most_one_page_more(
        runs, asked, cap, ignores_size, clamp, totals, filtered, whole):
    """For any listing length, page size asked, server cap (or a size the server uses
    whatever is asked), clamping or not, totals absent, right or wrong, and pages a server
    filters after paging (one run short): the listing collects every run, and asks at most
    one page more than the server's pages hold (or than its totalPages says, when that
    overstates them: empty pages are followed as far as it says). Filtered pages are only
    followed where the totals say more remain (without totals a short page is the end:
    nothing else tells)."""
    ids = [f"r{i}" for i in range(runs)]
    size = cap if ignores_size else min(asked, cap)
    paging, listed, requests = Paging(asked), [], 0
    post_filter = filtered if totals == "honest" else set()
    while not paging.ended:
        requests += 1
        assert requests <= 1000, "the listing never ended"
        served = _served(ids, requests, size, clamp)
        if requests in post_filter and served:
            gone = served if whole else served[-1:]  # the whole page, or one run of it
            listed += gone  # filtered out here: counted as seen by the test only
            served = [i for i in served if i not in gone]
        total_pages, total_elements = _totals(totals, runs, size, asked, len(served))
        paging.read(requests, PageBody(list(served), total_pages, total_elements),
                    [ReportRun(i, None, None, "STARTED", None, None, None) for i in served])
        listed += served
    assert set(listed) == set(ids)
    extra = 1 + bool(post_filter)  # pages filtered after paging may need one more to end
    needed = max(1, math.ceil(runs / size))
    said = _totals(totals, runs, size, asked, 0)[0] or 0  # empty pages follow totalPages
    assert requests <= max(needed + extra, said + 1)
    assert size <= MAX_PAGE_RUNS


def test_a_page_of_runs_without_ids_ends_the_listing_with_a_warning():
    """A server that returns only the columns asked for (no id) and clamps: such runs can
    never be cancelled, and a page adding no id ends the listing (it paged to --max-pages)."""
    paging = Paging(10)
    runs = [ReportRun(None, "rep", None, "STARTED", None, None, None) for _ in range(10)]
    notes = paging.read(1, PageBody(list(range(10)), 60, 600), runs)
    assert paging.ended
    assert any("adds no run id" in note for note in notes)
