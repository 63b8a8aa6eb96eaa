"""A hostile server that controls every byte (tests/support/staged.py), one case a row. For
each: no secret or token in any output stream or file (every encoded form grepped), the exit
code as documented, a report whenever anything was listed, and no request for an id the server
did not send or for a run that must not be touched."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import orjson
import pytest
from staged import (
    TOKEN,
    Reply,
    Script,
    ScriptedZuora,
    answer,
    deep_json,
    fixed,
    run_item,
    status_page,
)

SECRET = "hostile/secret+value&x=1 2"
ENV = {"ZUORA_CLIENT_ID": "hostile-client-id", "ZUORA_CLIENT_SECRET": SECRET}
FORMS = [SECRET, quote(SECRET, safe=""), quote_plus(SECRET), html.escape(SECRET),
         base64.b64encode(SECRET.encode()).decode().rstrip("="), TOKEN]
GATEWAY_504 = b"<html><head><title>504 Gateway Time-out</title></head><body>nginx</body></html>"


def _page(items: list[Any], raw_id: bytes | None = None) -> Reply:
    """A listing page; ``raw_id`` is spliced in as the first item's id, byte for byte."""
    body = orjson.dumps({"success": True, "response": items})
    if raw_id is not None:
        body = body.replace(b'"RAW"', raw_id, 1)
    return fixed(answer(body, headers=(("Content-Type", "application/json"),)))


def _echo(run_id: str) -> dict[str, Any]:
    return {**run_item(run_id), "reportType": SECRET,
            "createdByUserProfile": {"username": f"{TOKEN} {quote_plus(SECRET)}"}}


@dataclass
class Case:
    script: Script
    command: str = "run"
    code: int = 0
    deletes: set[str] = field(default_factory=set)  # exactly the ids that may get a DELETE
    outcomes: dict[str, str] = field(default_factory=dict)
    listed: bool = True  # False: nothing could be listed (page 1 unusable), so no report


CASES: dict[str, Any] = {
    # A run whose fields echo the secret and token is scrubbed as it is read and never
    # cancelled (a scrubbed owner could no longer match an exclusion); the clean one is.
    "secret and token echoed in run fields": lambda: Case(
        Script(runs=[_echo("e1"), run_item("ok")]), deletes={"ok"},
        outcomes={"ok": "cancelled"}),
    "token echoed in a DELETE refusal": lambda: Case(
        Script(runs=[run_item("e1")], replies={"delete": fixed(answer(
            {"success": False, "message": f"denied for {TOKEN} / {quote(SECRET, safe='')}"},
            400))}), code=1, deletes={"e1"}, outcomes={"e1": "failed"}),
    # A gateway's HTML page quoting what it rejected, HTML-escaped: the snippet unescapes it,
    # so the secret must be scrubbed again after that, not only in the raw text.
    "secret HTML-escaped in a DELETE's error page": lambda: Case(
        Script(runs=[run_item("e1")], replies={"delete": status_page(
            400, f"<html><title>Rejected client_secret={html.escape(SECRET)}</title></html>"
            .encode(), "text/html")}), code=1, deletes={"e1"}, outcomes={"e1": "failed"}),
    # A byte that is not UTF-8 in a header the message quotes: aiohttp keeps it as a lone
    # surrogate, which broke the JSON log line of the summary (a traceback, exit 1).
    "a non-UTF-8 byte in a listing's Content-Type": lambda: Case(
        Script(replies={"list": fixed(answer(b"<html>maintenance</html>",
                                             headers=(("Content-Type", "text/h\xfftml"),)))}),
        code=6, listed=False),
    # One run listed twice with two owners: an exclusion judged on one sighting must not be
    # passed on the other (in either order); such a run is never cancelled in this job.
    "an excluded run listed again with another owner": lambda: Case(
        Script(runs=[{**run_item("r1"), "createdByUserProfile": {"username": "ceo@x.test"}},
                     run_item("ok")],
               later_pages=[[run_item("r1")]]), command="run-excluding-ceo",
        deletes={"ok"}, outcomes={"ok": "cancelled"}),
    "a selected run listed again with the excluded owner": lambda: Case(
        Script(runs=[run_item("r1"), run_item("ok")],
               later_pages=[[{**run_item("r1"), "createdByUserProfile": {
                   "username": "ceo@x.test"}}]]), command="run-excluding-ceo",
        deletes={"ok"}, outcomes={"ok": "cancelled"}),
    "100k-deep JSON on page 2": lambda: Case(
        Script(runs=[run_item("p1")], replies={"list2": deep_json()}), code=6),
    "lone surrogate in an id": lambda: Case(
        Script(replies={"list": _page([{**run_item("x"), "id": "RAW"}], b'"bad\\ud800"')}),
        code=6, listed=False),
    "lone surrogate in a report type on page 2": lambda: Case(
        Script(runs=[run_item("p1")], replies={"list2": _page(
            [{**run_item("p2"), "reportType": "RAW"}], b'"type\\udfff"')}), code=6),
    "invalid UTF-8 in an id": lambda: Case(
        Script(replies={"list": _page([{**run_item("x"), "id": "RAW"}], b'"bad-id-\xff"')}),
        code=6, listed=False),
    "padded, dot and empty ids": lambda: Case(
        Script(runs=[run_item(" padded "), run_item("."), run_item(".."), run_item(""),
                     run_item("ok")]), deletes={"ok"}, outcomes={"ok": "cancelled"}),
    "a run COMPLETED on page 1, STARTED on page 2": lambda: Case(
        Script(runs=[run_item("c1", status="COMPLETED"), run_item("ok")],
               later_pages=[[run_item("c1")]]), deletes={"ok"},
        outcomes={"ok": "cancelled"}),
    "gateway 504 on every DELETE, applied behind it": lambda: Case(
        Script(runs=[run_item("g1"), run_item("g2")],
               replies={"delete": status_page(504, GATEWAY_504, "text/html")},
               applied_behind=True),
        deletes={"g1", "g2"}, outcomes={"g1": "cancelled", "g2": "cancelled"}),
    "a GET answering another run (--ids-file)": lambda: Case(
        Script(replies={"get": fixed(answer({"success": True,
                                             "response": run_item("someone-else")}))}),
        deletes=set()),
}


def _ids_args(name: str, tmp_path: Path) -> list[str]:
    if "--ids-file" not in name:
        return []
    ids = tmp_path / "ids.txt"
    ids.write_text("asked-for\n")
    return ["--ids-file", str(ids)]


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_case(name: str, cli, tmp_path: Path) -> None:
    case: Case = CASES[name]()
    prom, plan = tmp_path / "m.prom", tmp_path / "plan.json"
    with ScriptedZuora(case.script) as server:
        command, *extra = case.command.split("-excluding-")
        if extra:  # one page a run (so a later page can list it again), an owner excluded
            extra = ["--page-size", "2", "--exclude-created-by", f"{extra[0]}@x.test"]
        res = cli(None, command, *extra, "--base-url", server.origin, "--rate", "1000",
                  "--concurrency", "2", "--older-than", "1h", "--max-attempts", "2",
                  "--metrics-file", str(prom),
                  "--notify-webhook", server.origin + "/hook", "--log-level", "debug",
                  *_ids_args(name, tmp_path), env=ENV)
        requests = list(server.requests)  # type: ignore[attr-defined]
    assert res.code == case.code, res.stderr
    assert "Traceback" not in res.stderr
    deleted = {r.path.rsplit("/", 1)[1] for r in requests if r.method == "DELETE"}
    assert deleted == {quote(i, safe="") for i in case.deletes}
    listed = any(r.path.endswith("/reportruns") for r in requests)
    if (listed and case.code != 6) or name.endswith("on page 2"):
        assert res.report is not None, "a report whenever anything was listed"
    if case.outcomes:
        assert res.outcomes() == case.outcomes
    outputs = [res.stdout, res.stderr, json.dumps(res.report),
               prom.read_text() if prom.exists() else "",
               plan.read_text() if plan.exists() else "",
               *(r.body.decode("utf-8", "replace") for r in requests if r.path == "/hook")]
    leaks = [form for form in FORMS for text in outputs if form in text]
    assert leaks == []
