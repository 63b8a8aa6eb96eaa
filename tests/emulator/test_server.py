"""EmulatorThread from sync code, and the command line."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from worker.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    EmulatorConfig,
    EmulatorThread,
)

ROOT = Path(__file__).resolve().parents[2]
# talk to 127.0.0.1 directly even when the environment sets HTTP proxies
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _token(base_url: str) -> str:
    form = urllib.parse.urlencode(
        {
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "grant_type": "client_credentials",
        }
    ).encode()
    with OPENER.open(base_url + "/oauth/token", data=form, timeout=5) as resp:
        return str(json.load(resp)["access_token"])


def _list(base_url: str, token: str) -> dict[str, object]:
    req = urllib.request.Request(  # noqa: S310 - http URL of the local emulator
        base_url + "/reporting/api/rest/v1/reportruns?status=STARTED",
        data=json.dumps({"pagination": {"currentPage": 1, "pageSize": 5}}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with OPENER.open(req, timeout=5) as resp:
        return dict(json.load(resp))


def test_emulator_thread_sync():
    with EmulatorThread(EmulatorConfig(runs=10, list_shape="list")) as emu:
        assert emu.base_url.startswith("http://127.0.0.1:")
        body = _list(emu.base_url, _token(emu.base_url))
        assert body["success"] is True
        assert isinstance(body["response"], list)
        assert emu.count("list", 200) == 1


def test_emulator_thread_port_in_use():
    with EmulatorThread(EmulatorConfig(runs=1)) as emu:
        port = int(emu.base_url.rsplit(":", 1)[1])
        with pytest.raises(OSError, match=r"."), EmulatorThread(EmulatorConfig(runs=1), port=port):
            pass
