"""The list call: shapes, time formats, paging, filtering, sorting, drift, seeding."""

from __future__ import annotations

import json
import re

import pytest

from worker.emulator import Emulator, EmulatorConfig

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
ACTIVE = {"STARTED", "QUERYDATA", "PROCESSINGDATA"}


async def test_content_shape_default(api):
    answer = await api.list(size=5)
    assert answer.status == 200
    body = answer.json()
    assert body["success"] is True
    page = body["response"]
    active = sum(1 for r in api.emu.runs.values() if r.status in ACTIVE)
    assert page["totalElements"] == active == 21  # round(30 * 0.7)
    assert page["totalPages"] == 5
    assert (page["currentPage"], page["pageSize"]) == (1, 5)
    item = page["content"][0]
    assert set(item) >= {"id", "reportId", "reportType", "status", "startedOn", "updatedOn"}
    assert re.fullmatch(r"[0-9a-f]{32}", item["id"])
    assert isinstance(item["startedOn"], int)
    assert item["startedOn"] > 10**12
    assert item["createdByUserProfile"]["username"].endswith("@example.com")


async def test_list_shape_iso_dotted_no_updated(api):
    cfg = api.emu.config
    cfg.list_shape, cfg.time_format, cfg.user_field = "list", "iso", "dotted"
    cfg.include_updated_on = False
    body = (await api.list(size=3)).json()
    assert isinstance(body["response"], list)
    assert len(body["response"]) == 3
    item = body["response"][0]
    assert ISO.match(item["startedOn"])
    assert "updatedOn" not in item
    assert "createdByUserProfile.username" in item


async def test_paging_with_cap_and_empty_end(make_emu, api_for):
    emu = await make_emu(runs=25, in_progress_share=1.0, page_cap=10)
    api = api_for(emu)
    seen: list[str] = []
    sizes = []
    for page in range(1, 10):
        items = (await api.list(page=page, size=100)).items()
        sizes.append(len(items))
        if not items:
            break
        seen += [i["id"] for i in items]
    assert sizes == [10, 10, 5, 0]
    assert sorted(seen) == sorted(emu.runs)
    last = (await api.list(page=3, size=100)).json()["response"]
    assert (last["pageSize"], last["totalPages"], last["totalElements"]) == (10, 3, 25)


async def test_status_filter(api):
    items = (await api.list(statuses=("COMPLETED", "ERROR"), size=100)).items()
    assert items
    assert {i["status"] for i in items} <= {"COMPLETED", "ERROR"}
    expected = {r.id for r in api.emu.runs.values() if r.status in ("COMPLETED", "ERROR")}
    assert {i["id"] for i in items} == expected
    # no status parameter: in-progress runs only
    default = (await api.list(statuses=(), size=100)).items()
    assert {i["status"] for i in default} <= ACTIVE
    assert len(default) == 21


@pytest.mark.parametrize("direction", ["asc", "desc"])
async def test_sort(api, direction):
    items = (await api.list(size=100, sort=direction)).items()
    started = [i["startedOn"] for i in items]
    assert started == sorted(started, reverse=direction == "desc")


async def test_sort_other_field_and_no_body(api):
    body = {"sort": [{"field": "createdByUserProfile.username", "direction": "DESC"}]}
    users = [i["createdByUserProfile"]["username"] for i in (await api.list(body=body)).items()]
    assert users == sorted(users, reverse=True)
    no_body = await api.call("POST", "/reporting/api/rest/v1/reportruns", headers=await api.auth())
    assert no_body.status == 200
    assert len(no_body.items()) == 21


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        {"pagination": {"currentPage": 0, "pageSize": 10}},
        {"pagination": {"currentPage": 1, "pageSize": "x"}},
        {"sort": [{"field": "nope", "direction": "asc"}]},
        {"sort": "startedOn"},
    ],
)
async def test_invalid_body(api, body):
    answer = await api.list(body=body)
    assert answer.status == 400
    assert answer.json()["success"] is False


async def test_malformed_json(api):
    headers = await api.auth({"Content-Type": "application/json"})
    answer = await api.call(
        "POST", "/reporting/api/rest/v1/reportruns", data=b"{not json", headers=headers
    )
    assert answer.status == 400
    assert api.emu.records[-1].body == "{not json"


async def test_drift_between_pages(make_emu, api_for):
    emu = await make_emu(runs=20, in_progress_share=1.0, drift_complete=3, drift_start=2)
    api = api_for(emu)
    first = (await api.list(size=100)).items()
    assert len(first) == 20
    second = (await api.list(size=100)).items()
    assert len(second) == 20 - 3 + 2
    # drift is applied after each list answer: twice by now
    assert sum(1 for r in emu.runs.values() if r.status == "COMPLETED") == 6
    assert len(emu.runs) == 24
    assert {i["id"] for i in second} - {i["id"] for i in first}  # newly started runs show


def _snapshot(emu: Emulator) -> list[tuple[str, str, str, str, float]]:
    return sorted(
        (r.id, r.status, r.report_type, r.created_by, round(r.updated_on - r.started_on, 6))
        for r in emu.runs.values()
    )


def test_seed_reproducible():
    a = Emulator(EmulatorConfig(runs=50, seed=7, clock=lambda: 1e9))
    b = Emulator(EmulatorConfig(runs=50, seed=7, clock=lambda: 1e9))
    c = Emulator(EmulatorConfig(runs=50, seed=8, clock=lambda: 1e9))
    assert _snapshot(a) == _snapshot(b)
    assert [r.started_on for r in a.runs.values()] == [r.started_on for r in b.runs.values()]
    assert _snapshot(a) != _snapshot(c)
    assert sum(1 for r in a.runs.values() if r.status in ACTIVE) == 35
    assert {r.report_type for r in a.runs.values()} == {"Detail", "Summary"}


async def test_runs_file(tmp_path, make_emu, api_for):
    runs = [
        {
            "id": "a" * 32,
            "reportId": "r1",
            "reportType": "Summary",
            "status": "QUERYDATA",
            "startedOn": 1453166692000,
            "updatedOn": 1453166699000,
            "createdBy": "x@example.com",
        },
        {"id": "b" * 32, "status": "COMPLETED", "startedOn": "2018-04-13T02:11:38.464+0000"},
    ]
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(runs))
    emu = await make_emu(runs_file=str(path), time_format="iso")
    assert set(emu.runs) == {"a" * 32, "b" * 32}
    assert emu.runs["b" * 32].started_on == pytest.approx(1523585498.464)
    items = (await api_for(emu).list()).items()
    assert [i["id"] for i in items] == ["a" * 32]
    assert items[0]["startedOn"] == "2016-01-19T01:24:52.000+0000"
    assert items[0]["createdByUserProfile"] == {"username": "x@example.com"}


def test_runs_file_invalid(tmp_path):
    path = tmp_path / "runs.json"
    path.write_text('{"id": "x"}')
    with pytest.raises(ValueError, match="JSON list"):
        Emulator(EmulatorConfig(runs_file=str(path)))


def test_config_validation():
    with pytest.raises(ValueError, match="list_shape"):
        Emulator(EmulatorConfig(list_shape="pages"))
    with pytest.raises(ValueError, match="list_fault"):
        Emulator(EmulatorConfig(list_fault="boom"))
