"""The emulator's limits: the rate models (fixed windows, leaky bucket, placeholder headers) and
the concurrency cap."""

from __future__ import annotations

import asyncio

import pytest
from local import ManualClock

from worker.emulator import EmulatorConfig
from worker.emulator.cli import build_parser, config_from_args, describe_limit
from worker.emulator.limits import RateLimiter
from worker.emulator.replies import Reply

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


# -- the limiter models (worker.emulator.limits) --------------------------------------------


def statuses(limiter: RateLimiter, config: EmulatorConfig, count: int) -> list[int]:
    return [(limiter.consume(config) or Reply(200)).status for _ in range(count)]


def test_bucket_admits_burst_plus_one_then_one_per_drip() -> None:
    """nginx limit_req rate=10r/s burst=3 nodelay: 4 at once, then one every 0.1 s."""
    clock = ManualClock(100.0)
    limiter, config = RateLimiter(clock), EmulatorConfig(rate=10, limiter="bucket", burst=3)
    assert statuses(limiter, config, 6) == [200, 200, 200, 200, 429, 429]
    clock.now += 0.1
    assert statuses(limiter, config, 2) == [200, 429]
    clock.now += 0.35  # 3.5 drained
    assert statuses(limiter, config, 4) == [200, 200, 200, 429]
    clock.now += 10
    assert statuses(limiter, config, 5) == [200, 200, 200, 200, 429]


def test_bucket_refusal_is_a_bare_nginx_429() -> None:
    limiter = RateLimiter(ManualClock(100.0))
    config = EmulatorConfig(rate=1, limiter="bucket", burst=0)
    assert limiter.consume(config) is None
    refused = limiter.consume(config)
    assert refused is not None
    assert refused.status == 429
    assert refused.limited == "rate"
    assert refused.headers == {}
    assert refused.content_type == "text/html"
    assert b"429 Too Many Requests" in refused.payload()
    assert b"nginx" in refused.payload()
    assert limiter.headers(config) == {}  # nginx adds no RateLimit fields to any answer


def test_window_of_an_hour_counts_and_resets() -> None:
    clock = ManualClock(100.0)
    limiter, config = RateLimiter(clock), EmulatorConfig(rate=2 / 3600, rate_window=3600)
    assert statuses(limiter, config, 3) == [200, 200, 429]
    assert limiter.headers(config)["RateLimit-Reset"] == "3600"
    clock.now += 1800.5
    assert limiter.headers(config)["RateLimit-Reset"] == "1800"  # whole seconds, rounded up
    clock.now += 1800
    assert statuses(limiter, config, 3) == [200, 200, 429]


def test_window_reset_is_rounded_up_to_whole_seconds() -> None:
    clock = ManualClock(100.0)
    limiter, config = RateLimiter(clock), EmulatorConfig(rate=30, rate_window=1)
    for offset in (0.0, 0.3, 0.99):
        clock.now = 100.0 + offset
        assert limiter.headers(config)["RateLimit-Reset"] == "1"


def test_window_without_rate_headers_or_retry_after() -> None:
    clock = ManualClock(100.0)
    bare = EmulatorConfig(rate=1, rate_window=1, rate_headers=False, rate_retry_after=False)
    limiter = RateLimiter(clock)
    assert limiter.consume(bare) is None
    assert limiter.headers(bare) == {}
    refused = limiter.consume(bare)
    assert refused is not None
    assert refused.status == 429
    assert refused.headers == {}
    told = EmulatorConfig(rate=1, rate_window=1, rate_headers=False)
    refused = limiter.consume(told)
    assert refused is not None
    assert refused.headers == {"Retry-After": "1"}


def test_placeholder_headers_whatever_the_limit() -> None:
    limiter = RateLimiter(ManualClock(100.0))
    for config in (EmulatorConfig(placeholder_headers=True),
                   EmulatorConfig(rate=5, placeholder_headers=True)):
        assert limiter.headers(config) == {"RateLimit-Limit": "unlimited",
                                           "RateLimit-Remaining": "0", "RateLimit-Reset": "0"}
    assert limiter.consume(EmulatorConfig(placeholder_headers=True)) is None


async def test_limiter_models_over_http(make_emu, api_for):
    emu = await make_emu(runs=2, rate=1, limiter="bucket", burst=1)
    api = api_for(emu)
    answers = [await api.list() for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 429]
    assert "RateLimit-Limit" not in answers[0].headers
    assert "Retry-After" not in answers[2].headers
    assert "nginx" in answers[2].text
    assert emu.limited_count("rate") == 1
    emu.config = EmulatorConfig(runs=2, placeholder_headers=True)
    answer = await api.list()
    assert answer.status == 200
    assert answer.headers["RateLimit-Remaining"] == "0"


def test_bad_limiter_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="limiter must be one of"):
        EmulatorConfig(limiter="token").validate()
    with pytest.raises(ValueError, match="burst"):
        EmulatorConfig(burst=-1).validate()


# -- Zuora's tenant types: several windows at once ------------------------------------------


def test_zuora_counts_every_window_and_names_the_nearest_exhaustion() -> None:
    """An API Sandbox: 2,500 a minute, 5,000 an hour, 10,000 a day; the headers carry every
    window, the first item and Remaining/Reset for the one nearest exhaustion."""
    clock = ManualClock(100.0)
    limiter, config = RateLimiter(clock), EmulatorConfig(limiter="zuora", tenant="api-sandbox")
    assert statuses(limiter, config, 10) == [200] * 10
    headers = limiter.headers(config)
    assert headers == {"ratelimit-limit": "2500, 2500;w=60, 5000;w=3600, 10000;w=86400",
                       "ratelimit-remaining": "2490", "ratelimit-reset": "60"}
    busy = EmulatorConfig(limiter="zuora", tenant="api-sandbox", windows_used={3600: 4990})
    hour = RateLimiter(ManualClock(100.0))
    assert statuses(hour, busy, 1) == [200]
    assert hour.headers(busy) == {
        "ratelimit-limit": "5000, 2500;w=60, 5000;w=3600, 10000;w=86400",
        "ratelimit-remaining": "9", "ratelimit-reset": "3600"}


def test_zuora_refuses_past_any_window_and_failed_requests_count() -> None:
    clock = ManualClock(100.0)
    config = EmulatorConfig(limiter="zuora", tenant="api-sandbox", windows_used={3600: 4998})
    limiter = RateLimiter(clock)
    assert statuses(limiter, config, 4) == [200, 200, 429, 429]
    refused = limiter.consume(config)
    assert refused is not None
    assert refused.limited == "rate"
    assert refused.headers == {"Retry-After": "3600"}
    assert b"for the hour" in refused.payload()
    assert limiter.headers(config)["ratelimit-remaining"] == "0"  # refusals were counted too
    clock.now += 60  # a new minute: the hour is still spent
    assert statuses(limiter, config, 1) == [429]
    clock.now += 3540  # a new hour
    assert statuses(limiter, config, 1) == [200]


def test_zuora_tenant_presets_and_the_cli() -> None:
    clock = ManualClock(100.0)
    for tenant, first in (("production", "50000"), ("developer-sandbox", "12500")):
        limiter, config = RateLimiter(clock), EmulatorConfig(limiter="zuora", tenant=tenant)
        assert limiter.headers(config)["ratelimit-limit"].startswith(f"{first}, {first};w=60")
    with pytest.raises(ValueError, match="tenant must be one of"):
        EmulatorConfig(limiter="zuora", tenant="trial").validate()
    args = build_parser().parse_args(["--tenant", "developer-sandbox", "--window-used",
                                      "3600=24000", "--window-used", "86400=1"])
    config = config_from_args(args)
    assert (config.limiter, config.tenant) == ("zuora", "developer-sandbox")
    assert config.windows_used == {3600.0: 24000, 86400.0: 1}
    assert "Zuora developer-sandbox: 12,500 per 60s" in describe_limit(config)
    with pytest.raises(ValueError, match="SECONDS=N"):
        config_from_args(build_parser().parse_args(["--window-used", "3600"]))
