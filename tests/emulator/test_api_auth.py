"""Token endpoint, bearer and legacy auth, expiry, entity header."""

from __future__ import annotations

from worker.emulator import DEMO_CLIENT_ID

OAUTH = "/reporting/api/rest/v1"
REALMS = "Basic realm=Zuora API, ZSession realm=Zuora API, Bearer realm=Zuora API"


async def test_token_issued(api):
    answer = await api.get_token()
    assert answer.status == 200
    body = answer.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["scope"].endswith("tenant.19")
    assert len(body["access_token"]) >= 32
    assert body["jti"]
    assert len(DEMO_CLIENT_ID) == 36


async def test_token_bad_credentials_and_grant(api):
    bad = await api.get_token(client_secret="nope")
    assert bad.status == 401
    assert bad.json() == {"message": "Authentication error"}
    grant = await api.get_token(grant_type="password")
    assert grant.status == 400
    assert api.emu.count("token") == 2


async def test_bearer_required(api):
    missing = await api.call("POST", f"{OAUTH}/reportruns", json={})
    assert missing.status == 401
    assert missing.json() == {"message": "Authentication error"}
    assert missing.headers["WWW-Authenticate"] == REALMS
    wrong = await api.call("GET", f"{OAUTH}/reportruns/x", headers={"Authorization": "Bearer x"})
    assert wrong.status == 401
    assert (await api.list()).status == 200


async def test_expire_tokens(api):
    assert (await api.list()).status == 200
    api.emu.expire_tokens()
    assert (await api.list()).status == 401
    await api.get_token()
    assert (await api.list()).status == 200


async def test_token_ttl_with_fake_clock(make_emu, api_for):
    now = [1_700_000_000.0]
    emu = await make_emu(runs=3, token_ttl=10, clock=lambda: now[0])
    api = api_for(emu)
    assert (await api.get_token()).json()["expires_in"] == 10
    assert (await api.list()).status == 200
    now[0] += 11
    assert (await api.list()).status == 401


async def test_legacy_headers(api):
    ok = await api.legacy("POST", "/reportruns", json={})
    assert ok.status == 200
    assert ok.json()["success"] is True
    bad = await api.call(
        "POST", "/api/rest/v1/reportruns", json={}, headers={"apiAccessKeyId": "x"}
    )
    assert bad.status == 401
    # a bearer token does not open the legacy host
    bearer = await api.call("POST", "/api/rest/v1/reportruns", json={}, headers=await api.auth())
    assert bearer.status == 401


async def test_entity_header(api):
    api.emu.config.entity_id = "ent-1"
    assert (await api.list()).status == 403
    assert (await api.list(headers={"Zuora-Entity-Ids": "ent-1"})).status == 200
    assert (await api.legacy("POST", "/reportruns", json={})).status == 403
    legacy = await api.legacy("POST", "/reportruns", json={}, headers={"entityId": "ent-1"})
    assert legacy.status == 200
