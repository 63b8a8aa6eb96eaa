"""The state store on SQLite and on a real PostgreSQL (``state_url``): migrations equal to the
declared tables, refusals that leave a store untouched, recording, pruning, spares, the lock."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from worker.errors import ConfigError, LockHeld, StateUnavailable
from worker.state.location import resolve
from worker.state.schema import TABLES, VERSION_TABLE, metadata
from worker.state.store import HEAD, MIGRATIONS, REVISIONS, Spare, open_store

T = "0123456789abcdef"


def _open(url: str):
    return open_store(resolve(url, {}))


def _snapshot(url: str) -> object:
    """What a store holds: a SQLite file's bytes, or PostgreSQL's tables and version rows."""
    if url.startswith("sqlite:///"):
        return hashlib.sha256(Path(url[len("sqlite:///"):]).read_bytes()).hexdigest()
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        tables = sorted(sa.inspect(conn).get_table_names())
        version = (list(conn.execute(sa.text("SELECT version_num FROM reaper_schema_version")))
                   if VERSION_TABLE in tables else None)
    engine.dispose()
    return tables, version


def _execute(url: str, sql: str) -> None:
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///"):])
        with conn:
            conn.execute(sql)
        conn.close()
        return
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


def test_head_is_alembics_head_and_every_revision_is_known() -> None:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    script = ScriptDirectory.from_config(config)
    assert script.get_current_head() == HEAD
    assert sorted(r.revision for r in script.walk_revisions()) == sorted(REVISIONS)


def test_migrations_build_exactly_the_declared_tables(state_url) -> None:
    """The migrated schema and ``worker/state/schema.py`` agree (Alembic's comparison)."""
    store = _open(state_url)
    try:
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE}), metadata)
            assert sorted(set(sa.inspect(conn).get_table_names()) & {*TABLES, VERSION_TABLE}) \
                == sorted({*TABLES, VERSION_TABLE})
    finally:
        store.close()
    assert diff == []


def test_opening_twice_migrates_once(state_url) -> None:
    _open(state_url).close()
    before = _snapshot(state_url) if "postgresql" in state_url else None
    _open(state_url).close()
    if before is not None:
        assert _snapshot(state_url) == before


def test_a_newer_schema_is_refused_and_left_untouched(state_url) -> None:
    _open(state_url).close()
    _execute(state_url, "UPDATE reaper_schema_version SET version_num = '9999'")
    before = _snapshot(state_url)
    with pytest.raises(StateUnavailable, match=r"9999.*newer zuora-reaper"):
        _open(state_url)
    assert _snapshot(state_url) == before


def test_a_database_with_our_tables_but_no_version_is_refused(state_url) -> None:
    _execute(state_url, "CREATE TABLE reaper_jobs (x INTEGER)")
    before = _snapshot(state_url)
    with pytest.raises(StateUnavailable, match="not a zuora-reaper state store"):
        _open(state_url)
    assert _snapshot(state_url) == before


def test_a_sqlite_file_of_another_application_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StateUnavailable, match="holds invoices"):
        _open(str(path))
    assert path.read_bytes() == before


def test_a_postgresql_database_shared_with_other_tables_is_used(pg_url) -> None:
    """A shared database is normal on PostgreSQL: our tables go beside the others'."""
    _execute(pg_url, "CREATE TABLE invoices (id INTEGER)")
    _open(pg_url).close()
    tables, version = _snapshot(pg_url)
    assert "invoices" in tables
    assert version == [(HEAD,)]


def test_a_garbage_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"not a database at all\n" * 100)
    with pytest.raises(StateUnavailable, match="not a SQLite database"):
        _open(str(path))
    assert path.read_bytes() == b"not a database at all\n" * 100


def test_a_new_sqlite_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _open(str(path)).close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_missing_folder_of_a_named_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StateUnavailable, match="does not exist"):
        _open(str(tmp_path / "nope" / "state.db"))
    assert not (tmp_path / "nope").exists()


def test_a_wrong_postgresql_password_is_refused_without_showing_it(pg_url) -> None:
    bad = pg_url.replace("@", "x@", 1).replace("reaper:", "reaper:Wr0ngPassw0rd", 1)
    with pytest.raises(StateUnavailable) as info:
        _open(bad)
    assert "Wr0ngPassw0rd" not in str(info.value)
    assert "password" in str(info.value).lower() or "authentication" in str(info.value)


def _sighting(run_id: str, seen: float, status: str = "STARTED", updated: float = 1.0,
              outcome: str | None = None) -> dict:
    return {"job_id": f"job-{seen}", "target": T, "run_id": run_id, "seen_at": seen,
            "status": status, "updated_on": updated, "started_on": 0.0, "owner": "a@x",
            "report_id": "r", "report_name": "R", "report_type": "Detail",
            "reason": "selected", "rule": None, "outcome": outcome, "stuck": True,
            "age_s": seen, "unchanged_s": None}


def _job(job_id: str, started: float) -> dict:
    return {"job_id": job_id, "target": T, "base_url": "https://x", "principal": "sha256:1",
            "entity_id": None, "mode": "run", "started_at": started, "finished_at": started,
            "exit_code": 0, "listed": 1, "selected": 1, "cancelled": 0, "noticed": 0,
            "spared": 0, "failed": 0, "thresholds": "{}"}


def test_state_since_is_the_first_sighting_of_the_current_state(state_url) -> None:
    store = _open(state_url)
    try:
        for seen, status, updated in ((100.0, "STARTED", 1.0), (200.0, "STARTED", 1.0),
                                      (300.0, "QUERYDATA", 1.0), (400.0, "QUERYDATA", 1.0),
                                      (500.0, "QUERYDATA", 450.0)):
            store.record(_job(f"job-{seen}", seen), [_sighting("x", seen, status, updated)],
                         seen, prune_before=0.0)
            known = store.recall(T, ["x"])["x"]
            expected = {100.0: 100.0, 200.0: 100.0, 300.0: 300.0, 400.0: 300.0, 500.0: 500.0}
            assert known.state_since == expected[seen]
            assert known.first_seen == 100.0
    finally:
        store.close()


def test_a_notice_is_kept_until_a_new_one(state_url) -> None:
    store = _open(state_url)
    try:
        store.record(_job("job-1000.0", 1000.0), [_sighting("x", 1000.0, outcome="noticed")],
                     1000.0, prune_before=0.0)
        unconfirmed = store.recall(T, ["x"])["x"]  # recorded, not yet sent: no notice yet
        assert (unconfirmed.noticed_at, unconfirmed.cancel_after) == (1000.0, None)
        store.confirm_notices(T, "job-1000.0", 1060.0)
        store.record(_job("job-1100.0", 1100.0), [_sighting("x", 1100.0)], 1100.0,
                     prune_before=0.0)
        known = store.recall(T, ["x"])["x"]
        assert (known.noticed_at, known.cancel_after, known.notice_job) == (
            1000.0, 1060.0, "job-1000.0")
    finally:
        store.close()


def test_pruning_drops_what_is_older_than_keep(state_url) -> None:
    store = _open(state_url)
    try:
        store.record(_job("job-10.0", 10.0), [_sighting("old-run", 10.0)],
                     10.0, prune_before=0.0)
        store.add_spares([Spare(T, "s", 20.0, "me", None, 5.0)])
        store.record(_job("job-1000.0", 1000.0), [_sighting("new-run", 1000.0)],
                     1000.0, prune_before=500.0)
        assert set(store.recall(T, ["old-run", "new-run"])) == {"new-run"}
        assert store.spares(T) == []
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT job_id FROM reaper_jobs")).scalars().all() \
                == ["job-1000.0"]
            assert conn.execute(sa.text("SELECT COUNT(*) FROM reaper_sightings")).scalar() == 1
    finally:
        store.close()


def test_a_failed_record_writes_nothing(state_url) -> None:
    """One transaction: a job row is never left without its sightings."""
    store = _open(state_url)
    try:
        store.record(_job("j", 1.0), [], 1.0, prune_before=0.0)
        with pytest.raises(Exception, match="record the job"):
            store.record(_job("j", 2.0), [_sighting("x", 2.0)],  # the same job id again
                         2.0, prune_before=0.0)
        assert store.recall(T, ["x"]) == {}
    finally:
        store.close()


def test_spares_in_force_expire_and_are_per_target(state_url) -> None:
    store = _open(state_url)
    try:
        store.add_spares([Spare(T, "a", 200.0, "dana", "close", 100.0),
                          Spare("fedcba9876543210", "a", 200.0, "eve", None, 100.0)])
        assert [s.by_user for s in store.spares(T, 150.0)] == ["dana"]
        assert store.spares(T, 250.0) == []
        store.add_spares([Spare(T, "a", 900.0, "dana", "longer", 150.0)])  # replaces
        assert [(s.until, s.reason) for s in store.spares(T)] == [(900.0, "longer")]
        assert store.remove_spares(T, ["a", "b"]) == 1
        assert store.spares(T) == []
    finally:
        store.close()


def test_the_advisory_lock_is_one_per_target(pg_url) -> None:
    first, second = _open(pg_url), _open(pg_url)
    try:
        with first.lock(T, "the target"):
            with pytest.raises(LockHeld, match="advisory lock"), second.lock(T, "the target"):
                pass
            with second.lock("fedcba9876543210", "another target"):
                pass
        with second.lock(T, "the target"):
            pass
    finally:
        first.close()
        second.close()


def test_default_location_follows_systemd_then_xdg(tmp_path: Path) -> None:
    assert resolve(None, {"STATE_DIRECTORY": "/var/lib/zr:/x"}).path == "/var/lib/zr/state.db"
    assert resolve(None, {"XDG_STATE_HOME": "/xdg"}).path == "/xdg/zuora-reaper/state.db"
    home = os.path.expanduser("~")
    assert resolve(None, {"XDG_STATE_HOME": "relative"}).path == \
        f"{home}/.local/state/zuora-reaper/state.db"
    assert resolve("none", {}) is None
    assert resolve("sqlite:////abs/s.db", {}).path == "/abs/s.db"
    pg = resolve("postgresql://u:s3cret@db:5433/reaper", {})
    assert pg.kind == "postgresql"
    assert pg.shown() == "postgresql://u@db:5433/reaper"
    assert "s3cret" not in repr(pg)


@pytest.mark.parametrize("value", ["mysql://db/x", "sqlite://", "sqlite:///", "postgresql:///x"])
def test_a_location_of_no_store_is_refused_naming_the_allowed(value: str) -> None:
    with pytest.raises(ConfigError, match=r"state\.url"):
        resolve(value, {})


def _open_close(url: str) -> str:
    try:
        _open(url).close()
    except StateUnavailable as exc:
        return str(exc)
    return "ok"


def test_jobs_starting_together_on_a_new_store_migrate_once(state_url) -> None:
    """Eight jobs open one new store at once (each its own connection, as processes have):
    each gets a migrated store (SQLite takes its write lock before it looks; PostgreSQL an
    advisory lock), none is told the store is newer or not ours."""
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(_open_close, [state_url] * 8)) == ["ok"] * 8


def test_jobs_recording_one_target_at_once_all_succeed(state_url) -> None:
    """Two jobs (a plan and a run) recording the same runs of one target at the same time:
    both written, none refused by the other (PostgreSQL serialises them on the target)."""
    stores = [_open(state_url) for _ in range(4)]
    try:
        def write(index: int) -> None:
            rows = [_sighting(f"run{i}", 100.0 + index) for i in range(300)]
            stores[index].record(_job(f"job-{index}", 100.0 + index),
                                 [{**r, "job_id": f"job-{index}"} for r in rows],
                                 100.0 + index,
                                 prune_before=0.0)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(write, range(4)))
        assert len(stores[0].recall(T, [f"run{i}" for i in range(300)])) == 300
    finally:
        for store in stores:
            store.close()


def test_long_foreign_values_are_kept_whole(state_url) -> None:
    """Ids, report types and statuses are the server's text: no length of ours refuses them."""
    store = _open(state_url)
    long_id = "r" * 128
    try:
        row = {**_sighting(long_id, 10.0, status="S" * 300), "report_type": "T" * 500,
               "report_id": "x" * 300}
        store.record(_job("job-10.0", 10.0), [row], 10.0,
                     prune_before=0.0)
        assert store.recall(T, [long_id])[long_id].status == "S" * 300
    finally:
        store.close()


def test_pruning_keeps_other_targets_history(state_url) -> None:
    store = _open(state_url)
    try:
        other = "fedcba9876543210"
        store.record({**_job("theirs", 10.0), "target": other},
                     [{**_sighting("x", 10.0), "target": other, "job_id": "theirs"}],
                     10.0, prune_before=0.0)
        store.record(_job("job-1000.0", 1000.0), [_sighting("y", 1000.0)],
                     1000.0, prune_before=500.0)
        assert set(store.recall(other, ["x"])) == {"x"}
    finally:
        store.close()


def test_a_sighting_without_updated_on_keeps_the_known_state(state_url) -> None:
    """A job that did not ask for updatedOn neither resets a run's state nor proves a change:
    the known updatedOn and since-when stay; a new status still resets."""
    store = _open(state_url)
    try:
        store.record(_job("j1", 100.0), [{**_sighting("x", 100.0, updated=7.0), "job_id": "j1"}],
                     100.0, prune_before=0.0)
        blind = {**_sighting("x", 200.0), "updated_on": None, "job_id": "j2"}
        store.record(_job("j2", 200.0), [blind], 200.0, prune_before=0.0)
        known = store.recall(T, ["x"])["x"]
        assert (known.updated_on, known.state_since) == (7.0, 100.0)
        moved = {**blind, "status": "QUERYDATA", "job_id": "j3", "seen_at": 300.0}
        store.record(_job("j3", 300.0), [moved], 300.0, prune_before=0.0)
        assert store.recall(T, ["x"])["x"].state_since == 300.0
    finally:
        store.close()


def test_the_kept_reading_connection_is_opened_again_when_it_drops(pg_url) -> None:
    store = _open(pg_url)
    try:
        store.record(_job("job-1.0", 1.0), [_sighting("x", 1.0)], 1.0, prune_before=0.0)
        assert set(store.recall(T, ["x"])) == {"x"}
        engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:  # a failover, an idle timeout, a DBA
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE application_name = 'zuora-reaper'"))
        engine.dispose()
        assert set(store.recall(T, ["x"])) == {"x"}
    finally:
        store.close()
