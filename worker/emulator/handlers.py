"""Report-run operations: list, get, cancel. Pure functions of state and config."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .config import EmulatorConfig
from .faults import list_fault_reply
from .listing import BadListRequest, page_of, parse_list_body, select, wanted_statuses
from .model import IN_PROGRESS, REFUSED_CANCEL
from .population import apply_drift
from .replies import Reply, list_envelope, list_item, not_found, run_detail, system_error
from .replies import zan_error as zan
from .state import State


def list_runs(state: State, config: EmulatorConfig, statuses: Iterable[str], body: Any) -> Reply:
    """Answer one page, then apply drift (so drift shows from the next request on)."""
    try:
        query = parse_list_body(body, config.page_cap)
    except BadListRequest as exc:
        return zan(400, f"Invalid request: {exc}")
    matching = select(list(state.runs.values()), wanted_statuses(statuses), query)
    items = [list_item(run, config) for run in page_of(matching, query)]
    envelope = list_envelope(items, len(matching), query.page, query.page_size, config.list_shape)
    reply = Reply(200, envelope)
    if config.drift_complete or config.drift_start:
        now = config.clock()
        apply_drift(state.runs, state.rng, config.drift_complete, config.drift_start, now)
    if config.list_fault is not None:
        return list_fault_reply(config.list_fault, reply)
    return reply


def get_run(state: State, config: EmulatorConfig, run_id: str) -> Reply:
    if run_id in config.poison_ids and config.poison_get:
        return system_error()
    run = state.runs.get(run_id)
    if run is None:
        return not_found(run_id)
    detail = run_detail(run, config)
    return Reply(200, {"success": True, "response": detail} if config.get_envelope else detail)


def cancel_run(state: State, config: EmulatorConfig, run_id: str) -> Reply:
    """DELETE: cancel an in-progress run; refuse finished ones."""
    if run_id in config.poison_ids:
        return system_error()
    if config.forbid_cancel:
        return zan(403, "You do not have the permission to cancel this report run.")
    run = state.runs.get(run_id)
    if run is None:
        return not_found(run_id)
    if run.status in REFUSED_CANCEL:
        return zan(config.refusal_status, f"The report run {run_id} is not in progress")
    if run.status in IN_PROGRESS:
        run.status = "CANCELLED"
        run.updated_on = config.clock()
        state.cancelled.add(run_id)
        return Reply(200, {"success": True, "response": "The report run has been canceled"})
    return Reply(200, {"success": True, "response": "The report run was canceled"})
