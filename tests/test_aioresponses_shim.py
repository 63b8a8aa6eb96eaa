"""The aioresponses shim works on this aiohttp (narrow client edge cases use aioresponses)."""

from __future__ import annotations

import aiohttp
from aioresponses import aioresponses


async def test_aioresponses_builds_responses_on_current_aiohttp():
    """A mocked GET returns its payload (fails with 'stream_writer' without the shim)."""
    with aioresponses() as mocked:
        mocked.get("https://rest.zuora.com/x", payload={"ok": True}, status=200)
        async with aiohttp.ClientSession() as session, \
                session.get("https://rest.zuora.com/x") as resp:
            assert resp.status == 200
            assert await resp.json() == {"ok": True}
