"""``zuora-reaper check`` against the emulator: credentials, entity, limits; never a DELETE."""

from __future__ import annotations

import json

from worker.emulator import DEMO_CLIENT_ID, DEMO_PASSWORD, DEMO_USERNAME


def test_check_ok_prints_target_auth_count_and_server_limits(emu_thread, cli):
    """Good OAuth credentials: exit 0, the visible count and the limits the server reported."""
    emu = emu_thread(runs=0, rate=5, rate_window=60, concurrency=4)
    for _ in range(3):
        emu.add_run(age_s=7200)
    emu.add_run(status="COMPLETED")
    res = cli(emu, "check")
    assert res.code == 0, res.stderr
    lines = dict(line.split(":", 1) for line in res.stdout.splitlines() if ":" in line)
    assert lines["target"].strip().startswith(emu.base_url)
    assert lines["auth"].strip() == "oauth"
    assert lines["credentials"].strip().startswith("accepted (token obtained")
    assert lines["in progress"].strip() == "3 visible on the first page"
    assert lines["rate limit"].strip().startswith("300 requests per 60s")
    assert lines["concurrency"].strip().startswith("4 requests in flight")
    assert res.stdout.rstrip().endswith("check: OK")
    assert emu.count("token") == 1
    assert emu.count("list") == 1
    assert emu.deletes() == []


def test_check_bad_secret_exits_3_without_listing(emu_thread, cli):
    """A refused client secret exits 3 after the token call; nothing is listed or cancelled."""
    emu = emu_thread(runs=5)
    res = cli(emu, "check", env={"ZUORA_CLIENT_ID": DEMO_CLIENT_ID,
                                 "ZUORA_CLIENT_SECRET": "wrong"})
    assert res.code == 3
    assert "AuthError" in res.stderr
    assert "wrong" not in res.stderr
    assert "check: FAILED" in res.stdout
    assert [r.kind for r in emu.records] == ["token"]


def test_check_legacy_mode_good_and_bad(emu_thread, cli):
    """Legacy credentials are checked by the listing call: 0 when accepted, 3 when refused."""
    emu = emu_thread(runs=0)
    emu.add_run(age_s=7200)
    good = cli(emu, "check", "--auth", "legacy",
               env={"ZUORA_USERNAME": DEMO_USERNAME, "ZUORA_PASSWORD": DEMO_PASSWORD})
    assert good.code == 0, good.stderr
    assert "credentials:  accepted (listing answered)" in good.stdout
    assert "/api/rest/v1" in good.stdout
    bad = cli(emu, "check", "--auth", "legacy",
              env={"ZUORA_USERNAME": DEMO_USERNAME, "ZUORA_PASSWORD": "nope"})
    assert bad.code == 3
    assert emu.count("token") == 0
    assert emu.deletes() == []
    assert [r.path for r in emu.records] == ["/api/rest/v1/reportruns"] * 2


def test_check_entity_refused_then_accepted(emu_thread, cli):
    """A multi-entity tenant refuses the call without ZUORA_ENTITY_ID (3) and accepts it with."""
    emu = emu_thread(runs=0, entity_id="ent-7")
    missing = cli(emu, "check")
    assert missing.code == 3
    with_entity = cli(emu, "check", env={"ZUORA_CLIENT_ID": DEMO_CLIENT_ID,
                                         "ZUORA_CLIENT_SECRET": "demo-secret",
                                         "ZUORA_ENTITY_ID": "ent-7"})
    assert with_entity.code == 0, with_entity.stderr
    assert "entity:       ent-7" in with_entity.stdout
    assert emu.deletes() == []


def test_check_json_output(emu_thread, cli):
    """--output json prints the facts as one JSON object with the reported limits as numbers."""
    emu = emu_thread(runs=0, rate=2, rate_window=60, concurrency=3)
    emu.add_run(age_s=7200)
    res = cli(emu, "check", "--output", "json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["ok"] is True
    assert doc["exit_code"] == 0
    assert doc["in_progress_count"] == 1
    assert doc["in_progress_more"] is False
    assert doc["reported_rate_limit"] == 120
    assert doc["reported_rate_window_s"] == 60
    assert doc["reported_concurrency_limit"] == 3


def test_check_unreachable_api_exits_6(cli, tmp_path):
    """Nothing listening on the target: check exits 6 (the API could not be reached)."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    res = cli(None, "check", "--base-url", f"http://127.0.0.1:{port}", "--auth", "legacy",
              env={"ZUORA_USERNAME": DEMO_USERNAME, "ZUORA_PASSWORD": DEMO_PASSWORD})
    assert res.code == 6, res.stderr


def test_check_requests_carry_one_job_track_id(emu_thread, cli):
    """check's token and listing calls both carry Zuora-Track-Id from one job id."""
    emu = emu_thread(runs=3)
    res = cli(emu, "check")
    assert res.code == 0, res.stderr
    tracks = [r.headers.get("Zuora-Track-Id") for r in emu.records]
    assert [r.kind for r in emu.records] == ["token", "list"]
    assert all(tracks), tracks
    assert len({t.rsplit("-", 1)[0] for t in tracks}) == 1


def test_check_shows_each_quota_window_and_what_a_job_may_send(emu_thread, cli):
    """An API Sandbox's multi-window headers, its hour mostly spent by another client: check
    shows each window, the pace from the shortest, and each longer window's budget for one
    job (its share of what the window has left, when the answer says)."""
    emu = emu_thread(runs=0, limiter="zuora", tenant="api-sandbox", windows_used={3600: 4000})
    res = cli(emu, "check", "--output", "json", "--rate", "100")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    windows = {row["window"]: row for row in doc["quota_windows"]}
    assert list(windows) == ["minute", "hourly", "daily"]
    assert windows["minute"]["pace_per_s"] == 20.825  # 0.5 x 2,499 / 60
    assert windows["minute"]["job_budget"] is None
    hour = windows["hourly"]
    assert (hour["quota"], hour["remaining"], hour["job_budget"]) == (5000, 999, 499)
    assert "(999 left): a job may send 499 (about 496 cancels)" in hour["text"]
    assert windows["daily"]["job_budget"] == 5000
    assert doc["reported_rate_limit"] == 2500
    assert doc["reported_rate_window_s"] == 60
    text = cli(emu, "check", "--rate", "100").stdout
    assert "2,500 requests per 60s: paced at 20.8/s; 5,000 requests per 3600s" in text


def test_check_capture_writes_the_shape_of_the_answers_and_no_value(emu_thread, cli, tmp_path):
    """--capture FILE: the first listing page's and one GET's field names, types and how many
    runs carried each, with the answers' header names; not one value (run ids, owners, report
    names, the token) is in the file."""
    emu = emu_thread(runs=0, get_owner=False)
    runs = [emu.add_run(status="STARTED", age_s=7200, created_by=f"person{i}@example.com")
            for i in range(3)]
    capture = tmp_path / "capture.json"
    res = cli(emu, "check", "--capture", str(capture))
    assert res.code == 0, res.stderr
    doc = json.loads(capture.read_text())
    fields = doc["listing"]["run_fields"]
    assert fields["id"] == {"carried_by": 3, "types": ["string"]}
    assert fields["createdByUserProfile"]["fields"]["username"]["types"] == ["string"]
    assert doc["listing"]["runs"] == 3
    assert doc["listing"]["status"] == 200
    assert "content-type" in doc["listing"]["header_names"]
    assert "createdByUserProfile" not in doc["get"]["body"]["response"]  # as documented
    assert doc["get"]["body"]["response"]["id"] == "string"
    text = capture.read_text()
    tokens = [r.headers.get("Authorization", "").partition(" ")[2] for r in emu.records]
    for value in [*(r.id for r in runs), *(r.created_by for r in runs), "Emulated report",
                  *filter(None, tokens)]:
        assert value not in text
    assert [r.kind for r in emu.records] == ["token", "list", "get"]


def test_check_capture_shows_no_value_used_as_a_name(emu_thread, cli, tmp_path):
    """Names are data too: a server that keys fields by owner, run id or report name (or
    echoes the token as a name) has them shown by length alone, never as written."""
    emu = emu_thread(runs=0)
    run = emu.add_run(status="STARTED", age_s=7200, created_by="owner0@corp.example")
    emu.config.item_patch = {run.id: {"owner0@corp.example": 1, run.id: "x",
                                      "Quarterly layoffs 2027": 2, "john_smith": "x@y.z"}}
    capture = tmp_path / "capture.json"
    res = cli(emu, "check", "--capture", str(capture))
    assert res.code == 0, res.stderr
    text = capture.read_text()
    for value in ("owner0", "corp.example", run.id, "Quarterly", "x@y.z", "john_smith"):
        assert value not in text
    fields = json.loads(text)["listing"]["run_fields"]
    assert "reportType" in fields  # a name Zuora's answers use is shown
    assert "<a name of 19 characters>" in fields


def test_capture_names_never_carry_a_secret():
    from worker.capture import Names

    names = Names(["tokSECRET123abc"])
    assert names.field("reportId") == "reportId"
    assert names.field("tokSECRET123abc") == "<a name of 15 characters>"
    assert names.field("reportingBot") == "<a name of 12 characters>"  # reads as a field
    assert names.field("alice") == "<a name of 5 characters>"
    assert names.headers(["Content-Type", "X-Token-Secret"]) == {
        "header_names": ["content-type"], "other_header_names": 1}
