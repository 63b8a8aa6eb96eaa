"""The API client's narrow edge cases through aioresponses (aiohttp is the one client, so the
mocked session is the real client stack): one retry path, redirects, 401 refresh, error text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aioresponses import aioresponses
from local import MOCKED_ROOT, mocked_client

from worker.client import ApiClient
from worker.errors import ApiUnreachable, AuthError, RedirectRefused
from worker.retry import CallState

ROOT = MOCKED_ROOT
RUN = ROOT + "/reportruns/r1"
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


SLEPT: list[float] = []


async def _record_sleep(seconds: float) -> None:
    SLEPT.append(seconds)


@pytest.fixture
async def client() -> AsyncIterator[ApiClient]:
    SLEPT.clear()
    async with mocked_client(_record_sleep) as api:
        yield api


def _calls(m: aioresponses, method: str = "DELETE") -> int:
    return sum(len(calls) for (verb, _url), calls in m.requests.items() if verb == method)


async def test_first_failure_goes_through_the_one_retry_path(client: ApiClient) -> None:
    """A 503 then a 200: two attempts, one retry counted; no separate first-attempt path."""
    st = CallState()
    with aioresponses() as m:
        m.delete(RUN, status=503, payload={"success": False})
        m.delete(RUN, payload={"success": True})
        resp = await client.request("DELETE", "/reportruns/r1", state=st)
    assert resp.status == 200
    assert (st.attempts, st.transient) == (2, 1)
    assert client.control.counters.retries == 1


async def test_retries_stop_at_max_attempts_with_the_error_page_title(client: ApiClient) -> None:
    with aioresponses() as m:
        m.delete(RUN, status=502, body=HTML_502, content_type="text/html", repeat=True)
        with pytest.raises(ApiUnreachable, match="HTTP 502: 502 Bad Gateway"):
            await client.request("DELETE", "/reportruns/r1")
        assert _calls(m) == 3


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_is_final_and_never_followed(client: ApiClient, status: int) -> None:
    """A redirect is not retried and its Location is never requested (aioresponses would
    follow it if the client asked)."""
    with aioresponses() as m:
        m.delete(RUN, status=status, headers={"Location": "https://evil.example/steal"})
        m.delete("https://evil.example/steal", payload={"success": True})
        with pytest.raises(RedirectRefused, match=f"HTTP {status}, a redirect to "
                                                  "https://evil.example;"):
            await client.request("DELETE", "/reportruns/r1")
        assert _calls(m) == 1
        assert not [u for (_v, u) in m.requests if "evil" in str(u)]


async def test_legacy_401_is_final_after_one_attempt(client: ApiClient) -> None:
    """Legacy credentials cannot be refreshed: a 401 is AuthError, sent once."""
    with aioresponses() as m:
        m.delete(RUN, status=401, payload={"success": False}, repeat=True)
        with pytest.raises(AuthError, match="legacy credentials"):
            await client.request("DELETE", "/reportruns/r1")
        assert _calls(m) == 1


async def test_retry_after_on_a_5xx_is_honoured(client: ApiClient) -> None:
    headers: dict[str, Any] = {"Retry-After": "2"}
    with aioresponses() as m:
        m.delete(RUN, status=503, headers=headers, payload={"success": False})
        m.delete(RUN, payload={"success": True})
        await client.request("DELETE", "/reportruns/r1")
    assert SLEPT
    assert SLEPT[0] >= 2
