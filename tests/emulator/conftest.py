"""Fixtures for the emulator tests: emulators on free ports and a tiny API client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from worker.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_USERNAME,
    Emulator,
)

OAUTH = "/reporting/api/rest/v1"
LEGACY = "/api/rest/v1"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)

    def items(self) -> list[dict[str, Any]]:
        response = self.json()["response"]
        return response if isinstance(response, list) else response["content"]


class Api:
    """Minimal client for the emulator's endpoints."""

    def __init__(self, session: aiohttp.ClientSession, emu: Emulator) -> None:
        self.session = session
        self.emu = emu
        self.token: str | None = None

    async def call(self, method: str, path: str, **kw: Any) -> Answer:
        async with self.session.request(method, self.emu.base_url + path, **kw) as resp:
            return Answer(resp.status, dict(resp.headers), await resp.text())

    async def get_token(self, **form: str) -> Answer:
        data = {
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "grant_type": "client_credentials",
        }
        data.update(form)
        answer = await self.call("POST", "/oauth/token", data=data)
        if answer.status == 200:
            self.token = answer.json()["access_token"]
        return answer

    async def auth(self, headers: dict[str, str] | None = None) -> dict[str, str]:
        if self.token is None:
            await self.get_token()
        out = {"Authorization": f"Bearer {self.token}"}
        out.update(headers or {})
        return out

    async def list(
        self,
        statuses: tuple[str, ...] = ("STARTED", "QUERYDATA", "PROCESSINGDATA"),
        page: int = 1,
        size: int = 100,
        sort: str = "asc",
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        params = [("status", s) for s in statuses]
        if body is None:
            body = {
                "columns": ["reportId", "startedOn", "status"],
                "pagination": {"currentPage": page, "pageSize": size},
                "sort": [{"field": "startedOn", "direction": sort}],
            }
        hdrs = await self.auth(headers)
        return await self.call(
            "POST", f"{OAUTH}/reportruns", params=params, json=body, headers=hdrs
        )

    async def legacy(self, method: str, tail: str, **kw: Any) -> Answer:
        headers = {"apiAccessKeyId": DEMO_USERNAME, "apiSecretAccessKey": DEMO_PASSWORD}
        headers.update(kw.pop("headers", {}))
        return await self.call(method, LEGACY + tail, headers=headers, **kw)

    async def get(self, run_id: str) -> Answer:
        return await self.call("GET", f"{OAUTH}/reportruns/{run_id}", headers=await self.auth())

    async def delete(self, run_id: str) -> Answer:
        return await self.call("DELETE", f"{OAUTH}/reportruns/{run_id}", headers=await self.auth())


MakeEmu = Callable[..., Awaitable[Emulator]]


@pytest.fixture
def make_emu(make_emulator: MakeEmu) -> MakeEmu:
    """The root ``make_emulator`` factory under the emulator suite's short name."""
    return make_emulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def emu(make_emu: MakeEmu) -> Emulator:
    return await make_emu(runs=30)


@pytest.fixture
def api(session: aiohttp.ClientSession, emu: Emulator) -> Api:
    return Api(session, emu)


@pytest.fixture
def api_for(session: aiohttp.ClientSession) -> Callable[[Emulator], Api]:
    return lambda emu: Api(session, emu)
