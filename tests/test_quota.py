"""The header rules (worker.quota): the window's end learned through whole-second rounding, the
guard, the allowance, and the values not believed. Clocks are injected; nothing sleeps."""

from __future__ import annotations

import math

import pytest
from local import ManualClock

from worker.pacer import Pacer, PacerConfig, Sent
from worker.quota import Quota, WindowEnd
from worker.ratelimit_headers import parse_ratelimit


class WindowServer:
    """A fixed-window limiter's headers, as real servers send them: the reset rounded up to
    whole seconds. Windows of ``window`` s end at ``phase + k * window``."""

    def __init__(self, quota: int, window: float, phase: float) -> None:
        self.quota, self.window, self.phase = quota, window, phase
        self.used: dict[int, int] = {}

    def answer(self, t: float) -> dict[str, str]:
        index = math.floor((t - self.phase) / self.window)
        self.used[index] = self.used.get(index, 0) + 1
        left = self.phase + (index + 1) * self.window - t
        return {"RateLimit-Limit": f"{self.quota}, {self.quota};w={self.window:g}",
                "RateLimit-Remaining": str(max(0, self.quota - self.used[index])),
                "RateLimit-Reset": str(max(1, math.ceil(left)))}


def zero() -> float:
    return 0.0


# -- the window's end -------------------------------------------------------------------------


def test_whole_second_resets_narrow_to_the_real_end() -> None:
    """Each `Reset: r` says the end is within (r - 1, r] of the answer; intersected over a few
    seconds of answers, the end is known to a few milliseconds (not to a second)."""
    end, true_end = WindowEnd(), 1059.737
    t = 1000.0
    while t < 1003.0:
        end.observe(math.ceil(true_end - t), t, t, rolled=False, window=60)
        assert end.lo < true_end <= end.hi
        t += 0.02
    assert end.hi - end.lo <= 0.021


def test_the_end_carries_across_windows_of_a_known_length() -> None:
    """1 s windows always say `Reset: 1`; carried over from window to window, each rollover
    narrows the phase further, so the real end is known to within one request's spacing."""
    server, end = WindowServer(30, 1.0, phase=0.3712), WindowEnd()
    quota = Quota(rate=30, share=1.0, safety=0.9)
    t, seq = 10.0, 0
    while t < 14.0:
        seq += 1
        quota.read(parse_ratelimit(server.answer(t)), t, seq, t)  # type: ignore[arg-type]
        t += 1 / 30
    end = quota.end
    assert end.lo < 14.3712 <= end.hi
    assert end.hi - end.lo <= 1 / 30 + 1e-9


def test_retry_after_is_cut_to_the_known_end() -> None:
    """Retry-After: 1 allows anything within a second; when the window's end is known to fall
    inside that, the pause ends there, not a whole second later."""
    end = WindowEnd()
    end.lo, end.hi = 100.0, 100.05
    assert end.pause_end(1.0, 99.99, 100.0) == pytest.approx(100.05)
    assert end.pause_end(5.0, 99.99, 100.0) == pytest.approx(105.0)  # not this window: told
    assert WindowEnd().pause_end(1.0, 99.99, 100.0) == pytest.approx(101.0)  # nothing known


# -- a job told the quota ---------------------------------------------------------------------


@pytest.mark.parametrize(("quota", "window"), [(30, 1.0), (500, 10.0), (3000, 60.0)])
def test_rounding_does_not_lower_the_rate_of_a_job_told_the_quota(quota: int,
                                                                  window: float) -> None:
    """Sending exactly the quota, the rounded-up Reset reads (remaining / reset) as less than
    the plan for most of every window; the job keeps its rate all the same."""
    rate = quota / window
    clock = ManualClock(5000.0)
    pacer = Pacer(PacerConfig(rate=rate, quota_share=1.0), clock=clock, rand=zero)
    server = WindowServer(quota, window, phase=4999.6)
    seq = 0
    while clock.now < 5000.0 + 3 * window:
        seq += 1
        pacer.observe(200, server.answer(clock.now), Sent(clock.now, seq))
        assert pacer.rate == pytest.approx(rate), clock.now
        clock.now += 1 / rate
    assert pacer.paused_until <= 5000.0 + 3 * window + 1  # never held for a whole window


def test_guard_slows_when_another_client_shares_the_window() -> None:
    """Remaining falling twice as fast as the plan spends: the rate drops to safety x what the
    window can still sustain."""
    quota = Quota(rate=100, share=1.0, safety=0.9)
    info = parse_ratelimit({"RateLimit-Limit": "6000;w=60", "RateLimit-Remaining": "1500",
                            "RateLimit-Reset": "31"})
    assert info is not None
    quota.read(info, 1000.0, 1, 1000.0)
    assert quota.guard(1000.0) == pytest.approx(0.9 * 1500 / 30.5)
    assert quota.guard(1031.5) == math.inf  # that window is over


def test_the_allowance_stops_sends_a_spent_window_would_refuse() -> None:
    """`Remaining: 3` on the answer to the 10th request allows the 11th to 13th only."""
    quota = Quota(rate=100, share=1.0, safety=0.9)
    info = parse_ratelimit({"RateLimit-Remaining": "3", "RateLimit-Reset": "1"})
    assert info is not None
    quota.read(info, 100.0, 10, 100.0)
    assert not quota.spent(12, 100.0)
    assert quota.spent(13, 100.0)
    assert not quota.spent(13, 101.5)  # the window has ended


# -- values not believed ----------------------------------------------------------------------


def test_placeholder_headers_are_ignored_and_counted() -> None:
    """`RateLimit-Limit: unlimited`, `Remaining: 0`, `Reset: 0` (Prism, some gateways): no
    pause, no slow-down, no plan; each counted."""
    clock = ManualClock()
    pacer = Pacer(PacerConfig(rate=20), clock=clock, rand=zero)
    placeholder = {"RateLimit-Limit": "unlimited", "RateLimit-Remaining": "0",
                   "RateLimit-Reset": "0"}
    for seq in range(1, 11):
        pacer.observe(200, placeholder, Sent(clock.now, seq))
        clock.now += 0.05
    assert pacer.rate == 20
    assert pacer.planned_rate == 20
    assert pacer.paused_until <= clock.now
    assert pacer.summary()["header_values_ignored"] == {
        "RateLimit-Limit malformed": 10, "Remaining 0 with Reset 0 (window ending)": 10}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"RateLimit-Limit": "100;w=60", "RateLimit-Remaining": "5000", "RateLimit-Reset": "30"},
         "RateLimit-Remaining above the quota"),
        ({"RateLimit-Limit": "100;w=60", "RateLimit-Remaining": "0", "RateLimit-Reset": "3600"},
         "RateLimit-Reset beyond the window"),
    ],
)
def test_contradictory_values_are_ignored_and_counted(headers: dict[str, str],
                                                      reason: str) -> None:
    clock = ManualClock()
    pacer = Pacer(PacerConfig(rate=1, quota_share=1.0), clock=clock, rand=zero)
    pacer.observe(200, headers, Sent(0.0, 1))
    assert pacer.summary()["header_values_ignored"] == {reason: 1}
    assert pacer.paused_until <= 0.0
    assert pacer.rate == 1
