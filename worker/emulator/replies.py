"""Reply value and the JSON bodies the emulator answers with."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .config import DOCUMENTED_COLUMNS, EmulatorConfig
from .runs import EmuRun, format_time

ZAN_ERROR = "ZAN-USAGE-REST-ERROR"
WWW_AUTHENTICATE = "Basic realm=Zuora API, ZSession realm=Zuora API, Bearer realm=Zuora API"
CONCURRENCY_MESSAGE = (
    "The total number of concurrent requests has exceeded the limit allowed by the system. "
    "Please resubmit your request later."
)


@dataclass
class Reply:
    """An answer before it becomes an aiohttp response."""

    status: int
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    limited: str | None = None

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body).encode("utf-8")


def zan_error(status: int, message: str) -> Reply:
    return Reply(status, {"success": False, "errorCode": ZAN_ERROR, "message": message})


def not_found(run_id: str) -> Reply:
    return zan_error(404, f"An error occurred. The report run with ID {run_id} does not exist.")


def auth_error() -> Reply:
    return Reply(
        401, {"message": "Authentication error"}, headers={"WWW-Authenticate": WWW_AUTHENTICATE}
    )


def system_error() -> Reply:
    return Reply(500, {"reasons": [{"code": "SystemError", "message": "internal server error"}]})


def reasons(status: int, code: int | str, message: str) -> Reply:
    return Reply(status, {"success": False, "reasons": [{"code": code, "message": message}]})


def _user(run: EmuRun, config: EmulatorConfig) -> dict[str, Any]:
    if config.user_field == "none":
        return {}
    if config.user_field == "dotted":
        return {"createdByUserProfile.username": run.created_by}
    return {"createdByUserProfile": {"username": run.created_by}}


def _status(run: EmuRun, config: EmulatorConfig) -> str:
    return run.status.lower() if config.status_case == "lower" else run.status


def list_item(run: EmuRun, config: EmulatorConfig) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": run.id,
        config.report_id_field: run.report_id,
        "reportName": run.report_name,
        "reportType": run.report_type,
        "status": _status(run, config),
        "startedOn": format_time(run.started_on, config.time_format),
    }
    if config.include_updated_on:
        item["updatedOn"] = format_time(run.updated_on, config.time_format)
    item.update(_user(run, config))
    if config.columns == "drop":  # only the documented columns, and the id items carry
        item = {k: v for k, v in item.items()
                if k == "id" or k in DOCUMENTED_COLUMNS or k == config.report_id_field
                or k == "createdByUserProfile"}
    return item


def run_detail(run: EmuRun, config: EmulatorConfig) -> dict[str, Any]:
    detail = {
        "id": run.id,
        config.report_id_field: run.report_id,
        "reportType": run.report_type,
        "status": _status(run, config),
        "startedOn": format_time(run.started_on, config.time_format),
        "updatedOn": format_time(run.updated_on, config.time_format),
        "reportDefinition": {
            "id": run.report_id,
            "name": run.report_name,
            "reportType": run.report_type,
            "dataSource": "InvoiceItem",
        },
        "createdByUserProfile": {"username": run.created_by},
    }
    if not config.get_owner:  # the GET as documented: id, reportId, reportType, status, times
        del detail["createdByUserProfile"]
    return detail


def list_envelope(
    items: list[Any], total: int, page: int, size: int, shape: str, totals: bool = True
) -> dict[str, Any]:
    if shape == "list":
        return {"success": True, "response": items}
    content: dict[str, Any] = {"content": items}
    if totals:
        content.update(totalElements=total, totalPages=-(-total // size))
    content.update(currentPage=page, pageSize=size)
    return {"success": True, "response": content}
