"""Alembic environment and revisions of the ledger's schema."""
