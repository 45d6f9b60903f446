"""Projection bookkeeping: builds with their checkpoints, leases, and the `read` schema.

Each build of a projection lives in a schema of its own; the `read` schema holds views
onto the live build's tables, swapped in one transaction when a rebuild catches up.

Revision ID: 0002_projections
Revises: 0001_ledger
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0002_projections"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA read")
    op.execute(
        """
        CREATE TABLE projection_builds (
            build_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name         text        NOT NULL,
            version      integer     NOT NULL,
            schema_name  text        NOT NULL UNIQUE,
            position     bigint      NOT NULL DEFAULT 0,
            state        text        NOT NULL DEFAULT 'building'
                         CHECK (state IN ('building', 'live', 'retired', 'failed')),
            error        text,
            started_at   timestamptz NOT NULL DEFAULT now(),
            updated_at   timestamptz NOT NULL DEFAULT now(),
            live_at      timestamptz
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX projection_builds_one_live ON projection_builds (name) "
        "WHERE state = 'live'"
    )
    op.execute(
        "CREATE UNIQUE INDEX projection_builds_one_building ON projection_builds (name) "
        "WHERE state = 'building'"
    )
    # A lease row, not a session advisory lock: it works through transaction poolers
    # (PgBouncer), and its token fences off a runner that lost the lease mid-batch.
    op.execute(
        """
        CREATE TABLE projection_leases (
            name        text        PRIMARY KEY,
            owner       text,
            token       bigint      NOT NULL DEFAULT 0,
            expires_at  timestamptz NOT NULL DEFAULT '-infinity'
        )
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DO $$
        DECLARE build record;
        BEGIN
            FOR build IN SELECT schema_name FROM projection_builds LOOP
                EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', build.schema_name);
            END LOOP;
        END
        $$
        """
    )
    op.execute("DROP SCHEMA read CASCADE")
    op.execute("DROP TABLE projection_leases")
    op.execute("DROP TABLE projection_builds")
