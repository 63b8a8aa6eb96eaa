"""Seeded run population, runs-file loading, and the drift applied between lists."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from .model import IN_PROGRESS, TERMINAL, EmuRun
from .timefmt import parse_time

USERS: tuple[str, ...] = (
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "dave@example.com",
    "reporting-bot@example.com",
)
REPORT_NAMES: tuple[str, ...] = (
    "Invoice Aging",
    "Revenue Detail",
    "Subscription Churn",
    "Usage Summary",
    "Payments by Gateway",
    "Bookings by Product",
    "Credit Balance",
    "Renewals Next 30 Days",
)
MIN_AGE_S = 10.0
MAX_AGE_S = 45 * 86400.0


def new_id(rng: random.Random) -> str:
    """A Zuora-style run id: 32 lowercase hex digits."""
    return f"{rng.getrandbits(128):032x}"


def _report_catalog(rng: random.Random) -> list[tuple[str, str]]:
    return [(new_id(rng), name) for name in REPORT_NAMES]


def seeded_runs(count: int, seed: int, share: float, now: float) -> list[EmuRun]:
    """`count` runs from `seed`; round(count*share) of them are in progress."""
    rng = random.Random(f"population:{seed}")
    catalog = _report_catalog(rng)
    n_active = round(count * share)
    statuses = [rng.choice(IN_PROGRESS) for _ in range(n_active)]
    statuses += [rng.choice(TERMINAL) for _ in range(count - n_active)]
    rng.shuffle(statuses)
    return [_seeded_run(rng, catalog, status, now) for status in statuses]


def _seeded_run(
    rng: random.Random, catalog: list[tuple[str, str]], status: str, now: float
) -> EmuRun:
    age = math.exp(rng.uniform(math.log(MIN_AGE_S), math.log(MAX_AGE_S)))
    report_id, name = rng.choice(catalog)
    started = now - age
    return EmuRun(
        id=new_id(rng),
        report_id=report_id,
        report_type="Detail" if rng.random() < 0.7 else "Summary",
        status=status,
        started_on=started,
        updated_on=started + rng.uniform(0.0, age),
        created_by=rng.choice(USERS),
        report_name=name,
    )


def load_runs_file(path: str) -> list[EmuRun]:
    """Runs from a JSON list of objects (startedOn/updatedOn as epoch ms or ISO)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of run objects")
    return [_run_from_json(item, i) for i, item in enumerate(data)]


def _run_from_json(item: Any, index: int) -> EmuRun:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        raise ValueError(f"run #{index}: expected an object with a string 'id'")
    started = parse_time(item.get("startedOn", 0))
    profile = item.get("createdByUserProfile")
    user = profile.get("username") if isinstance(profile, dict) else None
    return EmuRun(
        id=item["id"],
        report_id=str(item.get("reportId", "0" * 32)),
        report_type=str(item.get("reportType", "Detail")),
        status=str(item.get("status", "STARTED")),
        started_on=started,
        updated_on=parse_time(item.get("updatedOn", item.get("startedOn", 0))),
        created_by=str(item.get("createdBy") or user or "unknown@example.com"),
        report_name=str(item.get("reportName", "Emulated report")),
    )


def apply_drift(
    runs: dict[str, EmuRun], rng: random.Random, complete: int, start: int, now: float
) -> None:
    """Move `complete` random in-progress runs to COMPLETED and start `start` new runs."""
    active = sorted(r.id for r in list(runs.values()) if r.status in IN_PROGRESS)
    for run_id in rng.sample(active, min(complete, len(active))):
        runs[run_id].status = "COMPLETED"
        runs[run_id].updated_on = now
    for _ in range(start):
        run = EmuRun(
            id=new_id(rng),
            report_id=new_id(rng),
            report_type="Detail",
            status="STARTED",
            started_on=now,
            updated_on=now,
            created_by=rng.choice(USERS),
            report_name="Drift report",
        )
        runs[run.id] = run
