"""The clock run ages are read on: this host's, or the server's when its Date says ours is off."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from worker.clock import SKEW_TOLERANCE_S, ServerClock

HOST = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def _date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def test_within_the_tolerance_ages_stay_on_this_hosts_clock():
    clock = ServerClock(lambda: HOST)
    clock.observe(_date(HOST + timedelta(seconds=20)))
    assert clock.now() == HOST
    assert clock.summary()["ages_on"] == "local"
    assert clock.warning() is None


@pytest.mark.parametrize("skew", [-600, -95, -3600])
def test_a_host_clock_running_fast_reads_ages_on_the_servers_clock(skew):
    clock = ServerClock(lambda: HOST)
    for _ in range(3):
        clock.observe(_date(HOST + timedelta(seconds=skew)))
    assert abs((clock.now() - HOST).total_seconds() - skew) <= 1
    assert clock.summary()["ages_on"] == "server"
    found = re.search(r"clock is (\d+) s ahead of the server's", clock.warning() or "")
    assert found is not None
    assert abs(int(found.group(1)) + skew) <= 1


@pytest.mark.parametrize("skew", [95, 3 * 3600])
def test_a_server_date_ahead_never_makes_runs_older(skew):
    """A Date ahead of this host (a host clock running slow, or an edge or proxy writing a
    wrong Date, on one answer or many) keeps ages on this host's clock: a wrong clock may delay
    a cancel, never cause one. The warning says so."""
    clock = ServerClock(lambda: HOST)
    clock.observe(_date(HOST + timedelta(seconds=skew)))
    assert clock.now() == HOST
    assert clock.summary()["ages_on"] == "local"
    assert "kept on this host's clock" in (clock.warning() or "")


def test_one_odd_answer_moves_nothing_and_garbage_is_ignored():
    clock = ServerClock(lambda: HOST)
    for _ in range(4):
        clock.observe(_date(HOST))
    clock.observe(_date(HOST + timedelta(days=3)))  # a gateway's broken Date
    for garbage in (None, "", "yesterday", "Mon, 99 Foo 2026 25:61:61 GMT"):
        clock.observe(garbage)
    assert abs(clock.skew_s or 0) < SKEW_TOLERANCE_S
    assert clock.now() == HOST


def test_no_date_seen_is_this_hosts_clock():
    clock = ServerClock(lambda: HOST)
    assert clock.now() == HOST
    assert clock.summary() == {"skew_s": None, "ages_on": "local", "tolerance_s": 30.0}


def test_a_host_clock_running_fast_does_not_lower_the_age_floor(emu_thread, cli):
    """The server's clock is 10 minutes behind this host's: a run the server started 2 minutes
    ago looks 12 minutes old here, past the 5-minute floor and --older-than 10m. Ages are read
    on the server's clock (its Date), so only the run that really is 20 minutes old goes."""
    emu = emu_thread(runs=0, clock=lambda: time.time() - 600)
    young = emu.add_run(status="STARTED", age_s=120)
    old = emu.add_run(status="STARTED", age_s=1200)
    res = cli(emu, "run", "--older-than", "10m", "--rate", "1000")
    assert res.code == 0, res.stderr
    assert emu.cancelled_ids() == {old.id}
    assert young.status == "STARTED"
    clock = res.report["clock"]
    assert clock["ages_on"] == "server"
    assert -602 <= clock["skew_s"] <= -598
    assert any("ahead of the server's" in w for w in res.report["warnings"])
    # the ages a person reads (the summary, the table) are on the same clock as the selection's
    assert 1195 <= res.report["selection"]["oldest_age_s"] <= 1215
    assert "20m" in res.stdout
    assert "30m" not in res.stdout
    assert "ages were computed on the server's clock" in res.stderr


def test_a_date_far_ahead_from_an_edge_cancels_nothing_young(emu_thread, cli):
    """A Date three hours ahead (written by an edge or a proxy; startedOn is Zuora's): on the
    server's clock a run started a minute ago would be past --older-than 2h. Ages stay on this
    host's clock, so it is not selected, and the warning says why."""
    emu = emu_thread(runs=0, date_skew_s=3 * 3600)
    emu.add_run(status="STARTED", age_s=60)
    res = cli(emu, "run", "--older-than", "2h", "--rate", "1000")
    assert res.code == 0, res.stderr
    assert emu.deletes_received() == {}
    assert res.report["clock"]["ages_on"] == "local"
    assert any("kept on this host's clock" in w for w in res.report["warnings"])
