"""Shared fixtures: the emulator over real HTTP, the CLI in process and as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from aiohttp import web
from local import clean_env
from pgcluster import PgCluster, PgUnavailable
from staged import Script, ScriptedZuora

from worker.cli import main
from worker.config import Settings, load_settings
from worker.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_USERNAME,
    Emulator,
    EmulatorConfig,
    EmulatorThread,
    EmuRun,
)
from worker.job import JobDeps, run_job
from worker.models import IN_PROGRESS, JobResult
from worker.retry import RetryPolicy

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
@pytest.fixture(autouse=True, scope="session")
def _state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Jobs keep their default state (``worker.state.location``) in a folder of the session,
    never in the developer's home; tests of memory name their own ``--state``."""
    saved = {name: os.environ.pop(name, None) for name in ("XDG_STATE_HOME", "STATE_DIRECTORY")}
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state-home"))
    yield
    for name, value in saved.items():
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value


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

    def json_lines(self) -> list[dict[str, Any]]:
        """``--output json``: the summary line, then a line per selected run."""
        return [json.loads(line) for line in self.stdout.splitlines()]

    @property
    def summary(self) -> dict[str, Any]:
        """The ``--output json`` summary line (the first)."""
        first = self.json_lines()[0]
        assert first["type"] == "summary"
        return first


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
        full_env = clean_env()
        full_env.update(OAUTH_ENV if env is None else env)
        argv = [*args, *_defaults(emu, args, tmp_path, full_env)]
        proc = subprocess.run([sys.executable, "-m", "worker", *argv], capture_output=True,
                              text=True, env=full_env, timeout=timeout, cwd=ROOT, check=False)
        return CliResult(proc.returncode, proc.stdout, proc.stderr,
                         _load_report(tmp_path / "report.json", argv))

    return run


def _defaults(emu: Emulator | None, args: tuple[str, ...], tmp_path: Path,
              env: Mapping[str, str] | None = None) -> list[str]:
    extra: list[str] = []
    if emu is not None and "--base-url" not in args and "--environment" not in args:
        extra += ["--base-url", emu.base_url]
    if args and args[0] in ("check", "spare", "history"):  # no report and no lock
        return extra
    if "--report-file" not in args:
        extra += ["--report-file", str(tmp_path / "report.json")]
    if "--lock-file" not in args:
        extra += ["--lock-file", str(tmp_path / "job.lock")]
    if args and args[0] == "run" and not _has_basis(args, os.environ if env is None else env):
        extra += ["--older-than", "0s"]  # run needs an explicit basis; 0s selects as before
    return extra


BASIS_FLAGS = ("--older-than", "--idle-for", "--ids-file", "--plan", "--config")
BASIS_ENV = ("ZUORA_REAPER_OLDER_THAN", "ZUORA_REAPER_OLDER_THAN_BY_STATUS",
             "ZUORA_REAPER_IDLE_FOR", "ZUORA_REAPER_IDS_FILE", "ZUORA_REAPER_PLAN")


def _has_basis(args: tuple[str, ...], env: Mapping[str, str]) -> bool:
    """Whether a test's ``run`` names a basis for selection (a flag, an env var, a config)."""
    return any(a in BASIS_FLAGS for a in args) or any(env.get(v) for v in BASIS_ENV)


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

    def start(emu: Emulator, *args: str, name: str = "job", grace: float | None = None,
              env: dict[str, str] | None = None) -> Job:
        env = clean_env(**OAUTH_ENV, **(env or {}))
        report = tmp_path / f"{name}-report.json"
        entry = ["-m", "worker"]
        if grace is not None:  # a shorter grace period, so a test need not wait 5 s
            entry = ["-c", "import sys, worker.control as c; from worker.cli import main; "
                           f"c.GRACE_SECONDS = {grace}; sys.exit(main(sys.argv[1:]))"]
        argv = [sys.executable, *entry, *args, "--base-url", emu.base_url,
                "--report-file", str(report)]
        if "--lock-file" not in args:
            argv += ["--lock-file", str(tmp_path / f"{name}.lock")]
        if args and args[0] == "run" and not _has_basis(args, env):
            argv += ["--older-than", "0s"]
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


# ---------------------------------------------------------------- from selection/conftest.py

MIN = 60.0
HOUR = 3600.0


@pytest.fixture
def fast() -> tuple[str, ...]:
    """Pacing flags that keep runs against the emulator quick."""
    return ("--rate", "1000", "--concurrency", "16")


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], str]:
    """Write ``text`` to ``tmp_path/name``; returns the path as a string."""

    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


@pytest.fixture
def reasons() -> Callable[[dict[str, Any]], dict[str, tuple[bool, str, str | None]]]:
    """Map a report to {run id: (selected, reason, rule)}."""

    def read(report: dict[str, Any]) -> dict[str, tuple[bool, str, str | None]]:
        return {r["id"]: (r["selected"], r["reason"], r["rule"]) for r in report["runs"]}

    return read


@pytest.fixture
def cli_stdin(tmp_path: Path) -> Callable[..., tuple[int, str, str, dict[str, Any] | None]]:
    """Run ``python -m worker ARGS`` against ``emu`` with ``stdin`` piped in."""

    def run(emu: Emulator, stdin: str, *args: str) -> tuple[int, str, str, dict[str, Any] | None]:
        env = clean_env()
        env.update({"ZUORA_CLIENT_ID": DEMO_CLIENT_ID, "ZUORA_CLIENT_SECRET": DEMO_CLIENT_SECRET})
        report = tmp_path / "stdin-report.json"
        argv = [sys.executable, "-m", "worker", *args, "--base-url", emu.base_url,
                "--report-file", str(report), "--lock-file", str(tmp_path / "stdin.lock")]
        if args and args[0] == "run" and not _has_basis(args, env):
            argv += ["--older-than", "0s"]
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env,
                              cwd=ROOT, timeout=60, check=False)
        doc = json.loads(report.read_text()) if report.exists() else None
        return proc.returncode, proc.stdout, proc.stderr, doc

    return run


# ---------------------------------------------------------------- from worker/conftest.py

FAST = ("--rate", "1000", "--concurrency", "16")


@dataclass(frozen=True)
class Staged:
    """What the tests need to know about the staged population to predict the selection."""

    emu: Emulator

    def runs(self) -> list[EmuRun]:
        return list(self.emu.runs.values())

    def expected(self, predicate: Callable[[EmuRun, float], bool],
                 min_age: float = 300.0) -> set[str]:
        """Ids of in-progress runs at least ``min_age`` old for which ``predicate(run, age)``."""
        now = time.time()
        return {r.id for r in self.runs()
                if r.status in IN_PROGRESS and now - r.started_on >= min_age
                and predicate(r, now - r.started_on)}


def stage_population(emu: Emulator) -> Staged:
    """A grid of runs: 4 statuses x 2 types x 3 owners x 4 ages, report ids rep-a/b/c.

    Ages 60 s (under the floor), 10 min, 2 h and 2 d; COMPLETED runs are never listed.
    """
    statuses = (*IN_PROGRESS, "COMPLETED")
    types = ("Detail", "Summary")
    owners = ("alice@example.com", "bob@example.com", "carol@example.com")
    ages = (60.0, 600.0, 7200.0, 2 * 86400.0)
    grid = itertools.product(statuses, types, owners, ages)
    for index, (status, rtype, owner, age) in enumerate(grid):
        run = emu.add_run(status=status, age_s=age, report_type=rtype, created_by=owner,
                          run_id=f"run-{index:03d}")
        run.report_id = f"rep-{'abc'[index % 3]}"
    return Staged(emu)


@pytest.fixture
def staged(emu_thread: Callable[..., Emulator]) -> Callable[..., Staged]:
    """Factory: an emulator thread (runs=0 plus the grid) with the given config."""

    def make(**config: Any) -> Staged:
        return stage_population(emu_thread(runs=0, **config))

    return make


@pytest.fixture
def job_settings() -> Callable[..., Settings]:
    """Settings for ``run_job`` against ``emu``: ``job_settings(emu, "run", {key: value})``."""

    def make(emu: Emulator, command: str = "run", flags: dict[str, Any] | None = None,
             env: dict[str, str] | None = None) -> Settings:
        values = {"target.base_url": emu.base_url, "pacing.rate": "1000",
                  "pacing.concurrency": "8", **(flags or {})}
        return load_settings(command, values, env if env is not None else OAUTH_ENV)

    return make


@pytest.fixture
def job() -> Callable[..., Any]:
    """``await job(settings, on_selected=..., attempts=6)``: run_job with zero-wait retries."""

    async def run(settings: Settings, *, on_selected: Callable[[int], None] | None = None,
                  attempts: int = 6) -> JobResult:
        deps = JobDeps(policy=RetryPolicy(max_attempts=attempts, base=0, cap=0),
                       on_selected=on_selected)
        return await run_job(settings, deps)

    return run


# ---------------------------------------------------------------- from reliability/conftest.py

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


# ---------------------------------------------------------------- from ops/conftest.py

@dataclass
class Received:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A tiny aiohttp server answering ``status`` (after ``delay`` seconds) to any request."""

    status: int = 200
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    base_url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(Received(request.method, request.path_qs, dict(request.headers),
                                      await request.read()))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text="ok")


class _ReceiverThread:
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.runner: web.AppRunner | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.receiver.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.receiver.base_url = f"http://127.0.0.1:{port}"

    async def _shutdown(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """Factory: ``rx = receiver(status=200, delay=0)``; served on a free loopback port."""
    threads: list[_ReceiverThread] = []

    def factory(**kwargs: float) -> Receiver:
        rt = _ReceiverThread(Receiver(**kwargs))  # type: ignore[arg-type]
        rt.thread.start()
        assert rt.ready.wait(5)
        threads.append(rt)
        return rt.receiver

    yield factory
    for rt in threads:
        rt.stop()


# ---------------------------------------------------------------- a real PostgreSQL (state store)

@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster (tests/support/pgcluster.py): started the first time a
    test asks for it, once per session, stopped and its directory deleted at the end. Skips,
    saying exactly why, where it cannot be had; with CI_REQUIRE_POSTGRES set, that is an error."""
    try:
        cluster = PgCluster.start()
    except PgUnavailable as exc:
        reason = str(exc)
    else:
        reason = ""
    if reason and os.environ.get("CI_REQUIRE_POSTGRES"):
        pytest.fail(f"CI_REQUIRE_POSTGRES is set, but: {reason}", pytrace=False)
    if reason:
        pytest.skip(f"PostgreSQL unavailable: {reason}")
    try:
        yield cluster
    finally:
        cluster.stop()


def _fresh_database(cluster: PgCluster) -> Iterator[str]:
    """A new empty database on ``cluster`` for one test; dropped after it (open connections
    too), so a long session does not pile databases up."""
    url = cluster.create_database()
    yield url
    with contextlib.suppress(Exception):  # the cluster is deleted at the end anyway
        cluster.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The state store's URL, once per backend: ``sqlite:///TMP/state.db``, then
    ``postgresql://reaper:PASSWORD@127.0.0.1:PORT/DB``, a fresh empty database on the session's
    cluster. Only the postgresql case needs (and starts) PostgreSQL; it skips where there is none.
    """
    if request.param == "sqlite":
        yield "sqlite:///" + str(tmp_path / "state.db")
        return
    yield from _fresh_database(request.getfixturevalue("pg_cluster"))


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """``postgresql://reaper:PASSWORD@127.0.0.1:PORT/DB``: a fresh empty database (PostgreSQL
    only; skips where there is none)."""
    yield from _fresh_database(pg_cluster)
