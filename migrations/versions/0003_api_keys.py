"""API keys: who may call the HTTP API, with which scope; secrets stored only as hashes.

Revision ID: 0003_api_keys
Revises: 0002_projections
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0003_api_keys"
down_revision = "0002_projections"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # secret_hash is a plain sha256 of the whole token, not bcrypt or argon2: a token
    # is 32 random bytes, so there is nothing to guess and a slow hash would only slow
    # every request. The unique index is the lookup path for each authentication.
    op.execute(
        """
        CREATE TABLE api_keys (
            key_id        uuid        PRIMARY KEY,
            name          text        NOT NULL,
            scope         text        NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
            prefix        text        NOT NULL,
            secret_hash   text        NOT NULL UNIQUE,
            created_at    timestamptz NOT NULL DEFAULT now(),
            last_used_at  timestamptz,
            revoked_at    timestamptz
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE api_keys")
