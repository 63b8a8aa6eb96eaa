"""The state store: what every job saw and did, kept across jobs (SQLAlchemy Core).

``schema`` declares the tables, ``migrations`` (Alembic) versions them, ``store`` opens a
SQLite file or a PostgreSQL database, refuses one that is not ours or is newer, and reads and
writes it; ``history`` answers ``zuora-reaper history`` from it. What a job does with the
memory (stalled, noticed, spared) is ``worker.memory``.
"""
