"""The state-store test fixtures: ``state_url`` answers on both backends (SQLite, and a real
throwaway PostgreSQL from tests/support/pgcluster.py), and each PostgreSQL database is fresh.

The postgresql cases skip, saying why, where PostgreSQL is not installed; .ci/run installs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pgcluster
import pytest
import sqlalchemy
from pgcluster import PgCluster, PgUnavailable


@contextmanager
def engine_for(url: str) -> Iterator[sqlalchemy.Engine]:
    """An engine on ``url`` (``postgresql://`` driven by psycopg 3), disposed afterwards."""
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        yield engine
    finally:
        engine.dispose()


def test_state_url_answers(state_url: str, tmp_path: Path) -> None:
    with engine_for(state_url) as engine, engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("SELECT 1")).scalar_one() == 1
    if state_url.startswith("sqlite"):
        assert state_url == f"sqlite:///{tmp_path / 'state.db'}"
    else:
        assert state_url.startswith("postgresql://reaper:")
        with engine_for(state_url) as engine:  # fresh: no table of anyone else's
            assert sqlalchemy.inspect(engine).get_table_names() == []


def test_fresh_databases_are_distinct(pg_cluster: PgCluster, pg_url: str) -> None:
    other = pg_cluster.create_database()
    try:
        assert other != pg_url
        with engine_for(pg_url) as engine, engine.begin() as conn:
            conn.execute(sqlalchemy.text("CREATE TABLE runs (id text PRIMARY KEY)"))
            conn.execute(sqlalchemy.text("INSERT INTO runs VALUES ('run-1')"))
        with engine_for(pg_url) as engine:
            assert sqlalchemy.inspect(engine).get_table_names() == ["runs"]
        with engine_for(other) as engine:
            assert sqlalchemy.inspect(engine).get_table_names() == []
    finally:
        pg_cluster.drop_database(other)


def test_host_connections_need_the_password(pg_cluster: PgCluster, pg_url: str) -> None:
    """scram-sha-256 on 127.0.0.1: the password in the URL is what lets a client in, so a test
    can look for it in what the code under test prints; the cluster's repr never shows it."""
    assert f":{pg_cluster.password}@" in pg_url
    assert pg_cluster.password not in repr(pg_cluster)
    wrong = pg_url.replace(pg_cluster.password, "not-the-password")
    with engine_for(wrong) as engine, pytest.raises(sqlalchemy.exc.OperationalError,
                                                    match="password authentication failed"):
        engine.connect()


def test_no_binaries_is_a_clear_reason_to_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgcluster, "find_bindir", lambda: None)
    with pytest.raises(PgUnavailable, match=r"initdb and postgres under "
                       r"/usr/lib/postgresql/\*/bin nor on PATH; \.ci/run installs Debian's"):
        PgCluster.start()
