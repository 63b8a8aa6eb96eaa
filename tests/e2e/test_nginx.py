"""Behind real nginx ``limit_req`` (a leaky bucket answering bare 429s), a job told five times
the limit converges to it, and a job told the limit is never refused (issue 13: before, every
429 closed the gate for a second and the job took 4.6x the time nginx allows).

Skipped, saying why, where nginx is not installed; .ci/run installs it when it can.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from local import job_seconds
from nginx import NGINX, limit_req

from worker.emulator import Emulator

pytestmark = pytest.mark.skipif(NGINX is None and not os.environ.get("CI_REQUIRE_NGINX"),
                                reason="nginx is not installed (apt-get install -y nginx)")

LIMIT = 100.0


def run_behind_nginx(emu: Emulator, cli: Callable[..., Any], told: float,
                     runs: int) -> tuple[float, float]:
    """(job time / the time nginx allows for what got through, share refused by nginx)."""
    for _ in range(runs):
        emu.add_run(status="STARTED", age_s=7200)
    with limit_req(emu.base_url, LIMIT, burst=5) as front:
        res = cli(None, "run", "--base-url", front, "--older-than", "1h", "--rate", f"{told:g}",
                  "--quota-share", "1.0", "--concurrency", "8", "--max-cancel", str(runs))
    assert res.code == 0, res.stderr
    assert set(res.outcomes().values()) == {"cancelled"}
    through = sum(1 for r in emu.records if r.kind in ("list", "get", "delete"))
    refused = res.report["requests"]["rate_limited"].get("rate", 0)
    wall = job_seconds(res.report)
    return wall / (through / LIMIT), refused / (through + refused)


@pytest.mark.slow
def test_told_five_times_the_limit_converges_behind_nginx(
        emu_thread: Callable[..., Emulator], cli: Callable[..., Any]) -> None:
    """The figures (1.02-1.15, 1-2 % refused) are bench/limiters.py's; the bounds here are
    wide, for a busy machine: finished, refused rarely, within twice nginx's time."""
    ratio, refused = run_behind_nginx(emu_thread(runs=0), cli, 5 * LIMIT, runs=800)
    assert ratio <= 2.0
    assert 0 < refused <= 0.10  # nginx did refuse (the limit was real), a few times only


@pytest.mark.slow
def test_told_the_limit_nginx_hardly_refuses(emu_thread: Callable[..., Emulator],
                                             cli: Callable[..., Any]) -> None:
    ratio, refused = run_behind_nginx(emu_thread(runs=0), cli, LIMIT, runs=400)
    assert ratio <= 1.5
    assert refused <= 0.01  # 0 in bench/limiters.py; a stalled machine may bunch a few
