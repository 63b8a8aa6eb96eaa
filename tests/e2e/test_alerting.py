"""The shipped alert rules on a real Prometheus, fed by real jobs through a real Pushgateway
(Debian's packages; .ci/run installs them): a job that exits 3 fires ZuoraReaperJobFailed, a
clean job fires nothing."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from worker.emulator import DEMO_CLIENT_ID

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "zuora-reaper.rules.yml"
BINARIES = ("prometheus", "prometheus-pushgateway")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        return json.load(resp)


def _wait_up(url: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{proc.args[0]} exited {proc.returncode}"
        try:
            urllib.request.urlopen(url, timeout=1).close()  # noqa: S310 - loopback only
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture
def monitoring(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(Pushgateway URL, Prometheus URL): both on loopback, the Pushgateway with its own
    persistence file, Prometheus scraping it every second with the shipped rules."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (.ci/run installs Debian's)")
    pg_port, prom_port = _free_port(), _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "pushgateway", "honor_labels": True,
                            "static_configs": [{"targets": [f"127.0.0.1:{pg_port}"]}]}]}))
    procs = [
        subprocess.Popen(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{pg_port}",
                          f"--persistence.file={tmp_path / 'pushgateway.data'}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(["prometheus", f"--config.file={config}",
                          f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                          f"--web.listen-address=127.0.0.1:{prom_port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 20
        _wait_up(f"http://127.0.0.1:{pg_port}/-/ready", procs[0], deadline)
        _wait_up(f"http://127.0.0.1:{prom_port}/-/ready", procs[1], deadline)
        yield f"http://127.0.0.1:{pg_port}", f"http://127.0.0.1:{prom_port}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


def _firing(prometheus: str) -> list[dict[str, str]]:
    alerts = _get(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
    return [a["labels"] for a in alerts if a["state"] == "firing"]


def test_a_failed_job_fires_its_alert_and_a_clean_job_none(emu_thread, cli, monitoring,
                                                          fast):
    pushgateway, prometheus = monitoring
    emu = emu_thread(runs=0)
    for _ in range(3):
        emu.add_run(status="STARTED", age_s=7200)
    refused = cli(emu, "run", "--older-than", "1h", "--pushgateway", pushgateway,
                  "--job-name", "refused", *fast,
                  env={"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": "wrong"})
    clean = cli(emu, "run", "--older-than", "1h", "--pushgateway", pushgateway,
                "--job-name", "clean", *fast)
    assert (refused.code, clean.code) == (3, 0)
    deadline, firing = time.monotonic() + 40, []
    while time.monotonic() < deadline:
        firing = _firing(prometheus)
        if any(a["alertname"] == "ZuoraReaperJobFailed" for a in firing):
            break
        time.sleep(0.5)
    failed = [a for a in firing if a["alertname"] == "ZuoraReaperJobFailed"]
    assert [(a["job"], a["severity"]) for a in failed] == [("refused", "critical")]
    assert not [a for a in firing if a.get("job") == "clean"]
    exit_code = _get(f"{prometheus}/api/v1/query?query=zuora_reaper_last_run_exit_code")
    codes = {r["metric"]["job"]: r["value"][1] for r in exit_code["data"]["result"]}
    assert codes == {"refused": "3", "clean": "0"}
