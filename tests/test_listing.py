"""Listing requests pages ahead after full pages, and only the next page after a short one."""

from __future__ import annotations

import pytest

from worker.listing import LOOKAHEAD


def _pages(emu):
    return [r.body["pagination"]["currentPage"] for r in emu.records if r.kind == "list"]


def test_full_pages_are_fetched_ahead_concurrently(emu_thread, cli):
    """Three full pages: after page 1, the next LOOKAHEAD pages are in flight together."""
    emu = emu_thread(runs=0, latency_ms=100)
    for _ in range(30):
        emu.add_run(status="STARTED", age_s=7200)
    res = cli(emu, "plan", "--page-size", "10", "--older-than", "1h", "--rate", "1000",
              "--concurrency", "8")
    assert res.code == 0, res.stderr
    assert res.report["counts"]["listed"] == 30
    # 1 alone; then 2..1+LOOKAHEAD; each later full page asks for one more; page 4 is empty.
    assert sorted(_pages(emu)) == list(range(1, 4 + LOOKAHEAD))
    assert emu.max_in_flight >= LOOKAHEAD


def test_a_short_page_asks_only_for_the_next_one(emu_thread, cli):
    """A short first page means the end is near: exactly pages 1 and 2 are requested."""
    emu = emu_thread(runs=0)
    for _ in range(7):
        emu.add_run(status="STARTED", age_s=7200)
    res = cli(emu, "plan", "--page-size", "10", "--older-than", "1h")
    assert res.code == 0, res.stderr
    assert _pages(emu) == [1, 2]


def test_lookahead_never_exceeds_concurrency(emu_thread, cli):
    """With --concurrency 1 the listing stays serial: one list request in flight at a time."""
    emu = emu_thread(runs=0, latency_ms=20)
    for _ in range(30):
        emu.add_run(status="STARTED", age_s=7200)
    res = cli(emu, "plan", "--page-size", "10", "--older-than", "1h", "--concurrency", "1",
              "--rate", "1000")
    assert res.code == 0, res.stderr
    assert emu.max_in_flight == 1
    assert _pages(emu) == [1, 2, 3, 4]


def test_page_cap_is_an_error_never_a_partial_listing(emu_thread, cli):
    """More full pages than --max-pages: exit 6, the cap named, nothing cancelled."""
    emu = emu_thread(runs=0)
    for _ in range(30):
        emu.add_run(status="STARTED", age_s=7200)
    res = cli(emu, "run", "--page-size", "10", "--max-pages", "2", "--older-than", "1h")
    assert res.code == 6
    assert "page cap of 2 pages" in res.stderr
    assert emu.deletes() == []
    assert max(_pages(emu)) == 3  # the cap, and the one page that would have ended the listing


@pytest.mark.parametrize("pages", [1, 3])
def test_max_pages_counts_pages_of_runs_not_the_empty_page_that_ends(emu_thread, cli, pages):
    """--max-pages N lists N pages of runs: the empty page that ends the listing is not one
    of them (one page of runs used to fail with --max-pages 1)."""
    emu = emu_thread(runs=0)
    for _ in range(10 * pages):
        emu.add_run(status="STARTED", age_s=7200)
    res = cli(emu, "plan", "--page-size", "10", "--max-pages", str(pages), "--older-than", "1h")
    assert res.code == 0, res.stderr
    assert res.report["counts"]["listed"] == 10 * pages
    assert max(_pages(emu)) == pages + 1
