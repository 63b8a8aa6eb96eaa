"""Alembic's environment: migrations run on the connection ``worker.state.store`` hands over
(``config.attributes["connection"]``), never on a URL of their own."""

from __future__ import annotations

from alembic import context

from worker.state.schema import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
