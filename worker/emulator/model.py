"""Data kept by the emulator: report runs and request records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IN_PROGRESS: tuple[str, ...] = ("STARTED", "QUERYDATA", "PROCESSINGDATA")
TERMINAL: tuple[str, ...] = ("COMPLETED", "ERROR", "INVALID", "CANCELLED")
REFUSED_CANCEL: frozenset[str] = frozenset({"COMPLETED", "ERROR", "INVALID"})
KINDS: tuple[str, ...] = ("token", "list", "get", "delete", "other")


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
