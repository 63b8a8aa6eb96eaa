"""Injected faults: 503, dropped connections, broken list bodies, latency."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest


async def test_503_with_retry_after(make_emu, api_for):
    emu = await make_emu(runs=3, fail_503_ratio=1.0, fault_retry_after=2)
    api = api_for(emu)
    answer = await api.list()
    assert answer.status == 503
    assert answer.headers["Retry-After"] == "2"
    assert answer.json()["success"] is False
    assert (await api.get_token()).status == 200  # token endpoint has no faults


async def test_faults_reproducible(make_emu, api_for):
    async def statuses(seed: int) -> list[int]:
        api = api_for(await make_emu(runs=3, seed=seed, fail_503_ratio=0.5))
        return [(await api.get("a" * 32)).status for _ in range(12)]

    first, second = await statuses(3), await statuses(3)
    assert first == second
    assert set(first) == {404, 503}


async def test_drop_connection(make_emu, api_for):
    emu = await make_emu(runs=3, drop_ratio=1.0)
    api = api_for(emu)
    await api.get_token()
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await api.list()
    assert emu.records[-1].status == 0
    assert emu.records[-1].kind == "list"
    emu.config.drop_ratio = 0.0
    assert (await api.list()).status == 200


@pytest.mark.parametrize(
    ("fault", "content_type"),
    [("html", "text/html"), ("text", "text/plain"), ("truncated", "application/json")],
)
async def test_unparseable_list_faults(api, fault, content_type):
    api.emu.config.list_fault = fault
    answer = await api.list()
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith(content_type)
    with pytest.raises(ValueError, match=r"."):
        json.loads(answer.text)


async def test_no_list_fault(api):
    api.emu.config.list_fault = "no_list"
    assert (await api.list()).json() == {"success": True, "response": {"total": 3}}


async def test_huge_list_fault(api):
    api.emu.config.list_fault = "huge"
    answer = await api.list()
    assert answer.status == 200
    assert len(answer.text) > 20 * 1024 * 1024
    assert answer.json()["success"] is True


async def test_latency_and_jitter(make_emu, api_for):
    emu = await make_emu(runs=3, latency_ms=150)
    api = api_for(emu)
    await api.get_token()
    start = time.monotonic()
    await api.list()
    assert time.monotonic() - start >= 0.14
    emu.config.latency_ms, emu.config.jitter_ms = 40, 40
    for _ in range(3):
        start = time.monotonic()
        await api.list()
        assert time.monotonic() - start < 2.0  # 80 ms at most, with room for a busy machine
