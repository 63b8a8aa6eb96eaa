"""End to end: both auth modes, both list shapes and both time formats over real HTTP."""

from __future__ import annotations

import pytest

from worker.emulator import DEMO_PASSWORD, DEMO_USERNAME

LEGACY_ENV = {"ZUORA_USERNAME": DEMO_USERNAME, "ZUORA_PASSWORD": DEMO_PASSWORD}
API_KINDS = ("list", "get", "delete")


@pytest.mark.parametrize("time_format", ["epoch_ms", "iso"])
@pytest.mark.parametrize("list_shape", ["content", "list"])
@pytest.mark.parametrize("auth", ["oauth", "legacy"])
def test_auth_shape_time_format(emu_thread, cli, stage, fast, auth, list_shape, time_format):
    """Each combination lists, selects by age and cancels exactly the expected runs."""
    emu = emu_thread(runs=0, list_shape=list_shape, time_format=time_format)
    runs = stage(emu)
    env = LEGACY_ENV if auth == "legacy" else None
    res = cli(emu, "run", "--auth", auth, "--older-than", "1h", "--page-size", "3", *fast,
              env=env)
    assert res.code == 0, res.stderr
    want = {runs[n].id for n in ("a", "b", "bot", "g", "h")}
    assert emu.cancelled_ids() == want
    assert res.outcomes() == dict.fromkeys(want, "cancelled")
    api = [r for r in emu.records if r.kind in API_KINDS]
    prefix = "/api/rest/v1/" if auth == "legacy" else "/reporting/api/rest/v1/"
    assert api
    assert all(r.path.startswith(prefix) for r in api)
    assert emu.count("list") >= 3  # page size 3 over 7 in-progress runs, then an empty page
    if auth == "legacy":
        assert emu.count("token") == 0
        assert all(r.headers.get("apiAccessKeyId") == DEMO_USERNAME for r in api)
        assert all("Authorization" not in r.headers for r in api)
    else:
        assert emu.count("token") == 1
        assert all(r.headers.get("Authorization", "").startswith("Bearer ") for r in api)
        assert all("apiSecretAccessKey" not in r.headers for r in api)
    started = {r["id"]: r["started_on"] for r in res.report["runs"]}
    assert all(started[rid] is not None for rid in want)


def test_track_ids_unique_per_request(emu_thread, cli, bulk, fast):
    """Every API request carries a distinct Zuora-Track-Id sharing the job's prefix."""
    emu = emu_thread(runs=0)
    bulk(emu, 5)
    res = cli(emu, "run", "--older-than", "1h", *fast)
    assert res.code == 0, res.stderr
    tracks = [r.headers.get("Zuora-Track-Id") for r in emu.records if r.kind in API_KINDS]
    assert None not in tracks
    assert len(set(tracks)) == len(tracks)
    assert len({t.rsplit("-", 1)[0] for t in tracks}) == 1
