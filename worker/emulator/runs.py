"""The emulated tenant's data: report runs, their seeded population and drift, time formats,
and the state one emulator keeps (runs by id, request records, issued tokens)."""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from worker.models import IN_PROGRESS

from .config import EmulatorConfig

TERMINAL: tuple[str, ...] = ("COMPLETED", "ERROR", "INVALID", "CANCELLED")
REFUSED_CANCEL: frozenset[str] = frozenset({"COMPLETED", "ERROR", "INVALID"})
KINDS: tuple[str, ...] = ("token", "list", "get", "delete", "other")
OTHER_USER = "another user"


@dataclass
class EmuRun:
    """One report run held by the emulator (times are epoch seconds)."""

    id: str
    report_id: str
    report_type: str
    status: str
    started_on: float
    updated_on: float
    created_by: str
    report_name: str = "Emulated report"


@dataclass(frozen=True)
class RequestRecord:
    """What one request looked like and how the emulator answered it."""

    seq: int
    t: float
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]
    body: Any
    status: int
    run_id: str | None
    kind: str
    limited: str | None


def format_time(ts: float, time_format: str) -> int | str:
    """Render epoch seconds as epoch ms (int) or as "2018-04-13T02:11:38.464+0000"."""
    if time_format == "iso":
        dt = datetime.fromtimestamp(ts, tz=UTC)
        millis = dt.microsecond // 1000
        return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}+0000"
    return round(ts * 1000)


def parse_time(value: object) -> float:
    """Epoch seconds from epoch ms (number or digit string) or an ISO-8601 string."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        return float(value) / 1000.0
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text) / 1000.0
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    raise ValueError(f"not a time: {value!r}")


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


class State:
    """Everything the handlers read and change. Single event loop, no locking."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.runs: dict[str, EmuRun] = {}
        self.records: list[RequestRecord] = []
        self.cancelled: set[str] = set()
        # The journal of cancels: run id -> the Zuora-Track-Id of the DELETE that applied it,
        # or OTHER_USER when someone else cancelled it (cancel_script "other_cancel").
        self.cancelled_by: dict[str, str] = {}
        self.deletes_seen: Counter[str] = Counter()  # DELETEs received per run id, on arrival
        self.script_pos: Counter[str] = Counter()  # cancel_script steps used per run id
        self.tokens: dict[str, float] = {}
        self.listings = 0  # listing pages answered
        self.rng = random.Random(f"runtime:{config.seed}")
        self._seq = itertools.count(1)
        self.populate(config)

    def populate(self, config: EmulatorConfig) -> None:
        """(Re)build the run population from runs_file or from the seed."""
        if config.runs_file is not None:
            runs = load_runs_file(config.runs_file)
        else:
            runs = seeded_runs(config.runs, config.seed, config.in_progress_share, config.clock())
        self.runs = {run.id: run for run in runs}

    def next_seq(self) -> int:
        return next(self._seq)

    def add_record(self, record: RequestRecord) -> None:
        """Keep records ordered by arrival (seq) even when answers finish out of order."""
        bisect.insort(self.records, record, key=lambda r: r.seq)

    def new_run_id(self) -> str:
        return new_id(self.rng)

    def issue_token(self, expires_at: float) -> str:
        token = uuid.uuid4().hex + uuid.uuid4().hex
        self.tokens[token] = expires_at
        return token

    def token_valid(self, token: str, now: float) -> bool:
        expires_at = self.tokens.get(token)
        return expires_at is not None and now < expires_at

    def expire_tokens(self) -> None:
        for token in self.tokens:
            self.tokens[token] = float("-inf")
