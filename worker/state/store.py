"""The state edge: open the store, refuse one that is not ours or is newer, migrate, and read
and write it. Database errors become :class:`StateUnavailable` (opening, exit 2) or
:class:`StateError` (later) here and nowhere else.

Opening never changes a database it then refuses: a file that is not SQLite, a database with
tables but no zuora-reaper schema version, or one whose version this release does not know
(a newer zuora-reaper wrote it) is refused before anything is written. Alembic (and its
templates) is imported only when a migration is due, so a job on an up-to-date store does not
pay for it. On PostgreSQL, migrations run under an advisory lock (two pods starting at once
migrate once), and ``run``'s single-flight lock is an advisory lock on the target's identity.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import (
    ARRAY,
    Connection,
    Engine,
    Text,
    and_,
    any_,
    bindparam,
    case,
    column,
    create_engine,
    delete,
    event,
    inspect,
    literal,
    null,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from worker.config import Settings
from worker.errors import LockHeld, StateError, StateUnavailable
from worker.state.location import Location, resolve
from worker.state.schema import TABLES, VERSION_TABLE, jobs, runs, sightings, spares

log = structlog.get_logger("worker.state")

HEAD = "0001"  # the newest migration (tests/state/test_store.py checks it is Alembic's head)
REVISIONS = ("0001",)  # every migration this release knows, oldest first
MIGRATIONS = str(Path(__file__).with_name("migrations"))
SQLITE_MAGIC = b"SQLite format 3\x00"
WAIT_S = 20  # the longest a statement or a lock may wait (SQLite's busy timeout too)
CHUNK = 2000  # rows per statement when recording (memory stays flat at 50k runs)
IN_LIMIT = 500  # ids per IN (...) when reading
ANALYZE_ROWS = 5000  # PostgreSQL: a job that wrote this many runs refreshes their statistics


@dataclass(frozen=True, slots=True)
class Known:
    """What the store knew of a run before this job."""

    status: str | None
    updated_on: float | None
    state_since: float
    first_seen: float
    noticed_at: float | None
    cancel_after: float | None
    notice_job: str | None


@dataclass(frozen=True, slots=True)
class Spare:
    """A person's request to leave a run alone until ``until``."""

    target: str
    run_id: str
    until: float
    by_user: str
    reason: str | None
    created_at: float


def _short(exc: BaseException, location: Location) -> str:
    """A database error in one line, without the URL's password."""
    orig = getattr(exc, "orig", None) or exc
    message = " ".join(str(orig).split()) or type(orig).__name__
    secret = location.password()
    return message.replace(secret, "***")[:500] if secret else message[:500]


def lock_key(identity_key: str) -> int:
    """A signed 64-bit advisory lock key for a target (``config.Identity.key``)."""
    digest = hashlib.sha256(f"zuora-reaper:{identity_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


MIGRATION_LOCK = lock_key("schema-migration")
version_table = table(VERSION_TABLE, column("version_num"))  # Alembic's, read before it runs


class Store:
    """An open, checked, up-to-date state store."""

    def __init__(self, engine: Engine, location: Location) -> None:
        self.engine, self.location = engine, location
        self._reader: Connection | None = None

    @property
    def is_postgresql(self) -> bool:
        return self.location.kind == "postgresql"

    def close(self) -> None:
        self._drop_reader()
        self.engine.dispose()

    @contextlib.contextmanager
    def writing(self, target: str) -> Iterator[Any]:
        """A write transaction, one at a time per target: on SQLite ``BEGIN IMMEDIATE`` (the
        database's write lock, taken before the first read), on PostgreSQL a transaction
        advisory lock on the target (two jobs recording one target at once would race between
        reading a run's state and writing it)."""
        with self.engine.connect() as conn:
            conn.info["immediate"] = True
            with conn.begin():
                if self.is_postgresql:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                                 {"k": lock_key(f"write:{target}")})
                yield conn

    def fail(self, what: str, exc: BaseException) -> StateError:
        return StateError(f"the state store {self.location.shown()} failed to {what}: "
                          f"{_short(exc, self.location)}")

    # ------------------------------------------------------------ reading

    def recall(self, target: str, run_ids: Iterable[str]) -> dict[str, Known]:
        """The known state of these runs (those the store has seen), on the store's kept
        reading connection (a job asks once per listing page: a connection each would cost
        more than the query on PostgreSQL)."""
        ids = list(run_ids)
        try:
            return self._recall(target, ids)
        except SQLAlchemyError:  # the kept connection dropped (a failover, an idle timeout)
            self._drop_reader()
        try:
            return self._recall(target, ids)
        except SQLAlchemyError as exc:
            self._drop_reader()
            raise self.fail("read the runs' state", exc) from exc

    def _recall(self, target: str, ids: list[str]) -> dict[str, Known]:
        found: dict[str, Known] = {}
        if self._reader is None:
            self._reader = self.engine.connect()
        with self._reader.begin():  # no read transaction outlives the page
            for chunk in batched(ids, IN_LIMIT):
                found.update(_known(self._reader, target, chunk, self.is_postgresql))
        return found

    def _drop_reader(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._reader.close()
            self._reader = None

    def spares(self, target: str | None, now: float | None = None) -> list[Spare]:
        """The spares of ``target`` (every target: None), those in force at ``now`` when
        given, soonest to expire first."""
        query = select(spares).order_by(spares.c.until, spares.c.run_id)
        if target is not None:
            query = query.where(spares.c.target == target)
        if now is not None:
            query = query.where(spares.c.until > now)
        try:
            with self.engine.connect() as conn:
                return [Spare(**row._mapping) for row in conn.execute(query)]
        except SQLAlchemyError as exc:
            raise self.fail("read the spares", exc) from exc

    # ------------------------------------------------------------ writing

    def record(self, job: Mapping[str, Any], rows: Iterable[dict[str, Any]], now: float,
               prune_before: float) -> None:
        """Write one job: its row, a sighting per run (at most one per run id), then the
        runs' latest state computed by the database from those sightings (a notice this job
        gives is stamped ``now``, unconfirmed until :meth:`confirm_notices`), then prune what
        is older than ``prune_before``. One transaction: all of it or nothing."""
        target = job["target"]
        try:
            with self.writing(target) as conn:
                conn.execute(jobs.insert(), [dict(job)])
                written = (_copy_sightings(conn, rows) if self.is_postgresql
                           else _insert_sightings(conn, rows))
                conn.execute(state_upsert(self.is_postgresql, job["job_id"], now))
                _prune(conn, target, prune_before)
        except SQLAlchemyError as exc:
            raise self.fail("record the job", exc) from exc
        if self.is_postgresql and written >= ANALYZE_ROWS:
            self._analyze()

    def _analyze(self) -> None:
        """Fresh statistics for the next job's reads (the planner picks the wrong index on a
        table it has not sampled): after the commit, never holding the record; an optimisation
        whose failure (a VACUUM holding the table) is only logged."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SET lock_timeout = '2s'"))
                conn.execute(text("ANALYZE reaper_runs"))
                conn.commit()
        except SQLAlchemyError as exc:
            log.info("state.analyze_skipped", error=_short(exc, self.location))

    def confirm_notices(self, target: str, job_id: str, due: float) -> None:
        """The notices of ``job_id`` were sent: a job starting at ``due`` or later may
        cancel those runs. Until this, a notice is unconfirmed and counts as none (a job
        killed between recording and sending gives it again, never cancels unannounced)."""
        try:
            with self.writing(target) as conn:
                conn.execute(runs.update().where(
                    runs.c.target == target, runs.c.notice_job == job_id,
                    runs.c.cancel_after.is_(None)).values(cancel_after=due))
        except SQLAlchemyError as exc:
            raise self.fail("confirm the notices sent", exc) from exc

    def add_spares(self, items: list[Spare]) -> None:
        try:
            with self.writing(items[0].target) as conn:
                for item in items:
                    conn.execute(delete(spares).where(spares.c.target == item.target,
                                                      spares.c.run_id == item.run_id))
                conn.execute(spares.insert(), [dataclasses.asdict(item) for item in items])
        except SQLAlchemyError as exc:
            raise self.fail("record the spares", exc) from exc

    def withdraw_notices(self, target: str, job_id: str, run_ids: list[str],
                         exit_code: int) -> None:
        """Forget the notices this job recorded for ``run_ids`` (they could not be sent), in
        the runs' state, the job's sightings and the job's row."""
        try:
            with self.writing(target) as conn:
                conn.execute(jobs.update().where(jobs.c.job_id == job_id).values(
                    noticed=0, exit_code=exit_code))
                for chunk in batched(run_ids, IN_LIMIT):
                    conn.execute(runs.update().where(
                        runs.c.target == target, runs.c.notice_job == job_id,
                        runs.c.run_id.in_(chunk)).values(
                        noticed_at=None, cancel_after=None, notice_job=None))
                    conn.execute(sightings.update().where(
                        sightings.c.job_id == job_id, sightings.c.run_id.in_(chunk)).values(
                        outcome=None, reason="notice_unsent"))
        except SQLAlchemyError as exc:
            raise self.fail("withdraw the notices that were not sent", exc) from exc

    def remove_spares(self, target: str, run_ids: list[str]) -> int:
        try:
            with self.writing(target) as conn:
                done = conn.execute(delete(spares).where(spares.c.target == target,
                                                         spares.c.run_id.in_(run_ids)))
                return int(done.rowcount or 0)
        except SQLAlchemyError as exc:
            raise self.fail("remove the spares", exc) from exc

    # ------------------------------------------------------------ the lock

    @contextlib.contextmanager
    def lock(self, identity_key: str, describe: str) -> Iterator[None]:
        """PostgreSQL's single-flight lock: a session advisory lock on the target, held on a
        connection of its own for the job's life (the server drops it if the process dies)."""
        key = lock_key(identity_key)
        try:
            conn = self.engine.connect()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            conn.commit()
        except SQLAlchemyError as exc:  # before any request: the store cannot be used
            raise StateUnavailable(f"cannot take the job lock on {self.location.shown()}: "
                                   f"{_short(exc, self.location)}") from exc
        try:
            if not got:
                raise LockHeld(f"another zuora-reaper job holds the PostgreSQL advisory lock "
                               f"for {describe} on {self.location.shown()}; this job sent "
                               "nothing")
            yield
        finally:
            with contextlib.suppress(SQLAlchemyError):
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
            with contextlib.suppress(SQLAlchemyError):
                conn.close()


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (itertools.batched is Python 3.12)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _known(conn: Any, target: str, ids: Iterable[str], postgresql: bool = False
           ) -> dict[str, Known]:
    """What is known of these runs (on PostgreSQL the ids go as one array: one query text,
    whatever the page's size)."""
    chosen = (runs.c.run_id == any_(bindparam("ids", list(ids), type_=ARRAY(Text)))
              if postgresql else runs.c.run_id.in_(list(ids)))
    query = select(runs.c.run_id, runs.c.status, runs.c.updated_on, runs.c.state_since,
                   runs.c.first_seen, runs.c.noticed_at, runs.c.cancel_after,
                   runs.c.notice_job).where(runs.c.target == target, chosen)
    return {row[0]: Known(*row[1:]) for row in conn.execute(query)}


SIGHTING_COLUMNS = tuple(c.name for c in sightings.c if c.name != "id")


def _insert_sightings(conn: Any, rows: Iterable[dict[str, Any]]) -> int:
    written = 0
    for chunk in batched(rows, CHUNK):
        conn.execute(sightings.insert(), chunk)
        written += len(chunk)
    return written


def _copy_sightings(conn: Any, rows: Iterable[dict[str, Any]]) -> int:
    """PostgreSQL's COPY, through psycopg's copy API on the transaction's own connection: a
    third of the time of an INSERT of 50,000 rows."""
    driver = conn.connection.driver_connection
    written = 0
    statement = f"COPY reaper_sightings ({', '.join(SIGHTING_COLUMNS)}) FROM STDIN"
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[name] for name in SIGHTING_COLUMNS])
                written += 1
    except conn.dialect.loaded_dbapi.Error as exc:  # the driver's own: as SQLAlchemy's are
        raise DBAPIError(statement, None, exc) from exc
    return written


def state_upsert(postgresql: bool, job_id: str, now: float) -> Any:
    """The runs' latest state from the sightings job ``job_id`` just wrote, in one statement:
    a run seen in the same state keeps since when it is in it (a sighting without updatedOn
    judged on its status alone, keeping the known updatedOn); a notice given by this job
    (outcome ``noticed``) is stamped ``now``, due once confirmed sent; others keep theirs."""
    s, r = sightings.c, runs.c
    noticed = s.outcome == "noticed"
    query = select(s.target, s.run_id, s.status, s.updated_on, s.seen_at, s.seen_at, s.seen_at,
                   case((noticed, literal(now))), null(),
                   case((noticed, s.job_id))).where(s.job_id == job_id)
    insert = (pg_insert if postgresql else sqlite_insert)(runs).from_select(
        ["target", "run_id", "status", "updated_on", "state_since", "first_seen", "last_seen",
         "noticed_at", "cancel_after", "notice_job"], query)
    new = insert.excluded
    same_status = r.status.is_not_distinct_from(new.status)
    blind = and_(new.updated_on.is_(None), same_status)  # no updatedOn: the status alone
    same = or_(blind, and_(same_status, r.updated_on.is_not_distinct_from(new.updated_on)))
    given = new.notice_job.is_not(None)
    return insert.on_conflict_do_update(index_elements=[r.target, r.run_id], set_={
        "status": new.status, "last_seen": new.last_seen,
        "updated_on": case((blind, r.updated_on), else_=new.updated_on),
        "state_since": case((same, r.state_since), else_=new.state_since),
        "noticed_at": case((given, new.noticed_at), else_=r.noticed_at),
        "cancel_after": case((given, new.cancel_after), else_=r.cancel_after),
        "notice_job": case((given, new.notice_job), else_=r.notice_job),
    })


def _prune(conn: Any, target: str, before: float) -> None:
    """Drop what of ``target`` is older than ``before`` (only the writing job's target: on a
    shared database another team's history is theirs to keep)."""
    conn.execute(delete(sightings).where(sightings.c.target == target,
                                         sightings.c.seen_at < before))
    conn.execute(delete(jobs).where(jobs.c.target == target, jobs.c.started_at < before))
    conn.execute(delete(runs).where(runs.c.target == target, runs.c.last_seen < before))
    conn.execute(delete(spares).where(spares.c.target == target, spares.c.until < before))


# ---------------------------------------------------------------- opening


def open_store(location: Location, create: bool = True) -> Store:
    """Open ``location``, check it is ours and not newer, migrate it to ``HEAD``. Without
    ``create`` (``spare``, ``history``), a store no job has written is refused: a spare
    recorded where the scheduled job never looks would protect nothing."""
    if location.kind == "sqlite":
        _check_sqlite_file(location, create)
    engine = _engine(location)
    try:
        with engine.connect() as conn:
            version = _version(conn, location)
        if version is None and not create:
            raise StateUnavailable(_NOTHING_THERE.format(location.shown()))
        if version != HEAD:
            _migrate(engine, location)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StateUnavailable(f"cannot open the state store {location.shown()}: "
                               f"{_short(exc, location)}") from exc
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, location)


def _engine(location: Location) -> Engine:
    if location.kind == "postgresql":  # no statement or lock wait holds a job for long
        return create_engine(location.url, poolclass=NullPool, connect_args={
            "connect_timeout": 10, "application_name": "zuora-reaper",
            "options": f"-c statement_timeout={WAIT_S * 1000} -c lock_timeout={WAIT_S * 1000}",
            "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
            "keepalives_count": 3})
    engine = create_engine(location.url, poolclass=NullPool, connect_args={"timeout": WAIT_S})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's BEGIN below: DDL is transactional
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {WAIT_S * 1000}")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:  # a writer takes the write lock first (no upgrade deadlock)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.pop("immediate", False)
                             else "BEGIN")

    return engine


_NOTHING_THERE = ("no zuora-reaper state at {}: no job has recorded there; give --state where "
                  "the scheduled jobs keep theirs (systemd: /var/lib/zuora-reaper/state.db)")


def _check_sqlite_file(location: Location, create: bool = True) -> None:
    """Refuse, before SQLite touches it, a path that is not a writable SQLite file of ours
    (``unwritable``: only permissions stand in the way). A missing file is created 0600 (it
    holds owners' addresses); the default folder 0700."""
    assert location.path is not None
    path, folder = location.path, os.path.dirname(location.path)
    if not create and not os.path.exists(path):
        raise StateUnavailable(_NOTHING_THERE.format(path))
    if not location.explicit:
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StateUnavailable(f"cannot create {folder}: {exc.strerror}",
                                   unwritable=True) from exc
    if not os.path.isdir(folder):
        raise StateUnavailable(f"{folder} (the folder of {path}) does not exist")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        _create(path, folder)
        return
    if not stat.S_ISREG(info.st_mode):
        raise StateUnavailable(f"{path} is not a regular file")
    with open(path, "rb") as handle:
        head = handle.read(len(SQLITE_MAGIC))
    if head and head != SQLITE_MAGIC:
        raise StateUnavailable(f"{path} is not a SQLite database (left as it is); give "
                               "another --state, or move it away")
    if not (os.access(path, os.W_OK) and os.access(folder, os.W_OK)):
        raise StateUnavailable(f"{path} is not writable by this user (SQLite also needs to "
                               f"write in {folder})", unwritable=True)


def _create(path: str, folder: str) -> None:
    if not os.access(folder, os.W_OK):
        raise StateUnavailable(f"cannot create {path}: {folder} is not writable by this user",
                               unwritable=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StateUnavailable(f"cannot create {path}: {exc.strerror}",
                               unwritable=exc.errno in (1, 13, 30)) from exc


def _version(conn: Any, location: Location) -> str | None:
    """The schema version; None for a database with none of our tables (to create). Refuses
    one that is not ours, and one newer than this release."""
    tables = set(inspect(conn).get_table_names())
    if VERSION_TABLE not in tables:
        ours = sorted(tables & set(TABLES))
        others = sorted(tables - set(TABLES))
        if ours or (others and location.kind == "sqlite"):
            held = ", ".join((ours or others)[:5])
            raise StateUnavailable(f"{location.shown()} is not a zuora-reaper state store "
                                   f"(it holds {held} and no {VERSION_TABLE}); left as it is")
        return None
    found = list(conn.execute(select(version_table.c.version_num)).scalars())
    if len(found) == 1 and found[0] in REVISIONS:
        return str(found[0])
    if not found:
        raise StateUnavailable(f"{location.shown()} has {VERSION_TABLE} but no version in it "
                               "(not written by zuora-reaper, whose migrations are all or "
                               "nothing); left as it is")
    raise StateUnavailable(
        f"{location.shown()} has schema version {', '.join(found) or 'none'}, which this "
        f"zuora-reaper does not know (it knows {', '.join(REVISIONS)}): a newer zuora-reaper "
        "wrote it. Upgrade zuora-reaper; the store was left as it is")


def _migrate(engine: Engine, location: Location) -> None:
    """Upgrade to ``HEAD`` with Alembic, in one transaction (checked again inside it)."""
    command = importlib.import_module("alembic.command")  # only when a migration is due:
    config = importlib.import_module("alembic.config").Config()  # ~10 MB and 0.1 s a job
    config.set_main_option("script_location", MIGRATIONS)
    with engine.connect() as conn:
        conn.info["immediate"] = True  # SQLite: migrations one at a time, all or nothing
        with conn.begin():
            if location.kind == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            if _version(conn, location) == HEAD:
                return  # another job migrated it meanwhile
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    if location.kind == "sqlite":  # readers never wait for the writer (outside a transaction);
        raw = engine.raw_connection()  # best effort: a job opening the file at this moment
        try:  # keeps it busy, and the rollback journal works as well, if slower
            raw.cursor().execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            log.info("state.wal_skipped", error=str(exc)[:200])
        finally:
            raw.close()


def open_for(settings: Settings, env: Mapping[str, str], create: bool = True) -> Store | None:
    """The store ``settings`` name, open; None when there is none (``--state none``) or the
    default location is not writable (one warning: the job runs without memory). Raises
    StateUnavailable (exit 2) for a named store that cannot be used, and when an option that
    needs memory (``--stalled-for``, ``--notice``) would run without it."""
    needs = [flag for flag, value in (("--stalled-for", settings.selection.stalled_for),
                                      ("--notice", settings.selection.notice))
             if value is not None and settings.command in ("plan", "run")]
    location = resolve(settings.state.url, env)
    if location is None:
        if needs:
            raise StateUnavailable(f"{needs[0]} needs the state store, and --state is none")
        return None
    try:
        return open_store(location, create)
    except StateUnavailable as exc:
        if location.explicit or not exc.unwritable or not create:
            raise
        if needs:
            raise StateUnavailable(f"{needs[0]} needs the state store, and the default one "
                                   f"cannot be used: {exc}; give --state PATH|URL") from exc
        log.warning("state.unavailable", path=location.path, error=str(exc),
                    hint="this job runs without memory; give --state PATH|URL, or --state "
                         "none to say so")
        return None
