"""Member keys: one data key per member, wrapped by the master key, deleted only by erasure.

Revision ID: 0006_member_keys
Revises: 0005_readable_append
Create Date: 2026-12-03

`member_keys` is the one table where a row may be deleted, and only by erasure: in the
transaction that appended that member's `MemberForgotten`. Deleting the key is what makes
the member's personal data unreadable everywhere (crypto-shredding), so the guards live
in the database, where no code path can skip them. `ledger_secrets` holds the secret that
keys the handle hashes, wrapped by the same master key; it also lets a process check at
start that it holds the right master key.
"""

from __future__ import annotations

from alembic import op

revision = "0006_member_keys"
down_revision = "0005_readable_append"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE member_keys (
    member_id   uuid        PRIMARY KEY,
    wrapped     bytea       NOT NULL,
    kek_id      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_secrets (
    name     text  PRIMARY KEY,
    wrapped  bytea NOT NULL,
    kek_id   text  NOT NULL
);
"""

FORGOTTEN = """
CREATE FUNCTION ledger_member_forgotten(member uuid) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- One probe of the (stream, stream_version) index: a member stream is short.
    SELECT EXISTS (
        SELECT 1
        FROM events e
        WHERE e.stream = 'member-' || member::text
          AND e.type = 'MemberForgotten'
    )
$$;
"""

# Erasure and key creation meet on a lock per bucket of members: an erasure takes its
# members' buckets exclusively before it deletes, a new key takes its bucket shared before
# it checks that its member is not forgotten. Whichever comes second waits for the first
# to commit, then sees it: a key made while its member was being forgotten is refused, or
# deleted by the erasure; never left behind. Buckets, not members: an import that makes
# thousands of keys takes at most 64 locks. Shared: makers never wait for each other.
LOCKS = """
CREATE FUNCTION member_keys_lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- The first key of the two-key advisory locks on members' buckets (0005 uses 7031).
    SELECT 7032
$$;

CREATE FUNCTION member_keys_lock_bucket(member uuid) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtext(member::text) & 63
$$;
"""

# Statement-level with transition tables: an import inserts thousands of keys in one
# statement, and the checks then run once, as one query each, not once per row.
GUARD_INSERT = """
CREATE FUNCTION member_keys_guard_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_member   uuid;
    v_current  text;
    v_other    text;
BEGIN
    -- In ascending order, as erasures take them, so the two never deadlock.
    PERFORM pg_advisory_xact_lock_shared(member_keys_lock_class(), b.bucket)
    FROM (
        SELECT DISTINCT member_keys_lock_bucket(i.member_id) AS bucket
        FROM member_keys_inserted i
        ORDER BY 1
    ) AS b;
    -- A statement of its own, so it sees an erasure that committed while we waited.
    SELECT i.member_id INTO v_member
    FROM member_keys_inserted i
    WHERE ledger_member_forgotten(i.member_id)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'member % was forgotten: no new data key may be made for them', v_member
            USING ERRCODE = 'LK001', DETAIL = v_member::text;
    END IF;

    -- A process still holding the master key from before a rotation must not add keys
    -- wrapped by it: nobody holding the new one could unwrap them.
    SELECT s.kek_id INTO v_current FROM ledger_secrets s ORDER BY s.name LIMIT 1;
    SELECT i.kek_id INTO v_other
    FROM member_keys_inserted i
    WHERE v_current IS NOT NULL AND i.kek_id <> v_current
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a data key wrapped by master key % while the ledger''s keys are '
                        'wrapped by %', v_other, v_current
            USING ERRCODE = 'LK002',
                  HINT = 'the master key was rotated: restart this process with the new one';
    END IF;

    -- The keyring caches only keys created before its own transaction began, so a key
    -- that may still roll back never enters a cache: created_at is the database's to set.
    IF EXISTS (SELECT 1 FROM member_keys_inserted i WHERE i.created_at <> now()) THEN
        RAISE EXCEPTION 'member_keys.created_at is set by the database, not by an insert'
            USING ERRCODE = 'LK004';
    END IF;
    RETURN NULL;
END
$$;
"""

GUARD_UPDATE = """
CREATE FUNCTION ledger_keys_guard_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Rotation re-wraps a key under a new master key; nothing else about a key changes.
    IF (to_jsonb(NEW) - 'wrapped' - 'kek_id')
       IS DISTINCT FROM (to_jsonb(OLD) - 'wrapped' - 'kek_id') THEN
        RAISE EXCEPTION 'only wrapped and kek_id of % may change (re-wrapping by rotation)',
                        TG_TABLE_NAME
            USING ERRCODE = 'LK005';
    END IF;
    RETURN NEW;
END
$$;
"""

GUARD_DELETE = """
CREATE FUNCTION member_keys_guard_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_member uuid;
BEGIN
    -- Only erasure deletes a key: this transaction must have appended the member's
    -- MemberForgotten (events.xid is the appending transaction's id).
    SELECT d.member_id INTO v_member
    FROM member_keys_deleted d
    WHERE NOT EXISTS (
        SELECT 1
        FROM events e
        WHERE e.stream = 'member-' || d.member_id::text
          AND e.type = 'MemberForgotten'
          AND e.xid = pg_current_xact_id()
    )
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the data key of member % may be deleted only by erasing them', v_member
            USING ERRCODE = 'LK003',
                  HINT = 'append MemberForgotten for the member in the same transaction';
    END IF;
    -- Every process drops its cached copy; NOTIFY is delivered only if we commit.
    PERFORM pg_notify('ledger_member_keys', d.member_id::text) FROM member_keys_deleted d;
    RETURN NULL;
END
$$;
"""

REFUSE = """
CREATE FUNCTION ledger_keys_refuse() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'LK006',
              HINT = 'a member''s key goes only by erasure; secrets are only re-wrapped';
END
$$;
"""

TRIGGERS = """
CREATE TRIGGER member_keys_guard_insert
AFTER INSERT ON member_keys
REFERENCING NEW TABLE AS member_keys_inserted
FOR EACH STATEMENT EXECUTE FUNCTION member_keys_guard_insert();

CREATE TRIGGER member_keys_guard_update
BEFORE UPDATE ON member_keys
FOR EACH ROW EXECUTE FUNCTION ledger_keys_guard_update();

CREATE TRIGGER member_keys_guard_delete
AFTER DELETE ON member_keys
REFERENCING OLD TABLE AS member_keys_deleted
FOR EACH STATEMENT EXECUTE FUNCTION member_keys_guard_delete();

CREATE TRIGGER member_keys_no_truncate
BEFORE TRUNCATE ON member_keys
FOR EACH STATEMENT EXECUTE FUNCTION ledger_keys_refuse();

CREATE TRIGGER ledger_secrets_guard_update
BEFORE UPDATE ON ledger_secrets
FOR EACH ROW EXECUTE FUNCTION ledger_keys_guard_update();

CREATE TRIGGER ledger_secrets_no_delete
BEFORE DELETE OR TRUNCATE ON ledger_secrets
FOR EACH STATEMENT EXECUTE FUNCTION ledger_keys_refuse();
"""


def upgrade() -> None:
    for statement in (TABLES, FORGOTTEN, LOCKS, GUARD_INSERT, GUARD_UPDATE, GUARD_DELETE, REFUSE):
        op.execute(statement)
    op.execute(TRIGGERS)


def downgrade() -> None:
    op.execute("DROP TABLE ledger_secrets")
    op.execute("DROP TABLE member_keys")
    op.execute("DROP FUNCTION ledger_keys_refuse()")
    op.execute("DROP FUNCTION member_keys_guard_delete()")
    op.execute("DROP FUNCTION ledger_keys_guard_update()")
    op.execute("DROP FUNCTION member_keys_guard_insert()")
    op.execute("DROP FUNCTION member_keys_lock_bucket(uuid)")
    op.execute("DROP FUNCTION member_keys_lock_class()")
    op.execute("DROP FUNCTION ledger_member_forgotten(uuid)")
