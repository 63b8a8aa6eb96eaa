"""The tables of the state store. Times are epoch seconds (UTC) as floats: one type on SQLite
and PostgreSQL, compared and subtracted alike. Every table is prefixed ``reaper_``, so a shared
PostgreSQL database can hold them beside other applications' tables. A change here is a new
migration (``worker/state/migrations/versions``), never an edit of an old one.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()
VERSION_TABLE = "reaper_schema_version"  # Alembic's version table, under our own name

jobs = Table(
    "reaper_jobs", metadata,
    Column("job_id", String(64), primary_key=True),
    Column("target", String(16), nullable=False, index=True),  # config.Identity.key
    Column("base_url", Text, nullable=False),
    Column("principal", String(32), nullable=False),  # a fingerprint, never a secret
    Column("entity_id", Text),
    Column("mode", String(8), nullable=False),  # plan | run
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("exit_code", Integer),
    Column("listed", Integer, nullable=False),
    Column("selected", Integer, nullable=False),
    Column("cancelled", Integer, nullable=False),
    Column("noticed", Integer, nullable=False),
    Column("spared", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("thresholds", Text, nullable=False),  # JSON: the selection the job applied
)
Index("ix_reaper_jobs_target_started", jobs.c.target, jobs.c.started_at)

# One row per run per job: what the listing said, how the job judged it, what came of it.
sightings = Table(
    "reaper_sightings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(64), nullable=False, index=True),
    Column("target", String(16), nullable=False),
    Column("run_id", Text, nullable=False),
    Column("seen_at", Float, nullable=False),
    Column("status", Text),
    Column("updated_on", Float),
    Column("started_on", Float),
    Column("owner", Text),
    Column("report_id", Text),
    Column("report_name", Text),
    Column("report_type", Text),
    Column("reason", String(40), nullable=False),  # "selected" or why not
    Column("rule", Text),
    Column("outcome", String(24)),
    Column("stuck", Boolean, nullable=False),  # matched the selection (spared, noticed, ...)
    Column("age_s", Float),
    Column("unchanged_s", Float),  # how long status and updatedOn had not changed, across jobs
)
Index("ix_reaper_sightings_target_seen", sightings.c.target, sightings.c.seen_at)
Index("ix_reaper_sightings_stuck", sightings.c.target, sightings.c.seen_at,
      sqlite_where=sightings.c.stuck, postgresql_where=sightings.c.stuck)

# The latest known state of each run: since when its status and updatedOn are what they are,
# and its notice.
runs = Table(
    "reaper_runs", metadata,
    Column("target", String(16), primary_key=True),
    Column("run_id", Text, primary_key=True),
    Column("status", Text),
    Column("updated_on", Float),
    Column("state_since", Float, nullable=False),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("noticed_at", Float),
    Column("cancel_after", Float),
    Column("notice_job", String(64)),
)
Index("ix_reaper_runs_target_last_seen", runs.c.target, runs.c.last_seen)

spares = Table(
    "reaper_spares", metadata,
    Column("target", String(16), primary_key=True),
    Column("run_id", Text, primary_key=True),
    Column("until", Float, nullable=False),
    Column("by_user", Text, nullable=False),
    Column("reason", Text),
    Column("created_at", Float, nullable=False),
)

TABLES = tuple(metadata.tables)
