"""Fixtures for the reliability suite: the CLI as a signallable subprocess, emulator helpers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from worker.emulator import Emulator


def track_jobs(emu: Emulator) -> set[str]:
    """The job ids seen in the Zuora-Track-Id headers the emulator received."""
    ids = set()
    for rec in list(emu.records):
        track = rec.headers.get("Zuora-Track-Id")
        if track:
            ids.add(track.rsplit("-", 1)[0])
    return ids


@pytest.fixture
def job_ids_seen() -> Callable[[Emulator], set[str]]:
    """``job_ids_seen(emu)``: distinct job ids found in the track ids sent to ``emu``."""
    return track_jobs
