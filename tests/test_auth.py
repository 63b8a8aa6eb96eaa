"""Authentication: the OAuth token (cached, single-flight, retried) and legacy headers."""

from __future__ import annotations

import asyncio

import pytest
from aioresponses import aioresponses

from worker.auth import TOKEN_ATTEMPTS, LegacyAuth, OAuth
from worker.config import Target
from worker.errors import ApiUnreachable, AuthError, UnusableResponse
from worker.http import Transport
from worker.secrets import Credentials

TARGET = Target("https://rest.example.test", None, "oauth")
CREDS = Credentials(client_id="id", client_secret="client-secret-value")
TOKEN = {"access_token": "tok-1", "expires_in": 3600}


async def _oauth(transport: Transport, slept: list[float]) -> OAuth:
    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return OAuth(TARGET, CREDS, transport, sleep=sleep)


async def test_a_failing_token_endpoint_is_tried_four_times_then_unreachable():
    """503 on every try: 4 attempts, 0.4/0.8/1.6 s apart, then ApiUnreachable (exit 6, not 3)."""
    slept: list[float] = []
    async with Transport(limit=1, attempt_timeout=5) as transport:
        auth = await _oauth(transport, slept)
        with aioresponses() as m:
            m.post(TARGET.token_url, status=503, payload={"message": "down"}, repeat=True)
            with pytest.raises(ApiUnreachable, match="the OAuth token request failed after 4"):
                await auth.headers()
    assert auth.token_requests == TOKEN_ATTEMPTS == 4
    assert slept == pytest.approx([0.4, 0.8, 1.6])


async def test_one_token_for_concurrent_callers_then_a_recovered_endpoint():
    """A 503 then a token: ten callers waiting at once share the one fetch."""
    slept: list[float] = []
    async with Transport(limit=1, attempt_timeout=5) as transport:
        auth = await _oauth(transport, slept)
        with aioresponses() as m:
            m.post(TARGET.token_url, status=503, payload={})
            m.post(TARGET.token_url, payload=TOKEN)
            headers = await asyncio.gather(*(auth.headers() for _ in range(10)))
    assert {h["Authorization"] for h in headers} == {"Bearer tok-1"}
    assert auth.token_requests == 2


async def test_refused_credentials_are_an_auth_error_that_hides_the_secret():
    async with Transport(limit=1, attempt_timeout=5) as transport:
        auth = await _oauth(transport, [])
        with aioresponses() as m:
            m.post(TARGET.token_url, status=401,
                   payload={"message": "bad secret client-secret-value"})
            with pytest.raises(AuthError) as caught:
                await auth.headers()
    assert "client-secret-value" not in str(caught.value)
    assert auth.token_requests == 1


async def test_legacy_headers_and_a_401_are_final():
    auth = LegacyAuth(Credentials(username="u", password="p", entity_id="e1"))
    assert await auth.headers() == {"apiAccessKeyId": "u", "apiSecretAccessKey": "p",
                                    "entityId": "e1"}
    with pytest.raises(AuthError, match="ZUORA_USERNAME"):
        await auth.refresh({})


@pytest.mark.parametrize(("status", "body", "error"), [
    (401, {"message": "Authentication error"}, AuthError),
    (403, {"message": "Forbidden"}, AuthError),
    (400, {"error": "invalid_client", "error_description": "bad secret"}, AuthError),
    (404, "<html><title>404 Not Found</title></html>", UnusableResponse),
    (200, "<html><title>Captive portal: sign in</title></html>", UnusableResponse),
    (400, "<html><title>400 Bad Request</title><body>proxy</body></html>", UnusableResponse),
    (200, {"token": "not-the-field"}, UnusableResponse),
])
async def test_only_a_refusal_of_the_credentials_is_an_authentication_failure(status, body,
                                                                              error):
    """Exit 3 means credentials or permissions refused: a 401, a 403, or an OAuth error code.
    A 404 page, a captive portal's 200, a proxy's 400 page, or a 200 without a token say
    nothing of the credentials: an unusable answer (exit 6), naming what to check."""
    async with Transport(limit=1, attempt_timeout=5) as transport:
        auth = await _oauth(transport, [])
        with aioresponses() as m:
            if isinstance(body, str):
                m.post(TARGET.token_url, status=status, body=body, content_type="text/html")
            else:
                m.post(TARGET.token_url, status=status, payload=body)
            with pytest.raises(error) as caught:
                await auth.headers()
    assert type(caught.value) is error
    if error is UnusableResponse:
        assert "check --base-url" in str(caught.value)


@pytest.mark.slow
@pytest.mark.parametrize(("then", "code"), [("unreachable", 6), ("refused", 3)])
def test_a_token_that_cannot_be_renewed_mid_job_stops_it(emu_thread, cli, then, code):
    """The token expires after the listing and the token endpoint then hangs (or refuses a
    rotated secret): every DELETE would fail before it is sent. The job stops with that kind
    (exit 6, or 3), the runs never sent are not_attempted (attempts 0), none is failed, and no
    ending says all went well (it said exit 0 with every run not_attempted)."""
    emu = emu_thread(runs=0, token_ttl=1, stall={"list": 1.0})  # a token lives 0.9 s
    ids = [emu.add_run(status="STARTED", age_s=7200).id for _ in range(3)]

    def token_breaks(answered: int) -> None:
        if answered == 2:  # the page after the listing's one: the token has expired
            if then == "unreachable":
                emu.config.stall = {"list": 1.0, "token": 30.0}
            else:
                emu.config.client_secret = "rotated-secret"

    emu.config.after_list = token_breaks
    res = cli(emu, "run", "--older-than", "1h", "--attempt-timeout", "1.5s",
              "--max-passes", "1", "--rate", "1000")
    assert res.code == code, res.stderr[-2000:]
    assert emu.deletes_received() == {}
    assert res.outcomes() == dict.fromkeys(ids, "not_attempted")
    assert all(r["attempts"] == 0 for r in res.report["runs"])
    assert "no access token" in res.report["exit_reason"]
