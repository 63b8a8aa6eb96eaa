"""Zuora Reporting API emulator: report-run list/get/cancel, OAuth and legacy auth,
rate and concurrency limits, and injectable faults, served over real HTTP."""

from .config import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_USERNAME,
    EmulatorConfig,
)
from .runs import EmuRun, RequestRecord
from .server import Emulator, EmulatorThread

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "DEMO_PASSWORD",
    "DEMO_USERNAME",
    "EmuRun",
    "Emulator",
    "EmulatorConfig",
    "EmulatorThread",
    "RequestRecord",
]
