"""Rate quota and concurrency cap."""

from __future__ import annotations

import asyncio

CONCURRENCY_MESSAGE = (
    "The total number of concurrent requests has exceeded the limit allowed by the system. "
    "Please resubmit your request later."
)


async def test_rate_quota_headers_and_429(make_emu, api_for):
    emu = await make_emu(runs=5, rate=0.05, rate_window=60)  # 3 per minute
    api = api_for(emu)
    answers = [await api.list() for _ in range(4)]
    assert [a.status for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers["RateLimit-Limit"] == "3, 3;w=60"
    assert 55 <= int(answers[0].headers["RateLimit-Reset"]) <= 60
    limited = answers[3]
    wait = int(limited.headers["Retry-After"])
    assert 55 <= wait <= 60
    assert limited.json() == {
        "success": False,
        "reasons": [
            {
                "code": 70,
                "message": f"API Rate limit exceeded for the minute, retry after {wait} seconds",
            }
        ],
    }
    assert emu.limited_count("rate") == 1
    assert emu.records[-1].limited == "rate"
    # the token endpoint is not limited and carries no rate headers
    token = await api.get_token()
    assert token.status == 200
    assert "RateLimit-Limit" not in token.headers


async def test_rate_window_resets(make_emu, api_for):
    emu = await make_emu(runs=5, rate=4, rate_window=0.5)  # 2 per half second
    api = api_for(emu)
    await api.get_token()
    statuses = [(await api.get("x" * 32)).status for _ in range(3)]
    assert statuses == [404, 404, 429]
    await asyncio.sleep(0.55)
    assert (await api.get("x" * 32)).status == 404


async def test_concurrency_cap(make_emu, api_for):
    emu = await make_emu(runs=5, concurrency=2, latency_ms=300, concurrency_retry_after=1)
    api = api_for(emu)
    await api.get_token()
    answers = await asyncio.gather(*(api.list() for _ in range(3)))
    statuses = sorted(a.status for a in answers)
    assert statuses == [200, 200, 429]
    limited = next(a for a in answers if a.status == 429)
    assert limited.json() == {
        "success": False,
        "reasons": [{"code": 50000070, "message": CONCURRENCY_MESSAGE}],
    }
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["Concurrency-Limit-Remaining"] == "0"
    assert limited.headers["Concurrency-Limit-Type"] == "Default"
    assert limited.headers["Concurrency-Limit-Limit"] == "2"
    ok = next(a for a in answers if a.status == 200)
    assert ok.headers["Concurrency-Limit-Limit"] == "2"
    assert emu.max_in_flight == 2
    assert emu.limited_count("concurrency") == 1
    assert emu.limited_count("rate") == 0


async def test_sequential_client_max_in_flight(make_emu, api_for):
    emu = await make_emu(runs=5, concurrency=40)
    api = api_for(emu)
    for _ in range(3):
        assert (await api.list()).status == 200
    assert emu.max_in_flight == 1
    assert emu.config.concurrency_retry_after == 120.0


async def test_token_not_concurrency_limited(make_emu, api_for):
    emu = await make_emu(runs=1, concurrency=1, latency_ms=200)
    api = api_for(emu)
    await api.get_token()
    slow = asyncio.create_task(api.list())
    await asyncio.sleep(0.05)
    token = await api.get_token()
    assert token.status == 200
    assert (await slow).status == 200
