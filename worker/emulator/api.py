"""The Reporting API endpoints as the emulator answers them: routing, OAuth and legacy auth,
the listing request and its pages, GET and DELETE of a run."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from worker.models import IN_PROGRESS

from .config import DOCUMENTED_COLUMNS, REMOVE, EmulatorConfig
from .faults import list_fault_reply
from .replies import (
    Reply,
    auth_error,
    list_envelope,
    list_item,
    not_found,
    run_detail,
    system_error,
    zan_error,
)
from .runs import REFUSED_CANCEL, EmuRun, State, apply_drift

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path, not a secret
OAUTH_PREFIX = "/reporting/api/rest/v1"
LEGACY_PREFIX = "/api/rest/v1"
METHOD_KINDS = {"GET": "get", "DELETE": "delete"}


@dataclass(frozen=True)
class Route:
    kind: str  # token, list, get, delete, other
    legacy: bool = False
    run_id: str | None = None
    status: int = 404  # for kind "other": 404 unknown path, 405 wrong method


def _api_tail(path: str) -> tuple[bool, str] | None:
    for prefix, legacy in ((OAUTH_PREFIX, False), (LEGACY_PREFIX, True)):
        if path.startswith(prefix + "/"):
            return legacy, path[len(prefix) :].rstrip("/")
    return None


def classify(method: str, path: str) -> Route:
    if path.rstrip("/") == TOKEN_PATH:
        return Route("token") if method == "POST" else Route("other", status=405)
    api = _api_tail(path)
    if api is None:
        return Route("other")
    legacy, tail = api
    if tail == "/reportruns":
        return Route("list", legacy) if method == "POST" else Route("other", legacy, None, 405)
    parts = tail.split("/")
    if len(parts) == 3 and parts[1] == "reportruns" and parts[2]:
        kind = METHOD_KINDS.get(method)
        if kind is None:
            return Route("other", legacy, parts[2], 405)
        return Route(kind, legacy, parts[2])
    return Route("other", legacy)


SORT_KEYS: dict[str, Callable[[EmuRun], Any]] = {
    "startedOn": lambda r: r.started_on,
    "updatedOn": lambda r: r.updated_on,
    "id": lambda r: r.id,
    "reportId": lambda r: r.report_id,
    "reportName": lambda r: r.report_name,
    "reportType": lambda r: r.report_type,
    "status": lambda r: r.status,
    "createdByUserProfile.username": lambda r: r.created_by,
}


class BadListRequest(ValueError):
    """The list body cannot be understood (answered 400)."""


@dataclass(frozen=True)
class ListQuery:
    page: int
    page_size: int
    sort: tuple[tuple[str, bool], ...]  # (field, descending), most significant first


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadListRequest(f"pagination.{name} must be a positive integer")
    return value


def _parse_sort(raw: Any) -> tuple[tuple[str, bool], ...]:
    if raw is None:
        return (("startedOn", False),)
    if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
        raise BadListRequest("sort must be a list of objects")
    specs = sorted(raw, key=lambda s: s.get("priority", 0) if isinstance(s, dict) else 0)
    out: list[tuple[str, bool]] = []
    for spec in specs:
        name = spec.get("field", "startedOn")
        direction = str(spec.get("direction", "asc")).lower()
        if name not in SORT_KEYS or direction not in ("asc", "desc"):
            raise BadListRequest(f"unsupported sort {spec!r}")
        out.append((name, direction == "desc"))
    return tuple(out) or (("startedOn", False),)


def parse_list_body(body: Any, page_cap: int) -> ListQuery:
    """Read pagination and sort; pageSize above page_cap is silently capped."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadListRequest("the request body must be a JSON object")
    pagination = body.get("pagination") or {}
    if not isinstance(pagination, dict):
        raise BadListRequest("pagination must be an object")
    page = _positive_int(pagination.get("currentPage", 1), "currentPage")
    size = _positive_int(pagination.get("pageSize", page_cap), "pageSize")
    columns = body.get("columns")
    if columns is not None and not isinstance(columns, list):
        raise BadListRequest("columns must be a list")
    return ListQuery(page, min(size, page_cap), _parse_sort(body.get("sort")))


def wanted_statuses(values: Iterable[str]) -> set[str]:
    """Statuses from repeated ?status= (comma lists allowed); none means in progress."""
    wanted = {part.strip() for v in values for part in v.split(",") if part.strip()}
    return wanted or set(IN_PROGRESS)


def select(runs: Iterable[EmuRun], statuses: set[str], query: ListQuery) -> list[EmuRun]:
    """Matching runs in the requested order; ties broken by id ascending."""
    chosen = sorted((r for r in runs if r.status in statuses), key=lambda r: r.id)
    for name, descending in reversed(query.sort):
        chosen.sort(key=SORT_KEYS[name], reverse=descending)
    return chosen


def page_of(runs: list[EmuRun], query: ListQuery, clamp: bool = False) -> list[EmuRun]:
    """The runs of the page asked for; with ``clamp``, a page past the end is the last one
    (as many APIs answer)."""
    start = (query.page - 1) * query.page_size
    if clamp and runs and start >= len(runs):
        start = (len(runs) - 1) // query.page_size * query.page_size
    return runs[start : start + query.page_size]


def undocumented_columns(body: Any) -> list[str]:
    """The columns a listing request names that the docs do not show (and ``id``)."""
    columns = body.get("columns") if isinstance(body, dict) else None
    return [c for c in columns or [] if c not in (*DOCUMENTED_COLUMNS, "id")]


def issue_token(state: State, config: EmulatorConfig, form: Mapping[str, str]) -> Reply:
    if config.token_echo_status is not None:  # a server that echoes what it was sent
        secret = form.get("client_secret")
        return Reply(config.token_echo_status, {
            "message": f"bad client_secret {secret}",
            "reasons": [{"code": 1, "message": secret}]})
    """POST /oauth/token with client_credentials."""
    if form.get("grant_type") != "client_credentials":
        return Reply(400, {"message": "Unsupported grant_type"})
    if form.get("client_id") != config.client_id or form.get("client_secret") != (
        config.client_secret
    ):
        return auth_error()
    token = state.issue_token(config.clock() + config.token_ttl)
    entity = config.entity_id or "00000000-0000-0000-0000-000000000000"
    body = {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": int(config.token_ttl),
        "scope": f"user.demo entity.{entity} tenant.19",
        "jti": uuid.uuid4().hex,
    }
    return Reply(200, body)


def check_auth(
    state: State, config: EmulatorConfig, headers: Mapping[str, str], legacy: bool
) -> Reply | None:
    """None when the request may proceed, else the 401/403 Reply."""
    if legacy:
        ok = (
            headers.get("apiAccessKeyId") == config.username
            and headers.get("apiSecretAccessKey") == config.password
        )
    else:
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        ok = scheme.lower() == "bearer" and state.token_valid(token.strip(), config.clock())
    if not ok:
        return auth_error()
    return _check_entity(config, headers, legacy)


def _check_entity(config: EmulatorConfig, headers: Mapping[str, str], legacy: bool) -> Reply | None:
    if config.entity_id is None:
        return None
    sent = headers.get("entityId" if legacy else "Zuora-Entity-Ids")
    if sent == config.entity_id:
        return None
    return zan_error(403, f"Access to entity {sent!r} is not allowed for this user.")


def list_runs(state: State, config: EmulatorConfig, statuses: Iterable[str], body: Any) -> Reply:
    """Answer one page, then apply drift (so drift shows from the next request on)."""
    try:
        query = parse_list_body(body, config.page_cap)
    except BadListRequest as exc:
        return zan_error(400, f"Invalid request: {exc}")
    unknown = undocumented_columns(body)
    if config.columns == "refuse" and unknown:
        return zan_error(400, f"Invalid request: unknown column(s) {', '.join(unknown)}")
    if config.page_size_fixed is not None:  # a server that ignores pageSize
        query = dataclasses.replace(query, page_size=config.page_size_fixed)
    matching = select(list(state.runs.values()), wanted_statuses(statuses), query)
    items = [_listed(run, config) for run in page_of(matching, query, config.clamp_pages)]
    envelope = list_envelope(items, len(matching), query.page, query.page_size, config.list_shape,
                             config.list_totals)
    reply = Reply(200, envelope)
    if config.drift_complete or config.drift_start:
        now = config.clock()
        apply_drift(state.runs, state.rng, config.drift_complete, config.drift_start, now)
    state.listings += 1
    if config.after_list is not None:
        config.after_list(state.listings)
    if config.list_fault is not None:
        return list_fault_reply(config.list_fault, reply)
    return reply


def _listed(run: EmuRun, config: EmulatorConfig) -> object:
    """The run's list item, as the item_patch / item_replace settings garble it."""
    if run.id in config.item_replace:
        return config.item_replace[run.id]
    item = list_item(run, config)
    for name, value in config.item_patch.get(run.id, {}).items():
        if value == REMOVE:
            item.pop(name, None)
        else:
            item[name] = value
    return item


def get_run(state: State, config: EmulatorConfig, run_id: str) -> Reply:
    if run_id in config.poison_ids and config.poison_get:
        return system_error()
    run = state.runs.get(run_id)
    if run is None:
        return not_found(run_id)
    detail = run_detail(run, config)
    return Reply(200, {"success": True, "response": detail} if config.get_envelope else detail)


GARBLED: dict[str, Callable[[], Reply]] = {  # a new Reply each time: headers are added to it
    "html": lambda: Reply(200, raw=b"<html><body>Gateway says hello</body></html>",
                          content_type="text/html"),
    "truncated": lambda: Reply(200, raw=b'{"success": tr'),
    "empty": lambda: Reply(200, raw=b""),
    "list": lambda: Reply(200, [1, 2, 3]),
    "no_success": lambda: Reply(200, {"response": "ok"}),
    "success_text": lambda: Reply(200, {"success": "true", "response": "done"}),
}


def cancel_run(state: State, config: EmulatorConfig, run_id: str, track: str) -> Reply:
    """DELETE, as the garble_cancel setting answers it; ``track`` (the request's
    Zuora-Track-Id) goes in the journal of cancels when this request applies one."""
    garble = config.garble_cancel.get(run_id)
    if garble is None:
        return _cancel(state, config, run_id, track)
    if garble.startswith("cancel+"):
        _cancel(state, config, run_id, track)
    return GARBLED[garble.removeprefix("cancel+")]()


def _cancel(state: State, config: EmulatorConfig, run_id: str, track: str) -> Reply:
    """DELETE: cancel an in-progress run; refuse finished ones."""
    if run_id in config.poison_ids:
        return system_error()
    if config.forbid_cancel:
        return zan_error(403, "You do not have the permission to cancel this report run.")
    run = state.runs.get(run_id)
    if run is None:
        return not_found(run_id)
    if run.status in REFUSED_CANCEL:
        return zan_error(config.refusal_status, f"The report run {run_id} is not in progress")
    if run.status in IN_PROGRESS:
        run.status = "CANCELLED"
        run.updated_on = config.clock()
        state.cancelled.add(run_id)
        state.cancelled_by[run_id] = track
        return Reply(200, {"success": True, "response": "The report run has been canceled"})
    return Reply(200, {"success": True, "response": "The report run was canceled"})
