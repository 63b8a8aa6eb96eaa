"""EmulatorThread from sync code, and the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from local import emulator_list, emulator_token

from worker.emulator import (
    EmulatorConfig,
    EmulatorThread,
)

ROOT = Path(__file__).resolve().parents[2]






def test_emulator_thread_sync():
    with EmulatorThread(EmulatorConfig(runs=10, list_shape="list")) as emu:
        assert emu.base_url.startswith("http://127.0.0.1:")
        body = emulator_list(emu.base_url, emulator_token(emu.base_url))
        assert body["success"] is True
        assert isinstance(body["response"], list)
        assert emu.count("list", 200) == 1


def test_emulator_thread_port_in_use():
    with EmulatorThread(EmulatorConfig(runs=1)) as emu:
        port = int(emu.base_url.rsplit(":", 1)[1])
        with pytest.raises(OSError, match=r"."), EmulatorThread(EmulatorConfig(runs=1), port=port):
            pass
