"""Nothing leaks: a server that echoes the client secret (raw, URL-encoded, form-encoded,
base64) and the access token into run fields and error bodies finds none of them in any output
stream or file: stdout (table and --output json), stderr, the report, the plan file, the
metrics file, the webhook body, ``check`` and config errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from staged import TOKEN, Script, ScriptedZuora, answer, fixed, run_item

SECRET = "s3cr3t/with+plus&eq=x y"
FORMS = [SECRET, quote(SECRET, safe=""), quote_plus(SECRET),
         base64.b64encode(SECRET.encode()).decode().rstrip("="), TOKEN]
ENV = {"ZUORA_CLIENT_ID": "client-id-for-echo-tests", "ZUORA_CLIENT_SECRET": SECRET}
FAST = ("--rate", "1000", "--concurrency", "2", "--older-than", "1h")


def _echoing_run(run_id: str, owner: str) -> dict[str, Any]:
    return {**run_item(run_id), "reportType": SECRET, "reportName": TOKEN,
            "createdByUserProfile": {"username": owner}}


@pytest.fixture
def echo_server() -> Iterator[ScriptedZuora]:
    refusal = {"success": False, "message": f"you sent token={TOKEN} and "
                                            f"client_secret={quote_plus(SECRET)} "
                                            f"({base64.b64encode(SECRET.encode()).decode()})"}
    server = ScriptedZuora(Script(runs=[run_item("r0"), _echoing_run("r1", quote_plus(SECRET)),
                                        _echoing_run("r2", TOKEN)],
                                  replies={"delete": fixed(answer(refusal, 400))}))
    server.__enter__()
    yield server
    server.__exit__(None, None, None)


def _leaks(*texts: str) -> list[str]:
    return [form for form in FORMS for text in texts if form in text]


@pytest.mark.parametrize("output", ["text", "json"])
def test_run_outputs_hold_no_secret(echo_server, cli, tmp_path: Path, output: str) -> None:
    prom = tmp_path / "m.prom"
    res = cli(None, "run", "--base-url", echo_server.origin, *FAST, "--output", output,
              "--metrics-file", str(prom), "--notify-webhook", echo_server.origin + "/hook",
              "--log-level", "debug", env=ENV)
    assert res.code == 1, res.stderr  # r0's DELETE refused, the read-back says STARTED
    runs = {r["id"]: r for r in res.report["runs"]}
    assert runs["r0"]["outcome"] == "failed"
    echoed = [r for r in res.report["runs"] if r["id"] != "r0"]
    assert len(echoed) == 2  # fields holding a secret: read scrubbed, never selected
    assert all(not r["selected"] and "configured secret" in r["problem"] for r in echoed)
    assert all(r["report_type"] == "***" for r in echoed)
    hooks = [r.body.decode() for r in echo_server.requests if r.path == "/hook"]
    assert hooks
    assert res.report is not None
    texts = [res.stdout, res.stderr, json.dumps(res.report), prom.read_text(), *hooks]
    assert _leaks(*texts) == []
    assert "***" in res.stderr  # the echo was there, and scrubbed


def test_plan_file_holds_no_secret(echo_server, cli, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    res = cli(None, "plan", "--base-url", echo_server.origin, *FAST, "--plan-out", str(plan),
              env=ENV)
    assert res.code == 0, res.stderr
    assert _leaks(plan.read_text(), res.stdout, res.stderr) == []


def test_check_error_echoing_the_secret_holds_none(cli) -> None:
    refusal = {"error": "invalid_client", "message": f"bad secret {SECRET} / {quote_plus(SECRET)}"}
    with ScriptedZuora(Script(replies={"token": fixed(answer(refusal, 401))})) as server:
        res = cli(None, "check", "--base-url", server.origin, env=ENV)  # type: ignore[attr-defined]
    assert res.code == 3
    assert _leaks(res.stdout, res.stderr) == []


def test_config_errors_echo_no_secret(cli) -> None:
    res = cli(None, "plan", "--base-url", "https://rest.zuora.com", "--older-than", SECRET,
              env=ENV)
    assert res.code == 2
    assert _leaks(res.stderr) == []


def test_base_url_with_user_info_is_refused_without_echo(cli) -> None:
    res = cli(None, "plan", "--base-url", "https://api-user:hunter2-pass@rest.zuora.com",
              env=ENV)
    assert res.code == 2
    assert "user:password@" in res.stderr
    assert "hunter2-pass" not in res.stderr
    assert "api-user" not in res.stderr


@pytest.mark.parametrize("where", ["token", "delete"])
def test_a_secret_straddling_a_cut_is_scrubbed_whole(cli, where) -> None:
    """Error texts are cut (500 characters of a body's message, 300 of an error): a secret
    echoed across the cut kept its head when texts were cut before they were scrubbed."""
    body = {"success": False, "message": "x" * 485 + SECRET + " was sent"}
    script = (Script(replies={"token": fixed(answer(body, 401))}) if where == "token"
              else Script(runs=[run_item("r1")], replies={"delete": fixed(answer(body, 400))}))
    with ScriptedZuora(script) as server:
        res = cli(None, "run", "--base-url", server.origin, *FAST, env=ENV)  # type: ignore[attr-defined]
    texts = [res.stdout, res.stderr, json.dumps(res.report)]
    assert not any(SECRET[:8] in text for text in texts)
