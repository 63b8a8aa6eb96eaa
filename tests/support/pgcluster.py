"""A throwaway PostgreSQL cluster for a test session: ``initdb`` into a fresh temp dir, listen on
127.0.0.1 on a free port (unix socket in the temp dir), durability off for speed; every test gets
a fresh empty database on it. Stopped, and its directory deleted, at the end.

The server binaries come from ``/usr/lib/postgresql/*/bin`` (newest version; Debian's layout) or
from PATH; ``.ci/run`` installs Debian's ``postgresql`` when it can. PostgreSQL refuses to run as
root, so as root ``initdb`` and the server run as the ``postgres`` system user (the setuid that
``runuser -u postgres`` does, done by ``subprocess`` itself).

The postmaster is this process's own child (``postgres -D``, what ``pg_ctl start`` runs), in its
own session: its early death is seen at once, and stopping it reaps it, leaving no zombie behind.

Host connections need the superuser ``reaper``'s random password (scram-sha-256), so a test can
check that the password never appears in what the code under test prints. When the cluster
cannot be had, :class:`PgUnavailable` says exactly why, for ``pytest.skip``.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

USER = "reaper"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
INSTALL_HINT = ".ci/run installs Debian's postgresql (apt-get install -y postgresql) when it can"

SETTINGS = """
# ---- tests/support/pgcluster.py: a throwaway cluster, durability off
listen_addresses = '{host}'
port = {port}
unix_socket_directories = '{sockdir}'
fsync = off
full_page_writes = off
synchronous_commit = off
max_connections = 200
shared_buffers = 32MB
jit = off
"""


class PgUnavailable(RuntimeError):
    """No PostgreSQL for the tests; ``str(exc)`` is the reason to skip with."""


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``: the newest /usr/lib/postgresql/*/bin,
    else wherever PATH has them; None when neither has both."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", path.parent.name)) or (0,)

    found = [d for d in Path("/usr/lib/postgresql").glob("*/bin")
             if (d / "initdb").is_file() and (d / "postgres").is_file()]
    if found:
        return max(found, key=version)
    initdb = shutil.which("initdb")
    if initdb and (Path(initdb).parent / "postgres").is_file():
        return Path(initdb).parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One running cluster. ``PgCluster.start()`` or ``with PgCluster.start() as pg:``;
    ``pg.create_database()`` returns ``postgresql://reaper:PASSWORD@127.0.0.1:PORT/NAME``."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.password = secrets.token_urlsafe(24)
        self.port = 0
        self.started_in = 0.0  # seconds start() took, initdb included
        self._as_postgres = os.getuid() == 0
        self._tmp: Path | None = None
        self._postmaster: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)

    def __repr__(self) -> str:  # never the password
        return f"PgCluster(bindir={str(self.bindir)!r}, port={self.port}, dir={str(self._tmp)!r})"

    # ------------------------------------------------------------ paths
    @property
    def tmp(self) -> Path:
        assert self._tmp is not None, "the cluster is not started"
        return self._tmp

    @property
    def datadir(self) -> Path:
        return self.tmp / "data"

    @property
    def logfile(self) -> Path:
        return self.tmp / "server.log"

    def log_text(self, tail: int = 60) -> str:
        """The last ``tail`` lines of the server's log (or why there is none)."""
        try:
            lines = self.logfile.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"(no server log: {exc})"
        return "\n".join(lines[-tail:])

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def start(cls, timeout: float = START_TIMEOUT) -> PgCluster:
        """initdb and start a cluster; raises :class:`PgUnavailable` saying why it could not."""
        try:
            import psycopg  # noqa: F401  (the poll and create_database need it)
        except ImportError as exc:
            raise PgUnavailable(f"psycopg is not installed ({exc}); pip install 'psycopg[binary]'"
                                ) from exc
        bindir = find_bindir()
        if bindir is None:
            raise PgUnavailable(
                "PostgreSQL server binaries not found: no initdb and postgres under "
                f"/usr/lib/postgresql/*/bin nor on PATH; {INSTALL_HINT}")
        cluster = cls(bindir)
        began = time.monotonic()
        try:
            cluster._start(timeout)
        except BaseException:
            cluster.stop()
            raise
        cluster.started_in = time.monotonic() - began
        atexit.register(cluster.stop)  # in case the session dies before its teardown
        return cluster

    def _start(self, timeout: float) -> None:
        self._tmp = self._make_tmp()
        pwfile = self.tmp / "pwfile"
        self._write_owned(pwfile, self.password + "\n")
        try:
            self._initdb(pwfile)
        finally:
            pwfile.unlink(missing_ok=True)
        conf = self.datadir / "postgresql.conf"
        base_conf = conf.read_text()
        for attempt in range(3):  # the free port may be taken before the server binds it
            self.port = _free_port()
            conf.write_text(base_conf + SETTINGS.format(host=HOST, port=self.port,
                                                        sockdir=self.tmp))
            self._spawn_postmaster()
            try:
                self._wait_ready(timeout)
                return
            except PgUnavailable:
                log = self.log_text()
                if attempt == 2 or not ("could not bind" in log or "already in use" in log):
                    raise
                self._stop_server()

    def _initdb(self, pwfile: Path) -> None:
        argv = [str(self.bindir / "initdb"), "-D", str(self.datadir), "--username", USER,
                "--pwfile", str(pwfile), "--auth-host=scram-sha-256", "--auth-local=trust",
                "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                                  **self._popen_kwargs())
        except (OSError, subprocess.SubprocessError) as exc:
            raise PgUnavailable(f"the throwaway PostgreSQL cluster could not start: "
                                f"{self.bindir / 'initdb'} failed to run: {exc}") from exc
        if proc.returncode != 0:
            raise PgUnavailable(
                f"the throwaway PostgreSQL cluster could not start: {self.bindir / 'initdb'} "
                f"exited {proc.returncode}:\n{(proc.stderr + proc.stdout).strip()}")

    def _spawn_postmaster(self) -> None:
        """``postgres -D DATA`` as a child of ours (what ``pg_ctl start`` would detach), its
        output appended to the log; in a new session, so a ^C at the terminal is ours to act on."""
        with open(self.logfile, "ab") as log:
            try:
                self._postmaster = subprocess.Popen(
                    [str(self.bindir / "postgres"), "-D", str(self.datadir)],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    **self._popen_kwargs())
            except OSError as exc:
                raise PgUnavailable(f"the throwaway PostgreSQL cluster could not start: "
                                    f"{self.bindir / 'postgres'} failed to run: {exc}") from exc

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while (proc := self._postmaster) is not None and proc.poll() is None:
            try:
                with self._connect(connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last = exc
            if time.monotonic() > deadline:
                why = f"did not accept connections within {timeout:.0f} s (last error: {last})"
                break
            time.sleep(0.05)
        else:  # the postmaster gave up; waiting longer would not help
            why = f"exited {proc.returncode if proc else '?'} before accepting connections"
        raise PgUnavailable(
            f"the throwaway PostgreSQL cluster could not start: {self.bindir / 'postgres'} on "
            f"{HOST}:{self.port} {why}; server log:\n{self.log_text()}")

    def stop(self) -> None:
        """Stop the server (if it runs) and delete the temp dir. Idempotent."""
        atexit.unregister(self.stop)
        self._stop_server()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _stop_server(self) -> None:
        """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL; always reaped."""
        proc, self._postmaster = self._postmaster, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGINT, 10.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ databases
    def url(self, dbname: str) -> str:
        password = urllib.parse.quote(self.password, safe="")
        return f"postgresql://{USER}:{password}@{HOST}:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A fresh empty database; returns its URL (``postgresql://``, password in it)."""
        from psycopg import sql

        name = name or f"t{next(self._names)}_{secrets.token_hex(3)}"
        with self._connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, url_or_name: str) -> None:
        """Drop a database made by :meth:`create_database`, ending its open connections."""
        from psycopg import sql

        name = url_or_name.rsplit("/", 1)[-1]
        with self._connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))

    def _connect(self, dbname: str = "postgres", connect_timeout: int = 10) -> Any:
        import psycopg

        return psycopg.connect(host=HOST, port=self.port, user=USER, password=self.password,
                               dbname=dbname, connect_timeout=connect_timeout, sslmode="disable",
                               autocommit=True)

    # ------------------------------------------------------------ running as postgres
    def _make_tmp(self) -> Path:
        """A fresh 0700 dir for the data, the socket and the log; as root, owned by postgres
        and under a directory postgres can reach (TMPDIR, else /tmp)."""
        if not self._as_postgres:
            return Path(tempfile.mkdtemp(prefix="reaper-pg-"))
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise PgUnavailable(
                "running as root, and PostgreSQL refuses to run as root, but there is no "
                f"'postgres' system user to run it as; {INSTALL_HINT}") from None
        base = next((d for d in (tempfile.gettempdir(), "/tmp") if _searchable(Path(d))), None)
        if base is None:
            raise PgUnavailable(f"running as root, and neither {tempfile.gettempdir()} nor /tmp "
                                "is reachable by the 'postgres' user the server must run as")
        tmp = Path(tempfile.mkdtemp(prefix="reaper-pg-", dir=base))
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
        return tmp

    def _write_owned(self, path: Path, text: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if self._as_postgres:
            owner = pwd.getpwnam("postgres")
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _popen_kwargs(self) -> dict[str, Any]:
        """Where and as whom initdb and the server run: in the temp dir, without the PG*
        variables of the caller's shell; as root, as ``postgres`` with its own groups."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        kwargs: dict[str, Any] = {"cwd": self.tmp, "env": env, "stdin": subprocess.DEVNULL}
        if self._as_postgres:
            owner = pwd.getpwnam("postgres")
            env.update(HOME=owner.pw_dir, USER="postgres", LOGNAME="postgres")
            kwargs.update(user=owner.pw_uid, group=owner.pw_gid,
                          extra_groups=os.getgrouplist("postgres", owner.pw_gid))
        return kwargs


def _searchable(path: Path) -> bool:
    """Whether any user may pass through ``path`` and every directory above it."""
    try:
        return all(os.stat(d).st_mode & 0o001 for d in (path.resolve(), *path.resolve().parents))
    except OSError:
        return False
