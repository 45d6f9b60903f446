"""Webhooks: subscriptions, their checkpoints and the log of delivery attempts.

Revision ID: 0008_webhooks
Revises: 0007_seal_ledger
Create Date: 2026-12-03

A subscription's `position` is its checkpoint: every matching event at or below it was
answered with a 2xx. The dispatcher advances it in the transaction that records the
delivery, fenced by its lease (`projection_leases`, name `webhook:<id>`), so two
dispatchers never deliver in parallel for one subscription and a crash redelivers at most
the events after the checkpoint (at least once). The signing secret is stored wrapped by
the master key, like the members' data keys, so `keys rotate-master` re-wraps it too.
"""

from __future__ import annotations

from alembic import op

revision = "0008_webhooks"
down_revision = "0007_seal_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE webhooks (
            webhook_id       uuid        PRIMARY KEY,
            url              text        NOT NULL,
            event_types      text[],
            member_id        uuid,
            space            text,
            description      text        NOT NULL DEFAULT '',
            enabled          boolean     NOT NULL DEFAULT true,
            disabled_reason  text,
            secret_wrapped   bytea       NOT NULL,
            kek_id           text        NOT NULL,
            position         bigint      NOT NULL DEFAULT 0 CHECK (position >= 0),
            attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            next_attempt_at  timestamptz,
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE webhook_deliveries (
            delivery_id      bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            webhook_id       uuid             NOT NULL
                             REFERENCES webhooks (webhook_id) ON DELETE CASCADE,
            position         bigint           NOT NULL,
            event_id         uuid             NOT NULL,
            attempt          integer          NOT NULL,
            status_code      integer,
            duration_ms      double precision NOT NULL,
            error            text,
            next_attempt_at  timestamptz,
            attempted_at     timestamptz      NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "CREATE INDEX webhook_deliveries_by_webhook "
        "ON webhook_deliveries (webhook_id, delivery_id DESC)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE webhook_deliveries")
    op.execute("DROP TABLE webhooks")
