"""Helpers for tests that start the CLI as a process, talk to a local emulator directly, or
drive the real client stack against aioresponses; a manual clock, and timing measures."""

from __future__ import annotations

import contextlib
import json
import os
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from worker.auth import LegacyAuth
from worker.client import ApiClient
from worker.control import JobControl
from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from worker.http import Transport
from worker.pacer import Pacer, PacerConfig
from worker.retry import RetryBudget, RetryPolicy
from worker.secrets import Credentials


class ManualClock:
    """A clock that moves only when a test sets or advances ``now``."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def max_in_window(times: Iterable[float], width: float, slack: float = 0.0) -> int:
    """The most timestamps inside any closed window of ``width`` (+ ``slack``) seconds."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] < t - width - slack:
            start += 1
        best = max(best, end - start + 1)
    return best


def job_seconds(report: Mapping[str, Any]) -> float:
    """A job's own time, from its report's ``started_at`` to ``finished_at``."""
    started = datetime.fromisoformat(report["started_at"])
    return (datetime.fromisoformat(report["finished_at"]) - started).total_seconds()


# talk to 127.0.0.1 directly even when the environment sets HTTP proxies
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ZUORA_* variable, plus ``extra``: what a child
    CLI process gets, so the machine's own settings never leak into a test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZUORA_")}
    env.update(extra)
    return env


def emulator_token(base_url: str) -> str:
    """An OAuth token from the emulator at ``base_url`` (the demo credentials)."""
    form = urllib.parse.urlencode({"client_id": DEMO_CLIENT_ID,
                                   "client_secret": DEMO_CLIENT_SECRET,
                                   "grant_type": "client_credentials"}).encode()
    with OPENER.open(base_url + "/oauth/token", data=form, timeout=5) as resp:
        return str(json.load(resp)["access_token"])


def emulator_list(base_url: str, token: str) -> dict[str, object]:
    """The first listing page (5 STARTED runs) of the emulator at ``base_url``."""
    req = urllib.request.Request(  # noqa: S310 - http URL of the local emulator
        base_url + "/reporting/api/rest/v1/reportruns?status=STARTED",
        data=json.dumps({"pagination": {"currentPage": 1, "pageSize": 5}}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with OPENER.open(req, timeout=5) as resp:
        return dict(json.load(resp))


MOCKED_ROOT = "https://rest.example.test/api/rest/v1"  # what aioresponses answers for


@contextlib.asynccontextmanager
async def mocked_client(sleep: Callable[[float], Awaitable[None]],
                        budget: int = 500) -> AsyncIterator[ApiClient]:
    """The real client stack (legacy auth, pacer, retry budget, 3 attempts with no backoff)
    over aiohttp, for tests that answer it with aioresponses; ``sleep`` replaces the waits."""
    creds = Credentials(username="user", password="legacy-password")
    async with Transport(limit=2, attempt_timeout=5) as transport:
        yield ApiClient(MOCKED_ROOT, transport, LegacyAuth(creds),
                        Pacer(PacerConfig(rate=1000, concurrency=2)), RetryBudget(capacity=budget),
                        JobControl(), RetryPolicy(max_attempts=3, base=0, cap=0), sleep=sleep)
