"""Plan hand-off: ``plan --plan-out PATH`` writes the selection; ``run --plan PATH`` applies it.

A plan file (JSON, ``schema_version`` 3) holds when it was made, the target (its identity:
base URL, principal fingerprint, entity), the effective
filters and their SHA-256, the selected runs, and ``sha256``: the digest of all of that, so any
edit of the file (an id added, removed or changed, a rule renamed) is refused (exit 2).
``run --plan`` refuses (GuardRefused, exit 4) a plan that is older than ``--plan-max-age``,
made in the future, made for another target (another host, API client or entity), or made
with different filters; a file that is
missing or garbled is a ConfigError (exit 2). All of this is checked before any network call.
The job then cancels only runs that are in the plan *and* still selected by the current
filters and guards; others get reason ``not_in_plan``.

``max_cancel`` is not part of the hash: it is a guard, not a filter, and still applies on run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from worker.config import Settings
from worker.durations import format_duration
from worker.errors import ConfigError, GuardRefused
from worker.files import PLAN_CAP, read_capped, write_atomic
from worker.models import RunRecord
from worker.report import filters_doc, iso, target_doc

PLAN_SCHEMA = 3  # 3: the target is its identity (base URL, principal, entity), not its host
PLAN_KIND = "zuora-reaper-plan"
FUTURE_TOLERANCE = timedelta(seconds=60)
NOT_HASHED = ("max_cancel",)


@dataclass(frozen=True, slots=True)
class Plan:
    """A plan file as read back: when, for which target and filters, and which run ids."""

    path: str
    created_at: datetime
    target_id: str
    target: str  # the target's description, for messages
    filters_sha256: str
    filters: Mapping[str, Any]
    run_ids: frozenset[str]


def hashed_filters(settings: Settings) -> dict[str, Any]:
    """The effective filters a plan is bound to (``report.filters_doc`` without guards)."""
    doc = filters_doc(settings)
    for name in NOT_HASHED:
        doc.pop(name, None)
    return doc


def content_hash(doc: Mapping[str, Any]) -> str:
    """SHA-256 of the whole plan document but its own ``sha256`` field."""
    return filters_hash({k: v for k, v in doc.items() if k != "sha256"})


def filters_hash(doc: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``doc`` (sorted keys, no whitespace)."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def plan_document(settings: Settings, records: Iterable[RunRecord],
                  now: datetime) -> dict[str, Any]:
    """The plan file's content: the selected runs of a finished ``plan`` job."""
    doc = hashed_filters(settings)
    plan = {
        "schema_version": PLAN_SCHEMA,
        "kind": PLAN_KIND,
        "created_at": iso(now),
        "target": {**target_doc(settings), "described": settings.identity.describe()},
        "filters_sha256": filters_hash(doc),
        "filters": doc,
        "runs": [{"id": r.run.id, "report_id": r.run.report_id, "status": r.run.status,
                  "started_on": iso(r.run.started_on), "rule": r.rule}
                 for r in records if r.selected and r.run.id is not None],
    }
    return {**plan, "sha256": content_hash(plan)}


def write_plan(settings: Settings, records: Iterable[RunRecord], now: datetime) -> int:
    """Write the plan file atomically; return the number of runs in it.

    Raises:
        ConfigError: the file cannot be written.
    """
    path = settings.run.plan_out
    assert path is not None
    doc = plan_document(settings, records, now)
    try:
        write_atomic(path, json.dumps(doc, indent=2) + "\n")
    except OSError as exc:
        raise ConfigError("run.plan_out", f"cannot write plan file {path}: {exc}") from exc
    return len(doc["runs"])


def check_options(settings: Settings) -> None:
    """``--plan-out`` belongs to ``plan`` (a ``run`` cancels, it does not hand off), and
    ``--plan`` to ``run`` (from a flag, the environment or the file alike)."""
    if settings.run.plan_out and not settings.dry_run:
        raise ConfigError("run.plan_out", "--plan-out is for 'plan'; 'run' applies a plan "
                                          "with --plan PATH")
    if settings.run.plan and settings.command == "plan":
        raise ConfigError("run.plan", "--plan is for 'run'; 'plan' makes one with "
                                      "--plan-out PATH")


def load_plan(settings: Settings, now: datetime) -> Plan | None:
    """Read and check ``--plan`` (None when not given). No network call is made.

    Raises:
        ConfigError: the file is missing, unreadable or not a plan.
        GuardRefused: the plan is stale, from the future, for another target, or was made
            with different filters.
    """
    if settings.run.plan is None:
        return None
    plan = read_plan(settings.run.plan)
    check_plan(plan, settings, now)
    return plan


def read_plan(path: str) -> Plan:
    """Parse a plan file strictly; anything unexpected is a ConfigError naming the problem."""
    text = read_capped("run.plan", path, PLAN_CAP, "plan file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError("run.plan", f"plan file {path} is not JSON: {exc}") from exc
    try:
        return _parse(path, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError("run.plan", f"{path} is not a zuora-reaper plan "
                                      f"(schema_version {PLAN_SCHEMA}): {exc}") from exc


def _parse(path: str, data: Any) -> Plan:
    if not isinstance(data, dict) or data.get("kind") != PLAN_KIND:
        raise ValueError("missing kind")
    if data.get("schema_version") != PLAN_SCHEMA:
        raise ValueError(f"schema_version {data.get('schema_version')!r}")
    created = datetime.fromisoformat(str(data["created_at"]))
    if created.tzinfo is None:
        raise ValueError("created_at has no time zone")
    filters, digest = data["filters"], str(data["filters_sha256"])
    if not isinstance(filters, dict) or filters_hash(filters) != digest:
        raise ValueError("filters do not match filters_sha256 (was the file edited?)")
    if data.get("sha256") != content_hash(data):
        raise ValueError("its content does not match its sha256: it was edited after it was "
                         "made; make a fresh plan")
    ids = [run["id"] for run in data["runs"]]
    if not all(isinstance(i, str) and i for i in ids):
        raise ValueError("a run without an id")
    target = data["target"]
    return Plan(path, created, str(target["id"]), str(target["described"]), digest, filters,
                frozenset(ids))


def check_plan(plan: Plan, settings: Settings, now: datetime) -> None:
    """Refuse a plan that does not fit this job (see the module docstring)."""
    age = now - plan.created_at
    limit = settings.run.plan_max_age
    if age.total_seconds() > limit:
        raise GuardRefused(
            f"plan {plan.path} is {format_duration(age.total_seconds())} old, older than "
            f"--plan-max-age {format_duration(limit)}: cancelled nothing; make a fresh plan "
            "with 'zuora-reaper plan --plan-out PATH'")
    if age < -FUTURE_TOLERANCE:
        raise GuardRefused(f"plan {plan.path} was created in the future "
                           f"({plan.created_at.isoformat()}): check the clocks; cancelled nothing")
    if plan.target_id != settings.identity.key:
        raise GuardRefused(f"plan {plan.path} was made for {plan.target}, this job targets "
                           f"{settings.identity.describe()} (another host, API client or "
                           "entity): cancelled nothing")
    current = hashed_filters(settings)
    if filters_hash(current) != plan.filters_sha256:
        changed = sorted(k for k in {*current, *plan.filters}
                         if current.get(k) != plan.filters.get(k))
        raise GuardRefused(
            f"plan {plan.path} was made with different filters (changed: "
            f"{', '.join(changed)}): cancelled nothing; run with the plan's filters or make a "
            "fresh plan")
