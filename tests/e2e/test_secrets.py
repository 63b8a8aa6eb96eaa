"""No secret or token in any output: logs at debug level, stdout, stderr, report, repr, errors."""

from __future__ import annotations

import json

import pytest

from worker.config import load_settings
from worker.emulator import DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME
from worker.job import JobDeps, run_job
from worker.retry import RetryPolicy

OAUTH_SECRET_ENV = {"ZUORA_CLIENT_ID": "demo-client-id-0000-0000-0000-000000",
                    "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}
LEGACY_SECRET_ENV = {"ZUORA_USERNAME": DEMO_USERNAME, "ZUORA_PASSWORD": DEMO_PASSWORD}


def _issued_tokens(emu) -> set[str]:
    """Every bearer token the worker sent (so every token the emulator issued and it used)."""
    tokens = set()
    for rec in emu.records:
        scheme, _, token = rec.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            tokens.add(token.strip())
    return tokens


def _assert_clean(res, secrets: set[str]) -> None:
    report = json.dumps(res.report) if res.report is not None else ""
    for secret in secrets:
        for name, text in (("stdout", res.stdout), ("stderr", res.stderr), ("report", report)):
            assert secret not in text, f"a secret leaked into {name}"


def _seed(emu) -> None:
    for _ in range(5):
        emu.add_run(status="STARTED", age_s=7200)
    emu.add_run(status="STARTED", age_s=60)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_oauth_debug_run_leaks_nothing(emu_thread, cli, fmt):
    """A debug-level OAuth run (with a forced token refresh) prints no secret and no token."""
    emu = emu_thread(runs=0, token_ttl=3600)
    _seed(emu)
    res = cli(emu, "run", "--older-than", "1h", "--log-level", "debug", "--log-format", fmt,
              "--output", "json", "--rate", "1000")
    assert res.code == 0, res.stderr
    assert "http.response" in res.stderr, "debug logging was on"
    emu.expire_tokens()
    emu.add_run(status="STARTED", age_s=7200)
    res2 = cli(emu, "run", "--older-than", "1h", "--log-level", "debug", "--log-format", fmt,
               "--rate", "1000")
    assert res2.code == 0, res2.stderr
    tokens = _issued_tokens(emu)
    assert len(tokens) >= 2
    for res_ in (res, res2):
        _assert_clean(res_, {DEMO_CLIENT_SECRET, *tokens})


def test_legacy_debug_run_leaks_nothing(emu_thread, cli):
    """A debug-level legacy run prints neither the password nor the key header."""
    emu = emu_thread(runs=0)
    _seed(emu)
    res = cli(emu, "run", "--older-than", "1h", "--auth", "legacy", "--log-level", "debug",
              "--log-format", "json", "--output", "json", "--rate", "1000", env=LEGACY_SECRET_ENV)
    assert res.code == 0, res.stderr
    assert any(r.headers.get("apiSecretAccessKey") == DEMO_PASSWORD for r in emu.records)
    _assert_clean(res, {DEMO_PASSWORD})


def test_wrong_credentials_leak_nothing(emu_thread, cli):
    """Refused credentials end in exit 3 with a message that does not repeat them."""
    emu = emu_thread(runs=0)
    wrong = "wrong-secret-value-42"
    res = cli(emu, "run", "--older-than", "1h", "--log-level", "debug",
              env={**OAUTH_SECRET_ENV, "ZUORA_CLIENT_SECRET": wrong})
    assert res.code == 3
    _assert_clean(res, {wrong})
    res = cli(emu, "run", "--older-than", "1h", "--auth", "legacy", "--log-level", "debug",
              env={**LEGACY_SECRET_ENV, "ZUORA_PASSWORD": wrong})
    assert res.code == 3
    _assert_clean(res, {wrong})


def test_server_echoing_the_secret_does_not_leak_it(emu_thread, cli):
    """A token endpoint that echoes the client secret in its error body: still nothing leaks."""
    emu = emu_thread(runs=0, token_echo_status=401)
    res = cli(emu, "run", "--older-than", "1h", "--log-level", "debug")
    assert res.code == 3
    assert "bad client_secret" in res.stderr
    _assert_clean(res, {DEMO_CLIENT_SECRET})


async def test_exceptions_and_repr_hold_no_secret(make_emulator):
    """repr(settings) and str() of the errors a job ends with never contain a secret."""
    emu = await make_emulator(runs=0)
    settings = load_settings("run", {"target.base_url": emu.base_url}, OAUTH_SECRET_ENV)
    assert DEMO_CLIENT_SECRET not in repr(settings)
    assert DEMO_CLIENT_SECRET not in str(settings)
    assert DEMO_CLIENT_SECRET not in repr(settings.credentials)
    emu.config.token_echo_status = 400  # the token endpoint echoes the secret it was sent
    result = await run_job(settings, JobDeps(policy=RetryPolicy(base=0, cap=0)))
    assert result.error is not None
    assert DEMO_CLIENT_SECRET not in str(result.error)
    assert DEMO_CLIENT_SECRET not in repr(result.error)
    legacy = load_settings("run", {"target.base_url": emu.base_url, "target.auth": "legacy"},
                           LEGACY_SECRET_ENV)
    assert DEMO_PASSWORD not in repr(legacy)


def test_a_proxy_user_name_is_not_scrubbed_out_of_our_own_plan(emu_thread, cli, tmp_path,
                                                               monkeypatch):
    """A proxy user ``jsmith`` is not a secret (its password is): a --created-by
    jsmith@corp.example filter stays whole in the plan, whose hash then still holds, so the
    run accepts it and cancels that owner's run."""
    emu = emu_thread(runs=0)
    run = emu.add_run(status="STARTED", age_s=7200, created_by="jsmith@corp.example")
    monkeypatch.setenv("HTTP_PROXY", "http://jsmith:pr0xy-pa55@proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the emulator is reached directly
    plan = tmp_path / "plan.json"
    args = ("--older-than", "1h", "--created-by", "jsmith@corp.example", "--rate", "1000")
    made = cli(emu, "plan", *args, "--plan-out", str(plan))
    assert made.code == 0, made.stderr
    assert json.loads(plan.read_text())["filters"]["created_by"] == ["jsmith@corp.example"]
    applied = cli(emu, "run", *args, "--plan", str(plan))
    assert applied.code == 0, applied.stderr
    assert emu.cancelled_ids() == {run.id}


def test_a_short_password_leaves_our_documents_whole(emu_thread, cli):
    """A legacy password ``pass`` used to turn the report's key ``passes`` into ``***es``: the
    report and the --output json document are our own, written as they are, and load back."""
    emu = emu_thread(runs=0, password="pass")
    emu.add_run(status="STARTED", age_s=7200)
    res = cli(emu, "run", "--auth", "legacy", "--older-than", "1h", "--output", "json",
              "--rate", "1000", env={"ZUORA_USERNAME": DEMO_USERNAME, "ZUORA_PASSWORD": "pass"})
    assert res.code == 0, res.stderr
    assert res.report is not None
    assert res.report["passes"] == res.summary["passes"] == 2  # cancel, then none
    assert "***" not in res.stdout
