"""End to end: the `demo` and `emulator` subcommands as real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from local import clean_env

from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME

ROOT = Path(__file__).resolve().parents[2]






def test_emulator_command_serves_then_stops_on_sigterm(cli_subprocess):
    """`zuora-reaper emulator --port 0` prints URL and credentials, serves a plan, exits on TERM."""
    proc = subprocess.Popen([sys.executable, "-m", "worker", "emulator", "--port", "0",
                             "--runs", "30", "--seed", "4"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=clean_env(), cwd=ROOT)
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(4)]
        base_url = banner[0].split()[-1]
        assert base_url.startswith("http://127.0.0.1:")
        text = "".join(banner)
        for value in (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, DEMO_PASSWORD):
            assert value in text

        res = cli_subprocess(None, "plan", "--base-url", base_url, "--older-than", "1h")
        assert res.code == 0, res.stderr
        assert res.report["counts"]["listed"] > 0
        assert res.report["counts"]["would_cancel"] == res.report["counts"]["selected"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
