"""Transport safety: TLS verification always on; plain http only for loopback hosts."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from worker.cli import exit_code_of
from worker.config import load_settings
from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from worker.errors import ApiUnreachable, TransientError
from worker.http import Transport
from worker.job import JobDeps, run_job
from worker.keys import KEYS
from worker.retry import RetryPolicy

ENV = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}
WORKER = Path(__file__).resolve().parents[1] / "worker"


def test_no_option_disables_tls_verification():
    """No config key, flag or env var can turn certificate verification off."""
    words = ("ssl", "tls", "verify", "insecure", "cert")
    assert not [k.name for k in KEYS if any(w in k.name.lower() for w in words)]
    for path in WORKER.rglob("*.py"):
        if "emulator" in path.parts:
            continue
        text = path.read_text()
        for bad in ("ssl=False", "verify_ssl", "CERT_NONE", "check_hostname = False"):
            assert bad not in text, f"{path.name} contains {bad}"


async def test_every_request_verifies_tls_through_the_one_session(make_emulator, monkeypatch):
    """The job's one session verifies chain and host name, and no request turns that off."""
    seen: list[Any] = []
    original = aiohttp.ClientSession._request

    async def spy(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("ssl", True))
        context = self.connector._ssl  # type: ignore[union-attr]
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname is True
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "_request", spy)
    emu = await make_emulator(runs=0)
    emu.add_run(status="STARTED", age_s=7200)
    settings = load_settings("run", {"target.base_url": emu.base_url, "filters.older_than": "1h"},
                             ENV)
    result = await run_job(settings, JobDeps(policy=RetryPolicy(base=0, cap=0)))
    assert result.error is None
    assert len(seen) >= 3  # token, list pages, DELETE
    assert set(seen) == {True}


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_untrusted_certificate_is_refused(self_signed):
    """An https server with a self-signed certificate is refused, never talked to."""
    hits: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"success": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self_signed)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with Transport(limit=1, attempt_timeout=5) as transport:
            with pytest.raises(ApiUnreachable, match=r"(?i)certificate") as caught:
                await transport.send("GET", f"https://127.0.0.1:{port}/", headers={})
            assert not isinstance(caught.value, TransientError)  # never retried
            assert exit_code_of(caught.value) == 6
    finally:
        await runner.cleanup()
    assert hits == []


@pytest.mark.parametrize("url", ["http://example.com", "http://10.0.0.1:8080",
                                 "http://localhost.example.com", "http://127.0.0.1.nip.io",
                                 "http://user@127.0.0.1:1", "ftp://127.0.0.1"])
def test_plain_http_is_refused_off_loopback(cli, url):
    """Plain http:// to a non-loopback host is a config error (exit 2) before any network call."""
    res = cli(None, "run", "--base-url", url, "--older-than", "1h")
    assert res.code == 2
    assert "config error" in res.stderr
    assert res.report is None


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_plain_http_is_allowed_on_loopback(emu_thread, cli, host):
    """The emulator on a loopback host is reachable over plain http."""
    emu = emu_thread(runs=0)
    port = emu.base_url.rsplit(":", 1)[1]
    res = cli(emu, "plan", "--base-url", f"http://{host}:{port}")
    assert res.code == 0, res.stderr
    assert emu.count("list") >= 1
