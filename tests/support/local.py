"""Helpers for tests that start the CLI as a process or talk to a local emulator directly."""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request

from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

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
