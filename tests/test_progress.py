"""The live progress line: on a terminal only (or forced), throttled, erased at the end."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from local import ManualClock, clean_env

from worker.logs import configure_logging
from worker.models import Outcome, ReportRun, RunRecord
from worker.progress import CLEAR, Progress, wants_progress

ROOT = Path(__file__).resolve().parents[1]
FAST = ("--rate", "1000", "--concurrency", "8")


class FakeTTY(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def record(outcome: Outcome) -> RunRecord:
    run = ReportRun(id="r1", report_id=None, report_type="Detail", status="STARTED",
                    started_on=datetime.now(UTC), updated_on=None, created_by=None)
    rec = RunRecord(run, "r1", 1, True, "selected")
    rec.outcome = outcome
    return rec


@pytest.mark.parametrize(("mode", "fmt", "tty", "expected"), [
    ("auto", "auto", True, True),
    ("auto", "auto", False, False),
    ("auto", "json", True, False),
    ("always", "json", False, True),
    ("never", "console", True, False),
])
def test_wants_progress_switch(mode, fmt, tty, expected):
    """auto follows the terminal (not with JSON logs); always and never force it."""
    stream = FakeTTY() if tty else io.StringIO()
    assert wants_progress(mode, fmt, stream) is expected


def test_line_counts_rate_and_eta_then_erased():
    """The line shows done/total, failures, rate and ETA, and is erased by close()."""
    clock, out = ManualClock(100.0), FakeTTY()
    prog = Progress(out, enabled=True, clock=clock)
    prog.selected(10)
    for outcome in (Outcome.CANCELLED, Outcome.FAILED, Outcome.CANCELLED, Outcome.CANCELLED):
        clock.now += 0.5
        prog.finished(record(outcome))
    assert prog.line() == "cancelling [########------------] 4/10 done, 1 failed, 2.0/s, ETA 3s"
    prog.close()
    assert out.getvalue().endswith(CLEAR)
    assert out.getvalue().count(CLEAR) == 6  # selected + 4 redraws + the final erase


def test_redraws_are_throttled_to_five_per_second():
    """Many cancels within 0.2 s draw the line once more, and the last one is always drawn."""
    clock, out = ManualClock(100.0), FakeTTY()
    prog = Progress(out, enabled=True, clock=clock)
    prog.selected(50)
    for _ in range(49):
        clock.now += 0.001
        prog.finished(record(Outcome.CANCELLED))
    assert out.getvalue().count(CLEAR) == 1  # only the first draw so far
    clock.now += 0.001
    prog.finished(record(Outcome.CANCELLED))  # 50/50: forced
    assert out.getvalue().count(CLEAR) == 2
    assert "50/50 done" in out.getvalue()


def test_disabled_progress_writes_nothing():
    """A disabled progress counts but never writes."""
    out = FakeTTY()
    prog = Progress(out, enabled=False)
    prog.selected(3)
    prog.finished(record(Outcome.CANCELLED))
    prog.close()
    assert out.getvalue() == ""
    assert prog.done == 1


def test_log_lines_scroll_above_the_line_and_logging_is_restored():
    """A log line erases the progress line, prints, and the line is drawn again below it."""
    out = FakeTTY()
    configure_logging("console", "info", stream=out)
    factory = structlog.get_config()["logger_factory"]
    prog = Progress(out, enabled=True)
    prog.selected(2)
    structlog.get_logger("t").info("reconcile.started", runs=1)  # a per-pass event
    text = out.getvalue()
    first, log_part = text.split("reconcile.started", 1)
    assert first.endswith(" ") or "cancelling" in first
    assert first.rfind(CLEAR) > first.rfind("cancelling")  # erased before the log line
    assert log_part.split("\n", 1)[1].startswith(CLEAR + "cancelling")  # drawn again
    prog.close()
    assert structlog.get_config()["logger_factory"] is factory


def test_cli_progress_always_vs_auto_off_a_terminal(emu_thread, cli):
    """--progress always draws on a non-TTY stderr; auto (not a TTY) draws nothing."""
    emu = emu_thread(runs=0)
    for _ in range(3):
        emu.add_run(age_s=7200)
    forced = cli(emu, "run", "--older-than", "1h", *FAST, "--progress", "always")
    assert forced.code == 0, forced.stderr
    assert "cancelling [" in forced.stderr
    assert "3/3 done" in forced.stderr
    for _ in range(3):
        emu.add_run(age_s=7200)
    auto = cli(emu, "run", "--older-than", "1h", *FAST)
    assert auto.code == 0
    assert "cancelling [" not in auto.stderr
    assert CLEAR not in auto.stderr
    assert len(emu.cancelled_ids()) == 6


def _run_on_pty(emu, tmp_path: Path, *args: str) -> str:
    """Run the CLI with stderr on a pseudo-terminal; return what the terminal received."""
    from worker.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
    master, slave = os.openpty()
    env = clean_env()
    env.update(ZUORA_CLIENT_ID=DEMO_CLIENT_ID, ZUORA_CLIENT_SECRET=DEMO_CLIENT_SECRET)
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "run", "--base-url", emu.base_url, *args,
         "--lock-file", str(tmp_path / "l"), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(30) == 0
    return b"".join(chunks).decode(errors="replace")


def test_progress_on_a_real_terminal_only(emu_thread, tmp_path):
    """On a pty stderr, auto draws the line; --progress never keeps the terminal clean."""
    emu = emu_thread(runs=0)
    for _ in range(4):
        emu.add_run(age_s=7200)
    seen = _run_on_pty(emu, tmp_path, "--older-than", "1h", *FAST)
    assert "cancelling [" in seen
    assert "4/4 done" in seen
    assert seen.endswith(CLEAR)
    for _ in range(2):
        emu.add_run(age_s=7200)
    quiet = _run_on_pty(emu, tmp_path, "--older-than", "1h", *FAST, "--progress", "never")
    assert "cancelling" not in quiet
    assert len(emu.cancelled_ids()) == 6


def test_the_console_keeps_per_run_events_for_debug():
    """At info the console drops cancel.finished (the progress line counts them); at debug,
    and in JSON logs always, each one is a line."""
    for fmt, level, shown in (("console", "info", False), ("console", "debug", True),
                              ("json", "info", True)):
        out = FakeTTY()
        configure_logging(fmt, level, stream=out)
        structlog.get_logger("t").info("cancel.finished", run_id="r1")
        structlog.get_logger("t").info("job.summary", exit_code=0)
        assert ("cancel.finished" in out.getvalue()) is shown, (fmt, level)
        assert "job.summary" in out.getvalue()


def test_the_progress_line_shows_the_listing_then_the_cancels():
    out = FakeTTY()
    prog = Progress(out, enabled=True)
    prog.page(3, 250)
    assert prog.line() == "listing: page 3, 250 runs so far"
    assert "listing: page 3, 250 runs so far" in out.getvalue()
    prog.selected(10)
    assert prog.line().startswith("cancelling [")
    prog.close()
