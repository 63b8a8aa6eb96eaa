"""Shared fixtures: the emulator over real HTTP, the CLI in process and as a subprocess."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from staged import Script, ScriptedZuora

from worker.cli import main
from worker.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_USERNAME,
    Emulator,
    EmulatorConfig,
    EmulatorThread,
)

ROOT = Path(__file__).resolve().parent.parent
OAUTH_ENV = {"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET}
LEGACY_ENV = {"ZUORA_USERNAME": DEMO_USERNAME, "ZUORA_PASSWORD": DEMO_PASSWORD}


# ---------------------------------------------------------------- aioresponses on aiohttp 3.14
def _shim_aioresponses() -> None:
    """aioresponses 0.7.x builds ClientResponse without ``stream_writer`` (aiohttp 3.14 needs it;
    pnuckowski/aioresponses#289). Pass one only when the signature asks for it."""
    try:
        import aiohttp
        import aioresponses.core as core
    except ImportError:  # pragma: no cover
        return
    params = inspect.signature(aiohttp.ClientResponse.__init__).parameters
    if "stream_writer" not in params or getattr(core, "_reaper_shim", False):
        return
    class ShimResponse(aiohttp.ClientResponse):
        """A ClientResponse that tolerates aioresponses omitting ``stream_writer``."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # writer=None means "request already sent", which reads the writer's output size.
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
            super().__init__(*args, **kwargs)

    core.ClientResponse = ShimResponse  # the default response_class aioresponses builds
    core._reaper_shim = True


_shim_aioresponses()


# ---------------------------------------------------------------- isolation
@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ZUORA_* variable from the developer's shell leaks into a test; logging is reset."""
    for name in list(os.environ):
        if name.startswith("ZUORA_"):
            monkeypatch.delenv(name)
    yield
    structlog.reset_defaults()


# ---------------------------------------------------------------- emulator fixtures
@pytest.fixture
async def make_emulator() -> AsyncIterator[Callable[..., Any]]:
    """Factory: ``emu = await make_emulator(runs=0, ...)``; started on a free loopback port."""
    started: list[Emulator] = []

    async def factory(**config: Any) -> Emulator:
        emu = Emulator(EmulatorConfig(**config))
        await emu.start()
        started.append(emu)
        return emu

    yield factory
    for emu in started:
        await emu.stop()


@pytest.fixture
def emu_thread() -> Iterator[Callable[..., Emulator]]:
    """Factory for sync tests: an emulator serving from its own thread (CLI runs in main thread)."""
    threads: list[EmulatorThread] = []

    def factory(**config: Any) -> Emulator:
        thread = EmulatorThread(EmulatorConfig(**config))
        threads.append(thread)
        return thread.__enter__()

    yield factory
    for thread in threads:
        thread.__exit__(None, None, None)


@pytest.fixture
def zuora() -> Iterator[Callable[..., Any]]:
    """Factory: ``server = zuora(Script(...), tls=None)``, a scripted Zuora on a raw socket
    (tests/support/staged.py) in its own thread, stopped after the test."""
    started: list[ScriptedZuora] = []

    def start(script: Script | None = None, tls: Any = None) -> ScriptedZuora:
        server = ScriptedZuora(script, tls)
        server.__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)


# ---------------------------------------------------------------- running the CLI
@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None

    def outcomes(self) -> dict[str, str | None]:
        assert self.report is not None
        return {r["id"]: r["outcome"] for r in self.report["runs"] if r["selected"]}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``zuora-reaper`` in process (main thread) against ``emu``; returns code, output, report.

    Adds --base-url, --report-file, --lock-file unless given; ``env`` defaults to OAuth demo
    credentials.
    """

    def run(emu: Emulator | None, *args: str, env: dict[str, str] | None = None) -> CliResult:
        for name, value in (OAUTH_ENV if env is None else env).items():
            monkeypatch.setenv(name, value)
        argv = [*args, *_defaults(emu, args, tmp_path)]
        capsys.readouterr()
        code = main(argv)
        out, err = capsys.readouterr()
        return CliResult(code, out, err, _load_report(tmp_path / "report.json", argv))

    return run


@pytest.fixture
def cli_subprocess(tmp_path: Path) -> Callable[..., CliResult]:
    """Run ``python -m worker`` as a real subprocess (real exit codes); same defaults as ``cli``."""

    def run(emu: Emulator | None, *args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> CliResult:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ZUORA_")}
        full_env.update(OAUTH_ENV if env is None else env)
        argv = [*args, *_defaults(emu, args, tmp_path)]
        proc = subprocess.run([sys.executable, "-m", "worker", *argv], capture_output=True,
                              text=True, env=full_env, timeout=timeout, cwd=ROOT, check=False)
        return CliResult(proc.returncode, proc.stdout, proc.stderr,
                         _load_report(tmp_path / "report.json", argv))

    return run


def _defaults(emu: Emulator | None, args: tuple[str, ...], tmp_path: Path) -> list[str]:
    extra: list[str] = []
    if emu is not None and "--base-url" not in args and "--environment" not in args:
        extra += ["--base-url", emu.base_url]
    if "--report-file" not in args:
        extra += ["--report-file", str(tmp_path / "report.json")]
    if "--lock-file" not in args:
        extra += ["--lock-file", str(tmp_path / "job.lock")]
    return extra


def _load_report(default: Path, argv: list[str]) -> dict[str, Any] | None:
    path = Path(argv[argv.index("--report-file") + 1]) if "--report-file" in argv else default
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    path.unlink()
    assert isinstance(data, dict)
    return data


# ---------------------------------------------------------------- background CLI processes
@dataclass
class Job:
    """A ``python -m worker`` subprocess started in the background, and where its report goes."""

    proc: subprocess.Popen[str]
    report_path: Path

    def wait(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def report(self) -> dict[str, Any]:
        data = json.loads(self.report_path.read_text())
        assert isinstance(data, dict)
        return data


@pytest.fixture
def popen_job(tmp_path: Path) -> Iterator[Callable[..., Job]]:
    """Start ``python -m worker ARGS`` against ``emu`` without waiting (to send it signals).

    ``name`` keeps several jobs of one test apart; ``grace`` shortens the signal grace period.
    Processes still running after the test are killed.
    """
    started: list[subprocess.Popen[str]] = []

    def start(emu: Emulator, *args: str, name: str = "job", grace: float | None = None) -> Job:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZUORA_")}
        env.update(OAUTH_ENV)
        report = tmp_path / f"{name}-report.json"
        entry = ["-m", "worker"]
        if grace is not None:  # a shorter grace period, so a test need not wait 5 s
            entry = ["-c", "import sys, worker.cli as r; from worker.cli import main; "
                           f"r.GRACE_SECONDS = {grace}; sys.exit(main(sys.argv[1:]))"]
        argv = [sys.executable, *entry, *args, "--base-url", emu.base_url,
                "--report-file", str(report)]
        if "--lock-file" not in args:
            argv += ["--lock-file", str(tmp_path / f"{name}.lock")]
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return Job(proc, report)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def poll_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what or predicate}")
        time.sleep(0.01)


@pytest.fixture
def wait_for() -> Callable[..., None]:
    """``wait_for(predicate, timeout=20, what="")``: poll until true, else fail the test."""
    return poll_until
