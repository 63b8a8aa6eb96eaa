"""GET and DELETE of single runs, response headers, records."""

from __future__ import annotations

import re

import pytest

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")


async def test_get_run(api):
    run = api.emu.add_run(status="QUERYDATA", age_s=7200, report_type="Summary")
    answer = await api.get(run.id)
    assert answer.status == 200
    body = answer.json()["response"]
    assert body["id"] == run.id
    assert body["status"] == "QUERYDATA"
    assert body["reportType"] == "Summary"
    assert body["reportDefinition"]["id"] == body["reportId"]
    assert body["createdByUserProfile"] == {"username": "alice@example.com"}
    assert isinstance(body["startedOn"], int)


async def test_get_unknown(api):
    answer = await api.get("f" * 32)
    assert answer.status == 404
    assert answer.json() == {
        "success": False,
        "errorCode": "ZAN-USAGE-REST-ERROR",
        "message": f"An error occurred. The report run with ID {'f' * 32} does not exist.",
    }


async def test_cancel_then_already_cancelled(api):
    run = api.emu.add_run(status="PROCESSINGDATA")
    first = await api.delete(run.id)
    assert (first.status, first.json()) == (
        200,
        {"success": True, "response": "The report run has been canceled"},
    )
    assert api.emu.runs[run.id].status == "CANCELLED"
    second = await api.delete(run.id)
    assert second.json() == {"success": True, "response": "The report run was canceled"}
    assert api.emu.cancelled_ids() == {run.id}
    assert (await api.get(run.id)).json()["response"]["status"] == "CANCELLED"
    assert [r.run_id for r in api.emu.deletes()] == [run.id, run.id]


@pytest.mark.parametrize("status", ["COMPLETED", "ERROR", "INVALID"])
@pytest.mark.parametrize("refusal", [400, 200])
async def test_cancel_refused(api, status, refusal):
    api.emu.config.refusal_status = refusal
    run = api.emu.add_run(status=status)
    answer = await api.delete(run.id)
    assert answer.status == refusal
    assert answer.json() == {
        "success": False,
        "errorCode": "ZAN-USAGE-REST-ERROR",
        "message": f"The report run {run.id} is not in progress",
    }
    assert api.emu.runs[run.id].status == status
    assert not api.emu.cancelled_ids()


async def test_cancel_unknown(api):
    answer = await api.delete("0" * 32)
    assert answer.status == 404
    assert "does not exist" in answer.json()["message"]


async def test_poison_and_forbid(api):
    run = api.emu.add_run()
    api.emu.config.poison_ids = {run.id}
    for answer in (await api.delete(run.id), await api.get(run.id)):
        assert answer.status == 500
        assert answer.json() == {
            "reasons": [{"code": "SystemError", "message": "internal server error"}]
        }
    api.emu.config.poison_ids = set()
    api.emu.config.forbid_cancel = True
    forbidden = await api.delete(run.id)
    assert forbidden.status == 403
    assert forbidden.json()["success"] is False
    assert api.emu.runs[run.id].status == "STARTED"


async def test_legacy_get_and_delete(api):
    run = api.emu.add_run()
    assert (await api.legacy("GET", f"/reportruns/{run.id}")).status == 200
    assert (await api.legacy("DELETE", f"/reportruns/{run.id}")).status == 200
    assert api.emu.cancelled_ids() == {run.id}


async def test_request_and_track_ids(api):
    plain = await api.list()
    assert UUID.match(plain.headers["Zuora-Request-Id"])
    assert "Zuora-Track-Id" not in plain.headers
    tracked = await api.list(headers={"Zuora-Track-Id": "job-42"})
    assert tracked.headers["Zuora-Track-Id"] == "job-42"
    token = await api.get_token()
    assert UUID.match(token.headers["Zuora-Request-Id"])
    assert tracked.headers["Zuora-Request-Id"] != plain.headers["Zuora-Request-Id"]


async def test_wrong_method_and_unknown_path(api):
    run = api.emu.add_run()
    post = await api.call("POST", f"/reporting/api/rest/v1/reportruns/{run.id}")
    assert post.status == 405
    assert (await api.call("GET", "/nowhere")).status == 404
    assert api.emu.runs[run.id].status == "STARTED"


async def test_records(api):
    run = api.emu.add_run(age_s=10, updated_age_s=5)
    assert run.updated_on - run.started_on == pytest.approx(5)
    await api.list(statuses=("STARTED", "QUERYDATA"), page=2, size=7)
    await api.delete(run.id)
    token, listing, delete = api.emu.records
    assert (token.kind, token.status, token.body["grant_type"]) == (
        "token",
        200,
        "client_credentials",
    )
    assert listing.kind == "list"
    assert listing.method == "POST"
    assert listing.query == (("status", "STARTED"), ("status", "QUERYDATA"))
    assert listing.body["pagination"] == {"currentPage": 2, "pageSize": 7}
    assert listing.headers["Authorization"].startswith("Bearer ")
    assert (delete.kind, delete.run_id, delete.status) == ("delete", run.id, 200)
    assert [r.seq for r in api.emu.records] == [1, 2, 3]
    assert api.emu.count() == 3
    assert api.emu.count("delete", 200) == 1
    assert api.emu.count("list", 404) == 0


async def test_clear_runs(api):
    api.emu.clear_runs()
    assert (await api.list()).items() == []
