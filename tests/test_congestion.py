"""Throttling without headers (worker.congestion): the measured rates, the CUBIC curve, what
makes one congestion event, and the probe pause. Time is passed in; nothing sleeps."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.congestion import PROBE_FIRST_S, PROBE_MAX_S, Congestion, Cubic, RateMeter


def send(meter: RateMeter, start: float, rate: float, seconds: float,
         accepted: bool = True) -> float:
    """Record sends (and acceptances) at ``rate`` from ``start``; return the end time."""
    t, step = start, 1.0 / rate
    while t < start + seconds - 1e-9:
        meter.on_sent(t)
        if accepted:
            meter.on_accepted(t + 0.001)
        t += step
    return t


def test_meter_measures_the_last_second() -> None:
    meter = RateMeter()
    end = send(meter, 0.0, 40, 3.0)
    assert meter.sent_rate(end) == pytest.approx(40, rel=0.05)
    assert meter.accepted_rate(end) == pytest.approx(40, rel=0.05)
    assert meter.sent_rate(end + 5) == 0.0  # nothing banked from long ago


def test_meter_at_the_start_measures_over_what_has_passed() -> None:
    """Seven requests in the first 40 ms are 140/s, not 7/s: the first cut must not go to the
    floor (botocore's clock reads 0 there)."""
    meter = RateMeter()
    for k in range(7):
        meter.on_sent(k * 0.006)
    assert meter.sent_rate(0.04) == pytest.approx(7 / 0.05)


def test_cut_is_relative_to_the_measured_rate_not_the_configured_one() -> None:
    """Pacing allows 1000/s but only 40/s go out: the cut is 0.7 x 40."""
    congestion = Congestion(beta=0.7)
    end = send(congestion.meter, 0.0, 40, 2.0)
    assert congestion.on_throttle(end, end, rate=1000) == pytest.approx(28, rel=0.05)


def test_a_burst_of_429s_is_one_event() -> None:
    """Refusals of requests sent before the cut join it; one sent after is a new event."""
    congestion = Congestion(beta=0.7)
    end = send(congestion.meter, 0.0, 50, 2.0)
    first = congestion.on_throttle(end - 0.01, end, rate=50)
    assert first is not None
    for k in range(10):
        assert congestion.on_throttle(end - 0.05 + k * 0.001, end + 0.01, rate=first) is None
    assert (congestion.events, congestion.coalesced) == (1, 10)
    assert congestion.on_throttle(end + 0.02, end + 0.03, rate=50) is not None
    assert congestion.events == 2


def test_refusals_while_pacing_below_what_was_accepted_are_residue() -> None:
    """A bucket still draining an earlier excess refuses a few requests sent after the cut;
    while the rate is under 0.9 x what the limiter accepted in the last second, those are the
    old event's residue and cut nothing (so a spent fixed window, refusing everything, does not
    drive the rate to the floor either)."""
    congestion = Congestion(beta=0.7)
    end = send(congestion.meter, 0.0, 50, 1.0)  # 50 accepted in the last second
    rate = congestion.on_throttle(end, end, rate=50)
    assert rate == pytest.approx(35, rel=0.05)
    for k in range(20):
        t = end + 0.01 * (k + 1)
        assert congestion.on_throttle(t, t, rate=rate) is None
    assert (congestion.events, congestion.coalesced) == (1, 20)


def test_the_first_cut_goes_by_the_last_sends_when_the_job_just_sped_up() -> None:
    """Listing at 5/s for a second, then cancels at 200/s for 50 ms: the last second reads
    ~15/s, the last eight sends 200/s; the cut is 0.7 x 200, not 0.7 x 15."""
    congestion = Congestion(beta=0.7)
    end = send(congestion.meter, 0.0, 5, 1.0)
    end = send(congestion.meter, end, 200, 0.05)
    assert congestion.on_throttle(end, end, rate=250) == pytest.approx(140, rel=0.05)


def test_cubic_climbs_back_to_the_rate_that_worked_then_probes() -> None:
    curve = Cubic(beta=0.7)
    start = curve.throttled(measured=100, worked=90, now=0.0)
    assert start == pytest.approx(70)
    k = math.cbrt((90 - 70) / 0.4)
    assert curve.rate(0.0) == pytest.approx(70)
    assert curve.rate(k) == pytest.approx(90)  # back at the rate that worked
    assert curve.rate(k / 2) > 70 + (90 - 70) / 2  # concave: most of the way in half the time
    assert curve.rate(k + 1) == pytest.approx(90.4)  # then probes above it


def test_a_costly_refusal_makes_the_curve_flatter() -> None:
    gentle, steep = Cubic(beta=0.7), Cubic(beta=0.7)
    gentle.throttled(100, 100, 0.0, costly=True)
    steep.throttled(100, 100, 0.0)
    assert steep.rate(3.0) > gentle.rate(3.0)
    assert gentle.rate(8.0) < 100  # still climbing back after 8 s (steep: after 4.2 s)


@given(st.floats(1.0, 5000.0), st.floats(0.0, 1.0), st.floats(0.0, 100.0))
def test_cubic_starts_at_the_cut_and_never_dips_below_it(measured: float, share: float,
                                                          later: float) -> None:
    curve = Cubic(beta=0.7)
    start = curve.throttled(measured, measured * share, now=10.0)
    assert start == pytest.approx(0.7 * measured)
    assert curve.rate(10.0) == pytest.approx(start, rel=1e-6, abs=1e-6)
    assert curve.rate(10.0 + later) >= start - 1e-6 * measured


def test_ceiling_banks_nothing_while_idle() -> None:
    """After an hour idle the curve would allow far more; the ceiling stays at the rate that
    worked until traffic shows more goes through."""
    congestion = Congestion(beta=0.7)
    end = send(congestion.meter, 0.0, 20, 2.0)
    congestion.on_throttle(end, end, rate=20)
    assert congestion.ceiling(end) == pytest.approx(14, rel=0.05)
    assert congestion.ceiling(end + 3600) == pytest.approx(20, rel=0.05)
    assert Congestion(beta=0.7).ceiling(0.0) == math.inf  # no event, no ceiling


def test_probe_pause_doubles_while_everything_is_refused_and_resets_on_success() -> None:
    congestion = Congestion(beta=0.7)
    end = send(congestion.meter, 0.0, 50, 1.0)
    for k in range(3):
        congestion.on_throttle(end, end + k * 0.01, rate=50)
        assert congestion.probe_delay(end) is None  # three in a row may be bad luck
    delays = []
    for _ in range(6):
        congestion.on_throttle(end, end, rate=50)
        delays.append(congestion.probe_delay(end))
    assert delays == [PROBE_FIRST_S, 0.5, 1.0, PROBE_MAX_S, PROBE_MAX_S, PROBE_MAX_S]
    congestion.on_accepted(end + 1)
    assert congestion.probe_delay(end + 1) is None
    for _ in range(4):
        congestion.on_throttle(end + 1, end + 1, rate=50)
    assert congestion.probe_delay(end + 1) == PROBE_FIRST_S


def test_meter_holds_one_second_however_long_the_job() -> None:
    """Without a 429 no rate is ever asked for; the meter still drops what is older than a
    second as it goes, so a 50k-request job does not keep 50k timestamps."""
    meter = RateMeter()
    send(meter, 0.0, 100, 30.0)
    assert len(meter._sent) <= 101
    assert len(meter._accepted) <= 101
