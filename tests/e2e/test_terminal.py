"""The CLI in a real pseudo-terminal (120x40), as a person sees it: a progress line, no
per-run lines at the default level, the confirmation, the summary; colour off with NO_COLOR."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from local import clean_env

from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

ROOT = Path(__file__).resolve().parents[2]
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def _in_terminal(argv: list[str], answer: str | None, env_extra: dict[str, str],
                 timeout: float = 60) -> tuple[int, str]:
    """Run ``python -m worker ARGV`` with stdin, stdout and stderr on one pty; type ``answer``
    when asked (``"^C"``: send SIGINT instead). Returns the exit code and the screen."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = clean_env()
    env.update({"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET,
                "TERM": "xterm-256color", **env_extra})
    proc = subprocess.Popen([sys.executable, "-m", "worker", *argv], stdin=slave, stdout=slave,
                            stderr=slave, env=env, cwd=ROOT, start_new_session=True)
    os.close(slave)
    screen, asked, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                screen += chunk
            if answer is not None and not asked and b"Type yes" in screen:
                if answer == "^C":
                    proc.send_signal(signal.SIGINT)
                else:
                    os.write(master, answer.encode() + b"\r")
                asked = True
            if proc.poll() is not None and not ready:
                break
        return proc.wait(timeout=10), screen.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def _args(emu, tmp_path: Path, *extra: str) -> list[str]:
    return ["--base-url", emu.base_url, "--rate", "1000", "--concurrency", "8",
            "--report-file", str(tmp_path / "report.json"), "--lock-file",
            str(tmp_path / "job.lock"), "--max-cancel", "1000", *extra]


def test_a_terminal_run_is_quiet_asks_and_summarises(emu_thread, tmp_path):
    emu = emu_thread(runs=0, latency_ms=2.0)
    for _ in range(150):
        emu.add_run(status="STARTED", age_s=7200)
    code, screen = _in_terminal(["run", *_args(emu, tmp_path, "--older-than", "1h",
                                               "--page-size", "20")], "yes", {})
    assert code == 0, screen
    assert "About to cancel 150 report run(s):" in screen
    assert "status:       STARTED 150" in screen
    assert "listing: page" in screen  # the progress line while listing...
    assert "cancelling [" in screen  # ...and while cancelling
    assert "cancel.finished" not in screen  # no line per run at the default level
    assert "Run: cancelled 150 of 150 selected run(s) (of 150 listed)" in screen
    assert len(emu.cancelled_ids()) == 150


def test_a_no_at_the_terminal_cancels_nothing(emu_thread, tmp_path):
    emu = emu_thread(runs=0)
    for _ in range(3):
        emu.add_run(status="STARTED", age_s=7200)
    code, screen = _in_terminal(["run", *_args(emu, tmp_path, "--older-than", "1h")], "no",
                                {"NO_COLOR": "1"})
    assert code == 4, screen
    assert "not confirmed: cancelled none of the 3 selected runs" in screen
    assert emu.deletes() == []
    assert not COLOUR.search(screen)  # NO_COLOR: no colour codes at all


def test_yes_skips_the_question_and_debug_shows_each_run(emu_thread, tmp_path):
    emu = emu_thread(runs=0)
    for _ in range(3):
        emu.add_run(status="STARTED", age_s=7200)
    code, screen = _in_terminal(["run", *_args(emu, tmp_path, "--older-than", "1h", "--yes",
                                               "--log-level", "debug")], None, {})
    assert code == 0, screen
    assert "Type yes" not in screen
    assert screen.count("cancel.finished") == 3


def test_ctrl_c_at_the_question_stops_at_once_with_exit_5(emu_thread, tmp_path):
    """An interrupt while the question waits: exit 5 within the grace period, nothing sent
    (the pending read of the terminal does not keep the process alive)."""
    emu = emu_thread(runs=0)
    for _ in range(3):
        emu.add_run(status="STARTED", age_s=7200)
    started = time.monotonic()
    code, screen = _in_terminal(["run", *_args(emu, tmp_path, "--older-than", "1h")], "^C", {})
    assert code == 5, screen
    assert time.monotonic() - started < 20
    assert "3 selected runs not attempted, left for the next job" in screen
    assert emu.deletes() == []
