"""Member keys: the forgotten-member check of a key insert is one join, not a probe per key.

Revision ID: 0010_forgotten_checks_by_join
Revises: 0009_webhook_secret_grace
Create Date: 2026-12-04

`member_keys_guard_insert` (0006) called `ledger_member_forgotten` once per inserted key:
a correlated probe of the member's stream, about 2.5 us each, which a registering batch
of 1,000 members paid in full although `MemberForgotten` events are rare. Written as a
join of the inserted keys with the `MemberForgotten` events, the planner picks: a hash of
the few forgotten streams (events_type_position_idx), or probes when there are many. Same
check, same statement of its own after the bucket locks, same error.
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0010_forgotten_checks_by_join"
down_revision = "0009_webhook_secret_grace"
branch_labels = None
depends_on = None

_PER_KEY = """
    SELECT i.member_id INTO v_member
    FROM member_keys_inserted i
    WHERE ledger_member_forgotten(i.member_id)
    LIMIT 1;"""

_BY_JOIN = """
    SELECT i.member_id INTO v_member
    FROM member_keys_inserted i
    JOIN events e ON e.stream = 'member-' || i.member_id::text
    WHERE e.type = 'MemberForgotten'
    LIMIT 1;"""


def _guard_insert() -> str:
    member_keys = importlib.import_module("migrations.versions.0006_member_keys")
    original: str = member_keys.GUARD_INSERT
    assert _PER_KEY in original, "0006's guard changed: update this migration's text"
    return original.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def upgrade() -> None:
    op.execute(_guard_insert().replace(_PER_KEY, _BY_JOIN))


def downgrade() -> None:
    op.execute(_guard_insert())
