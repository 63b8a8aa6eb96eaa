"""Both list shapes, both time formats, both user fields; OAuth and legacy; entity and track ids."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME

FAST = ("--rate", "1000", "--concurrency", "16")
OAUTH_ENV = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}
LEGACY_ENV = {"ZUORA_USERNAME": DEMO_USERNAME, "ZUORA_PASSWORD": DEMO_PASSWORD}
TRACK = re.compile(r"zr-([0-9a-f]{16})-(\d+)")


def _header(record, name):
    """A request header by case-insensitive name, or None."""
    return next((v for k, v in record.headers.items() if k.lower() == name.lower()), None)


@pytest.mark.parametrize("user_field", ["nested", "dotted"])
@pytest.mark.parametrize("time_format", ["epoch_ms", "iso"])
@pytest.mark.parametrize("list_shape", ["content", "list"])
def test_every_body_variant_is_read(emu_thread, cli, list_shape, time_format, user_field):
    """Each list shape x time format x user field: same selection, same report fields."""
    emu = emu_thread(runs=0, list_shape=list_shape, time_format=time_format,
                     user_field=user_field, page_cap=4)
    for i in range(9):  # more than two short pages
        emu.add_run(run_id=f"r{i}", age_s=3600 * (i + 1), created_by=f"u{i}@example.com",
                    report_type="Summary" if i % 2 else "Detail")
    young = emu.add_run(run_id="young", age_s=30, created_by="u4@example.com")
    res = cli(emu, "run", *FAST, "--created-by", "u3@example.com",
              "--created-by", "u4@example.com", "--created-by", "u5@example.com")
    assert res.code == 0, res.stderr
    assert emu.cancelled_ids() == {"r3", "r4", "r5"}
    entries = {r["id"]: r for r in res.report["runs"]}
    assert set(entries) == {f"r{i}" for i in range(9)} | {"young"}
    for run_id, entry in entries.items():
        run = emu.runs[run_id]
        assert entry["started_on"].endswith("Z")
        started = datetime.fromisoformat(entry["started_on"].replace("Z", "+00:00"))
        assert abs(started.timestamp() - run.started_on) < 0.0011
        assert entry["created_by"] == run.created_by
        assert entry["report_type"] == run.report_type
        assert entry["report_id"] == run.report_id
    assert entries[young.id]["reason"] == "age_floor"
    assert emu.count("list") >= 4  # pages of 4 until an empty one


def test_list_items_field_names_the_field(emu_thread, cli):
    """--list-items-field content reads the named field of the response object."""
    emu = emu_thread(runs=0, list_shape="content")
    emu.add_run(run_id="r1")
    res = cli(emu, "plan", "--list-items-field", "content")
    assert res.code == 0, res.stderr
    assert res.outcomes() == {"r1": "would_cancel"}


def test_list_items_field_missing_is_exit_6(emu_thread, cli):
    """A configured items field that the response lacks is an error, never 'no runs'."""
    emu = emu_thread(runs=0, list_shape="content")
    emu.add_run(run_id="r1")
    res = cli(emu, "run", "--list-items-field", "items")
    assert res.code == 6
    assert "items" in res.stderr
    assert emu.deletes() == []


def test_oauth_paths_headers_and_entity(emu_thread, cli):
    """OAuth: token form, Bearer header, /reporting/api/rest/v1 paths, Zuora-Entity-Ids."""
    emu = emu_thread(runs=0, entity_id="ent-42")
    emu.add_run(run_id="r1")
    res = cli(emu, "run", *FAST, env={**OAUTH_ENV, "ZUORA_ENTITY_ID": "ent-42"})
    assert res.code == 0, res.stderr
    assert emu.cancelled_ids() == {"r1"}
    token = [r for r in emu.records if r.kind == "token"]
    assert len(token) == 1
    assert token[0].body == {"client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET,
                             "grant_type": "client_credentials"}
    api = [r for r in emu.records if r.kind != "token"]
    assert api
    for rec in api:
        assert rec.path.startswith("/reporting/api/rest/v1/reportruns")
        assert (_header(rec, "Authorization") or "").startswith("Bearer ")
        assert _header(rec, "Zuora-Entity-Ids") == "ent-42"
        assert _header(rec, "apiSecretAccessKey") is None


def test_oauth_without_entity_sends_no_entity_header(emu_thread, cli):
    """Without ZUORA_ENTITY_ID no entity header is sent."""
    emu = emu_thread(runs=0)
    emu.add_run(run_id="r1")
    res = cli(emu, "run", *FAST)
    assert res.code == 0, res.stderr
    assert all(_header(r, "Zuora-Entity-Ids") is None for r in emu.records)


def test_wrong_entity_is_refused(emu_thread, cli):
    """An entity the user may not access is refused at listing: exit 3, nothing cancelled."""
    emu = emu_thread(runs=0, entity_id="ent-42")
    emu.add_run(run_id="r1")
    res = cli(emu, "run", *FAST, env={**OAUTH_ENV, "ZUORA_ENTITY_ID": "ent-other"})
    assert res.code == 3
    assert emu.deletes() == []


def test_legacy_paths_headers_and_entity(emu_thread, cli):
    """Legacy: apiAccessKeyId/apiSecretAccessKey headers, /api/rest/v1 paths, entityId, no token."""
    emu = emu_thread(runs=0, entity_id="ent-7")
    emu.add_run(run_id="r1")
    emu.add_run(run_id="r2")
    res = cli(emu, "run", *FAST, "--auth", "legacy",
              env={**LEGACY_ENV, "ZUORA_ENTITY_ID": "ent-7"})
    assert res.code == 0, res.stderr
    assert emu.cancelled_ids() == {"r1", "r2"}
    assert emu.count("token") == 0
    for rec in emu.records:
        assert rec.path.startswith("/api/rest/v1/reportruns")
        assert _header(rec, "apiAccessKeyId") == DEMO_USERNAME
        assert _header(rec, "apiSecretAccessKey") == DEMO_PASSWORD
        assert _header(rec, "entityId") == "ent-7"
        assert _header(rec, "Authorization") is None
    assert res.report["target"]["auth"] == "legacy"


def test_listing_request_shape(emu_thread, cli):
    """The listing POST asks for the chosen statuses with columns, pagination and sort."""
    emu = emu_thread(runs=0)
    emu.add_run(run_id="r1")
    res = cli(emu, "plan", "--status", "QUERYDATA", "--status", "STARTED", "--page-size", "50")
    assert res.code == 0, res.stderr
    lists = [r for r in emu.records if r.kind == "list"]
    assert sorted(v for k, v in lists[0].query if k == "status") == ["QUERYDATA", "STARTED"]
    body = lists[0].body
    assert body["pagination"] == {"currentPage": 1, "pageSize": 50}
    assert body["sort"][0]["field"] == "startedOn"
    assert body["sort"][0]["direction"] == "asc"
    assert body["columns"] == ["reportId", "startedOn", "reportType",
                               "createdByUserProfile.username", "status"]  # as documented
    assert [r.body["pagination"]["currentPage"] for r in lists] == [1, 2]  # short: one more


def test_the_listing_asks_for_updated_on_only_when_the_selection_needs_it(emu_thread, cli):
    """A column the docs do not show may be dropped or refused: --idle-for (or a rule's
    idle_for) is the only reason to ask for updatedOn."""
    emu = emu_thread(runs=0)
    emu.add_run(run_id="r1")
    res = cli(emu, "plan", "--older-than", "1h", "--idle-for", "30m")
    assert res.code == 0, res.stderr
    assert {r.body["columns"][-1] for r in emu.records if r.kind == "list"} == {"updatedOn"}


def test_every_request_carries_a_track_id(emu_thread, cli):
    """Every request, the token one included, has Zuora-Track-Id = one job id + a sequence no."""
    emu = emu_thread(runs=0)
    for i in range(5):
        emu.add_run(run_id=f"r{i}")
    res = cli(emu, "run", *FAST)
    assert res.code == 0, res.stderr
    first = [TRACK.fullmatch(_header(r, "Zuora-Track-Id") or "") for r in emu.records]
    assert all(first), [r.headers for r in emu.records]
    assert len({m.group(1) for m in first if m}) == 1
    seqs = [int(m.group(2)) for m in first if m]
    assert len(set(seqs)) == len(seqs) == len(emu.records)
    assert res.report["job_id"] == first[0].group(1)

    again = cli(emu, "plan")
    assert again.code == 0
    later = {TRACK.fullmatch(_header(r, "Zuora-Track-Id") or "").group(1)
             for r in emu.records[len(first):]}
    assert len(later) == 1
    assert later.isdisjoint({first[0].group(1)})  # a new job, a new job id


# Zuora's own documented variants: its OpenAPI file contradicts its own example
# (zuora-api.md, real-servers.md): no envelope on GET, reportID, lowercase statuses, date-times.
@pytest.mark.parametrize("get_envelope", [True, False])
@pytest.mark.parametrize("status_case", ["upper", "lower"])
@pytest.mark.parametrize("report_id_field", ["reportId", "reportID"])
def test_zuoras_documented_variants_are_read(emu_thread, cli, tmp_path, get_envelope,
                                             status_case, report_id_field):
    """Listing and --ids-file GETs, in each variant: the same selection, cancels and report."""
    emu = emu_thread(runs=0, get_envelope=get_envelope, status_case=status_case,
                     report_id_field=report_id_field, time_format="iso")
    runs = [emu.add_run(run_id=f"r{i}", age_s=7200) for i in range(3)]
    emu.add_run(run_id="done", status="COMPLETED", age_s=7200)
    listed = cli(emu, "plan", *FAST, "--older-than", "1h")
    assert listed.code == 0, listed.stderr
    assert set(listed.outcomes()) == {r.id for r in runs}
    ids = tmp_path / "ids.txt"
    ids.write_text("r0\nr1\ndone\n")
    res = cli(emu, "run", *FAST, "--older-than", "1h", "--ids-file", str(ids))
    assert res.code == 0, res.stderr
    assert emu.cancelled_ids() == {"r0", "r1"}
    entries = {r["id"]: r for r in res.report["runs"]}
    assert entries["r0"]["report_id"] == runs[0].report_id
    assert entries["r0"]["status"] == "STARTED"
    assert entries["done"]["selected"] is False
    assert entries["done"]["reason"] == "status"


def test_an_unreadable_get_answer_keeps_the_requested_id(cli, tmp_path):
    """--ids-file: a GET answer that is no run keeps the id that was asked for in the report
    (it used to say "id": null) and is never cancelled."""
    from staged import Script, ScriptedZuora, answer, fixed

    reply = fixed(answer({"success": True, "response": {"unexpected": "shape"}}))
    ids = tmp_path / "ids.txt"
    ids.write_text("r-asked\n")
    with ScriptedZuora(Script(replies={"get": reply})) as server:
        res = cli(None, "run", "--base-url", server.origin, *FAST, "--older-than", "1h",
                  "--ids-file", str(ids))
        deletes = server.seen("delete")  # type: ignore[attr-defined]
    assert res.code == 0, res.stderr
    [entry] = res.report["runs"]
    assert entry["id"] == "r-asked"
    assert entry["selected"] is False
    assert "GET answer unreadable" in entry["problem"]
    assert deletes == []
