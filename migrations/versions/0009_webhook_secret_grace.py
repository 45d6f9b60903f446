"""Webhooks: the secret a rotation superseded stays valid for a grace period.

Revision ID: 0009_webhook_secret_grace
Revises: 0008_webhooks
Create Date: 2026-12-03

While `previous_valid_until` is in the future, the dispatcher signs every delivery with
the current secret and with the previous one (Standard Webhooks: several space-separated
signatures, a receiver accepts any that verifies), so a receiver that has not switched yet
keeps accepting. The previous secret is wrapped by the master key like the current one
(same context), so `keys rotate-master` re-wraps it too. The three columns are set or
cleared together.
"""

from __future__ import annotations

from alembic import op

revision = "0009_webhook_secret_grace"
down_revision = "0008_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE webhooks
            ADD COLUMN previous_secret_wrapped bytea,
            ADD COLUMN previous_kek_id         text,
            ADD COLUMN previous_valid_until    timestamptz,
            ADD CONSTRAINT webhooks_previous_secret_whole CHECK (
                (previous_secret_wrapped IS NULL) = (previous_kek_id IS NULL)
                AND (previous_kek_id IS NULL) = (previous_valid_until IS NULL)
            )
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE webhooks
            DROP CONSTRAINT webhooks_previous_secret_whole,
            DROP COLUMN previous_valid_until,
            DROP COLUMN previous_kek_id,
            DROP COLUMN previous_secret_wrapped
        """
    )
