"""Benchmark: a new user's first job on a Zuora API Sandbox (issue 22).

An emulated API Sandbox (2,500 requests a minute, 5,000 an hour, 10,000 a day, announced in
Zuora's multi-window headers; ``--hour-used`` pre-spends the hour as other clients would),
N stuck runs, and ``zuora-reaper run`` with its default pacing flags, from this checkout or
from another one (``--client-root``, e.g. a worktree of an older commit), within a deadline.
Prints one line; it is not a test.

    python bench/sandbox.py                                  # this checkout
    python bench/sandbox.py --client-root /tmp/old           # an older one, same emulator
    python bench/sandbox.py --hour-used 4900 --rate 100      # a job needing more than its share
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from local import clean_env, job_seconds  # noqa: E402 - tests/support/local.py

from worker.emulator import (  # noqa: E402
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    EmulatorConfig,
    EmulatorThread,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--client-root", type=Path, default=ROOT)
    p.add_argument("--runs", type=int, default=120)
    p.add_argument("--deadline", default="60s")
    p.add_argument("--hour-used", type=int, default=0, help="requests others used of the hour")
    p.add_argument("--rate", default=None, help="--rate for the job (default: its own)")
    args = p.parse_args()
    config = EmulatorConfig(runs=0, limiter="zuora", tenant="api-sandbox",
                            windows_used={3600.0: args.hour_used} if args.hour_used else {})
    with EmulatorThread(config) as emu, tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            emu.add_run(status="STARTED", age_s=7200)
        env = clean_env(ZUORA_CLIENT_ID=DEMO_CLIENT_ID, ZUORA_CLIENT_SECRET=DEMO_CLIENT_SECRET,
                        PYTHONPATH=str(args.client_root))
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "worker", "run", "--base-url", emu.base_url,
               "--older-than", "1h", "--max-cancel", str(args.runs + 100),
               "--deadline", args.deadline, "--report-file", str(report),
               "--lock-file", str(Path(tmp) / "lock"),
               *(["--rate", args.rate] if args.rate else [])]
        code = subprocess.run(cmd, env=env, cwd=args.client_root, capture_output=True,
                              check=False).returncode
        doc = json.loads(report.read_text())
        sent = sum(1 for r in emu.records if r.kind in ("list", "get", "delete"))
        print(f"{args.client_root}: exit {code}, job {job_seconds(doc):.1f} s, cancelled "
              f"{doc['counts'].get('cancelled', 0)} of {args.runs}, planned "
              f"{doc['pacing'].get('planned_rate')}/s, requests {sent}, refused "
              f"{emu.limited_count('rate')}; {doc.get('exit_reason') or 'all well'}")


if __name__ == "__main__":
    main()
