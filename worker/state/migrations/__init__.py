"""Alembic migrations of the state store (``worker.state.store.migrate`` runs them)."""
