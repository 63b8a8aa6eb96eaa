"""The emulator's command line: flags to config, serving until SIGTERM, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from local import emulator_list, emulator_token

from worker.cli import main
from worker.emulator import DEMO_CLIENT_ID
from worker.emulator.cli import build_parser, config_from_args, describe_limit

ROOT = Path(__file__).resolve().parents[2]






def test_cli_parser_to_config():
    args = build_parser().parse_args(
        [
            "--port",
            "0",
            "--runs",
            "7",
            "--rate",
            "2.5",
            "--concurrency",
            "3",
            "--list-shape",
            "list",
            "--time-format",
            "iso",
            "--drop-ratio",
            "0.1",
        ]
    )
    config = config_from_args(args)
    assert (args.port, config.runs, config.rate, config.concurrency) == (0, 7, 2.5, 3)
    assert (config.list_shape, config.time_format, config.drop_ratio) == ("list", "iso", 0.1)
    assert build_parser().parse_args([]).port == 8080


def test_cli_serves_until_sigterm():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.emulator", "--port", "0", "--runs", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        base_url = lines[0].split()[-1]
        assert lines[1] == f"export ZUORA_REAPER_BASE_URL={base_url}\n"
        assert f"ZUORA_CLIENT_ID={DEMO_CLIENT_ID}" in lines[2]
        assert "ZUORA_USERNAME=" in lines[3]
        assert "ZUORA_PASSWORD=" in lines[3]
        assert emulator_list(base_url, emulator_token(base_url))["success"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def test_cli_bad_runs_file(tmp_path, capsys):
    """A runs file that cannot be read is a config error: exit 2, naming the file."""
    assert main(["emulator", "--runs-file", str(tmp_path / "missing.json"), "--port", "0"]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_cli_flags_select_zuoras_variants_and_lost_answers():
    """zuora-reaper emulator flags reach the config: variants and cancel_then."""
    from worker.emulator.cli import build_parser, config_from_args

    args = build_parser().parse_args(["--no-get-envelope", "--status-case", "lower",
                                      "--report-id-field", "reportID", "--cancel-then", "504"])
    config = config_from_args(args)
    config.validate()
    assert (config.get_envelope, config.status_case, config.report_id_field,
            config.cancel_then) == (False, "lower", "reportID", "504")


def test_cli_limiter_flags_to_config():
    config = config_from_args(build_parser().parse_args(
        ["--rate", "30", "--limiter", "bucket", "--burst", "7", "--no-rate-headers",
         "--no-retry-after", "--placeholder-headers"]))
    assert (config.limiter, config.burst) == ("bucket", 7)
    assert (config.rate_headers, config.rate_retry_after, config.placeholder_headers) == (
        False, False, True)
    default = config_from_args(build_parser().parse_args([]))
    assert (default.limiter, default.rate_headers, default.rate_retry_after) == (
        "window", True, True)


def test_banner_names_the_limiter():
    def limit(*flags: str) -> str:
        return describe_limit(config_from_args(build_parser().parse_args(list(flags))))

    assert limit() == "none"
    assert limit("--rate", "50", "--rate-window", "1") == (
        "50 per 1s fixed windows, RateLimit headers + Retry-After")
    assert limit("--rate", "30", "--rate-window", "1", "--no-rate-headers",
                 "--no-retry-after") == "30 per 1s fixed windows, bare 429"
    assert limit("--rate", "30", "--limiter", "bucket", "--burst", "5") == (
        "leaky bucket 30/s, burst 5, bare 429 (nginx limit_req)")
    assert limit("--placeholder-headers") == "none; placeholder RateLimit headers"
