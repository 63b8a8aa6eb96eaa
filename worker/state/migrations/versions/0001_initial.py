"""The first schema: jobs, sightings, the runs' latest state, spares.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    _jobs()
    _sightings()
    _runs()
    _spares()


def _jobs() -> None:
    op.create_table(
        "reaper_jobs",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("base_url", sa.Text, nullable=False),
        sa.Column("principal", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.Text),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("exit_code", sa.Integer),
        sa.Column("listed", sa.Integer, nullable=False),
        sa.Column("selected", sa.Integer, nullable=False),
        sa.Column("cancelled", sa.Integer, nullable=False),
        sa.Column("noticed", sa.Integer, nullable=False),
        sa.Column("spared", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("thresholds", sa.Text, nullable=False),
    )
    op.create_index("ix_reaper_jobs_target", "reaper_jobs", ["target"])
    op.create_index("ix_reaper_jobs_target_started", "reaper_jobs", ["target", "started_at"])


def _sightings() -> None:
    op.create_table(
        "reaper_sightings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("seen_at", sa.Float, nullable=False),
        sa.Column("status", sa.Text),
        sa.Column("updated_on", sa.Float),
        sa.Column("started_on", sa.Float),
        sa.Column("owner", sa.Text),
        sa.Column("report_id", sa.Text),
        sa.Column("report_name", sa.Text),
        sa.Column("report_type", sa.Text),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("rule", sa.Text),
        sa.Column("outcome", sa.String(24)),
        sa.Column("stuck", sa.Boolean, nullable=False),
        sa.Column("age_s", sa.Float),
        sa.Column("unchanged_s", sa.Float),
    )
    op.create_index("ix_reaper_sightings_job_id", "reaper_sightings", ["job_id"])
    op.create_index("ix_reaper_sightings_target_seen", "reaper_sightings",
                    ["target", "seen_at"])
    op.create_index("ix_reaper_sightings_stuck", "reaper_sightings", ["target", "seen_at"],
                    sqlite_where=sa.text("stuck"), postgresql_where=sa.text("stuck"))


def _runs() -> None:
    op.create_table(
        "reaper_runs",
        sa.Column("target", sa.String(16), primary_key=True),
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("status", sa.Text),
        sa.Column("updated_on", sa.Float),
        sa.Column("state_since", sa.Float, nullable=False),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("noticed_at", sa.Float),
        sa.Column("cancel_after", sa.Float),
        sa.Column("notice_job", sa.String(64)),
    )
    op.create_index("ix_reaper_runs_target_last_seen", "reaper_runs", ["target", "last_seen"])


def _spares() -> None:
    op.create_table(
        "reaper_spares",
        sa.Column("target", sa.String(16), primary_key=True),
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("until", sa.Float, nullable=False),
        sa.Column("by_user", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("reaper_spares", "reaper_runs", "reaper_sightings", "reaper_jobs"):
        op.drop_table(table)
