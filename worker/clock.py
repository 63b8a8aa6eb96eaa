"""The clock ages are read on: this host's, unless the server's ``Date`` says it runs fast.

A run's age is now minus its ``startedOn``, a time written by the server's clock. A host
clock running fast makes every run look older (the 5-minute floor and every threshold then
act early); one running slow, younger. Each answer's ``Date`` (whole seconds, RFC 9110) tells
where the server's clock is. Ages are read on the *earlier* of the two clocks: when the server's
is more than ``SKEW_TOLERANCE_S`` behind this host's (the median of the answers), on the
server's; when it is ahead, on this host's. So a wrong clock, this host's or a ``Date`` a proxy
or an edge wrote, can make runs look younger, never older: it can delay a cancel, never cause
one. The report and the console say which clock ages were read on, and why.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

SKEW_TOLERANCE_S = 30.0
OBSERVATIONS = 15  # the median of the last answers' Dates: one odd answer moves nothing


def utc_now() -> datetime:
    return datetime.now(UTC)


class ServerClock:
    """``now()`` on this host's clock, or on the server's when they differ by more than
    ``SKEW_TOLERANCE_S`` (learnt from each answer's ``Date`` with :meth:`observe`)."""

    def __init__(self, local: Callable[[], datetime] = utc_now) -> None:
        self._local = local
        self._skews: deque[float] = deque(maxlen=OBSERVATIONS)

    def observe(self, date: str | None) -> None:
        """Learn from one answer's ``Date`` header (missing or garbled: nothing learnt)."""
        if not date:
            return
        try:
            said = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            return
        if said.tzinfo is None:
            return
        # Date is truncated to the second: the server's time was within [said, said + 1 s)
        skew = (said - self._local()).total_seconds() + 0.5
        self._skews.append(skew)

    @property
    def skew_s(self) -> float | None:
        """The server's clock minus this host's (median of the answers seen), None before any."""
        return statistics.median(self._skews) if self._skews else None

    @property
    def on_server(self) -> bool:
        """True when ages are read on the server's clock: it is the earlier one, by more than
        the tolerance (this host's clock runs fast)."""
        skew = self.skew_s
        return skew is not None and skew < -SKEW_TOLERANCE_S

    def now(self) -> datetime:
        """The time ages are computed at: the earlier of the two clocks (see the module)."""
        local = self._local()
        skew = self.skew_s
        if skew is not None and skew < -SKEW_TOLERANCE_S:
            return local + timedelta(seconds=skew)
        return local

    def warning(self) -> str | None:
        """What the report and the console say when the clocks differ past the tolerance."""
        skew = self.skew_s  # the server's clock minus ours
        if skew is None or abs(skew) <= SKEW_TOLERANCE_S:
            return None
        if skew < 0:
            return (f"this host's clock is {-skew:.0f} s ahead of the server's (its Date "
                    "header): run ages were computed on the server's clock; fix this host's "
                    "time (NTP)")
        return (f"the server's Date is {skew:.0f} s ahead of this host's clock: run ages were "
                "kept on this host's clock, which makes runs look younger (the safe way); "
                "check this host's time (NTP), and any proxy that writes Date")

    def summary(self) -> dict[str, Any]:
        """For the report: the skew seen and which clock ages were read on."""
        skew = self.skew_s
        return {"skew_s": round(skew, 1) if skew is not None else None,
                "ages_on": "server" if self.on_server else "local",
                "tolerance_s": SKEW_TOLERANCE_S}
