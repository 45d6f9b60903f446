"""The ledger: one append-only table of events, its tag index, idempotency keys.

Revision ID: 0001_ledger
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None

APPEND_LOCK_KEY = 7031170661
"""Arbitrary but fixed: the advisory lock every append takes (see ledger_append)."""

LEDGER_APPEND = f"""
CREATE FUNCTION ledger_append(
    new_events          jsonb,
    expected_versions   jsonb DEFAULT NULL,
    append_condition    jsonb DEFAULT NULL,
    idempotency_key     text  DEFAULT NULL,
    request_fingerprint text  DEFAULT NULL
) RETURNS TABLE (out_position bigint, out_event_id uuid, out_replayed boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    head        bigint;
    total       integer := jsonb_array_length(new_events);
    stored      record;
    known_ids   uuid[];
    mismatch    record;
    conflicting bigint[];
BEGIN
    -- Why one lock, held until commit: positions are handed out by one transaction at a
    -- time, so an event can only take position P once every event below P has committed
    -- or rolled back. A reader that has seen P therefore never later finds an event below
    -- P (no skipped late commits). The same lock makes the checks below race-free: nobody
    -- can append between our look at versions, conditions and keys and our insert.
    PERFORM pg_advisory_xact_lock({APPEND_LOCK_KEY});

    IF idempotency_key IS NOT NULL THEN
        SELECT * INTO stored FROM idempotency_keys k WHERE k.key = idempotency_key;
        IF FOUND THEN
            IF stored.fingerprint IS DISTINCT FROM request_fingerprint THEN
                RAISE EXCEPTION 'idempotency key reused with a different request'
                    USING ERRCODE = 'LE004',
                          DETAIL = jsonb_build_object('key', idempotency_key)::text;
            END IF;
            RETURN QUERY
                SELECT p.value::bigint,
                       (stored.response->'event_ids'->>(p.ordinality::int - 1))::uuid,
                       true
                FROM jsonb_array_elements_text(stored.response->'positions') WITH ORDINALITY AS p;
            RETURN;
        END IF;
    END IF;

    SELECT array_agg(e.event_id) INTO known_ids
    FROM events e
    WHERE e.event_id IN (SELECT (x->>'event_id')::uuid FROM jsonb_array_elements(new_events) x);
    IF known_ids IS NOT NULL THEN
        IF cardinality(known_ids) = total THEN
            -- The same events again: a retry. Answer what the first append answered.
            RETURN QUERY
                SELECT e.position, e.event_id, true
                FROM jsonb_array_elements(new_events) WITH ORDINALITY AS x(item, n)
                JOIN events e ON e.event_id = (x.item->>'event_id')::uuid
                ORDER BY x.n;
            RETURN;
        END IF;
        RAISE EXCEPTION 'some event ids are already recorded'
            USING ERRCODE = 'LE003',
                  DETAIL = jsonb_build_object('event_ids', known_ids, 'total', total)::text;
    END IF;

    IF expected_versions IS NOT NULL THEN
        SELECT s.key AS stream, s.value::bigint AS expected,
               coalesce((SELECT max(e.stream_version) FROM events e WHERE e.stream = s.key), 0)
                   AS actual
        INTO mismatch
        FROM jsonb_each_text(expected_versions) AS s
        WHERE s.value::bigint IS DISTINCT FROM
              coalesce((SELECT max(e.stream_version) FROM events e WHERE e.stream = s.key), 0)
        ORDER BY s.key
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'wrong expected version'
                USING ERRCODE = 'LE001',
                      DETAIL = jsonb_build_object(
                          'stream', mismatch.stream,
                          'expected', mismatch.expected,
                          'actual', mismatch.actual
                      )::text;
        END IF;
    END IF;

    IF append_condition IS NOT NULL THEN
        SELECT array_agg(DISTINCT e.position ORDER BY e.position) INTO conflicting
        FROM jsonb_array_elements(append_condition->'items') AS item
        JOIN LATERAL (
            SELECT ARRAY(SELECT jsonb_array_elements_text(coalesce(item->'tags', '[]'))) AS tags,
                   ARRAY(SELECT jsonb_array_elements_text(coalesce(item->'types', '[]'))) AS types
        ) AS q ON true
        JOIN events e ON e.position > (append_condition->>'after')::bigint
                     AND e.tags @> q.tags
                     AND (cardinality(q.types) = 0 OR e.type = ANY (q.types))
                     AND (cardinality(q.tags) = 0 OR e.position IN (
                             SELECT t.position FROM event_tags t
                             WHERE t.tag = q.tags[1]
                               AND t.position > (append_condition->>'after')::bigint
                         ));
        IF conflicting IS NOT NULL THEN
            RAISE EXCEPTION 'append condition failed'
                USING ERRCODE = 'LE002',
                      DETAIL = jsonb_build_object(
                          'after', (append_condition->>'after')::bigint,
                          'positions', conflicting[1:20]
                      )::text;
        END IF;
    END IF;

    SELECT coalesce(max(e.position), 0) INTO head FROM events e;

    RETURN QUERY
    WITH input AS (
        SELECT x.item, x.n
        FROM jsonb_array_elements(new_events) WITH ORDINALITY AS x(item, n)
    ),
    versions AS (
        SELECT e.stream, max(e.stream_version) AS version
        FROM events e
        WHERE e.stream IN (SELECT i.item->>'stream' FROM input i)
        GROUP BY e.stream
    ),
    new_rows AS (
        SELECT head + i.n AS position,
               (i.item->>'event_id')::uuid AS event_id,
               i.item->>'type' AS type,
               coalesce((i.item->>'schema_version')::integer, 1) AS schema_version,
               i.item->'data' AS data,
               coalesce(i.item->'metadata', '{{}}'::jsonb) AS metadata,
               i.item->>'stream' AS stream,
               coalesce(v.version, 0)
                   + row_number() OVER (PARTITION BY i.item->>'stream' ORDER BY i.n)
                   AS stream_version,
               ARRAY(SELECT jsonb_array_elements_text(coalesce(i.item->'tags', '[]')))
                   AS tags,
               (i.item->>'occurred_at')::timestamptz AS occurred_at
        FROM input i
        LEFT JOIN versions v ON v.stream = i.item->>'stream'
    ),
    inserted AS (
        INSERT INTO events (position, event_id, type, schema_version, data, metadata,
                            stream, stream_version, tags, occurred_at)
        SELECT r.position, r.event_id, r.type, r.schema_version, r.data, r.metadata,
               r.stream, r.stream_version, r.tags, r.occurred_at
        FROM new_rows r
        ORDER BY r.position
        RETURNING events.position, events.event_id, events.tags
    ),
    tagged AS (
        INSERT INTO event_tags (tag, position)
        SELECT DISTINCT t.tag, i.position
        FROM inserted i, unnest(i.tags) AS t(tag)
    )
    SELECT i.position, i.event_id, false FROM inserted i ORDER BY i.position;

    IF idempotency_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (key, fingerprint, response)
        SELECT idempotency_key, request_fingerprint,
               jsonb_build_object(
                   'positions', coalesce(jsonb_agg(head + x.n ORDER BY x.n), '[]'),
                   'event_ids', coalesce(jsonb_agg(x.item->'event_id' ORDER BY x.n), '[]')
               )
        FROM jsonb_array_elements(new_events) WITH ORDINALITY AS x(item, n);
    END IF;
END
$$
"""


NOTIFY_FUNCTION = """
CREATE FUNCTION ledger_notify_append() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ledger_events', (SELECT max(position) FROM appended)::text);
    RETURN NULL;
END
$$
"""

NOTIFY_TRIGGER = """
CREATE TRIGGER events_notify_append
AFTER INSERT ON events
REFERENCING NEW TABLE AS appended
FOR EACH STATEMENT EXECUTE FUNCTION ledger_notify_append()
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE events (
            position        bigint      PRIMARY KEY,
            event_id        uuid        NOT NULL UNIQUE,
            type            text        NOT NULL,
            schema_version  integer     NOT NULL DEFAULT 1,
            data            jsonb       NOT NULL,
            metadata        jsonb       NOT NULL DEFAULT '{}',
            stream          text        NOT NULL,
            stream_version  bigint      NOT NULL CHECK (stream_version > 0),
            tags            text[]      NOT NULL DEFAULT '{}',
            occurred_at     timestamptz NOT NULL,
            recorded_at     timestamptz NOT NULL DEFAULT statement_timestamp(),
            CONSTRAINT events_stream_version_key UNIQUE (stream, stream_version)
        )
        """
    )
    op.execute("CREATE INDEX events_type_position_idx ON events (type, position)")
    # One row per (tag, event): a backward scan of the primary key answers
    # "events with tag T, newest first, before cursor C" without a sort.
    op.execute(
        """
        CREATE TABLE event_tags (
            tag       text   NOT NULL,
            position  bigint NOT NULL REFERENCES events (position),
            PRIMARY KEY (tag, position)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE idempotency_keys (
            key          text        PRIMARY KEY,
            fingerprint  text        NOT NULL,
            response     jsonb       NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT statement_timestamp()
        )
        """
    )
    op.execute(
        """
        CREATE FUNCTION ledger_refuse_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the ledger is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'record a correcting event (a retraction, a withdrawal) instead';
        END
        $$
        """
    )
    # Statement-level, so even an UPDATE or DELETE that matches no row is refused.
    for table in ("events", "event_tags"):
        op.execute(
            f"""
            CREATE TRIGGER {table}_append_only
            BEFORE UPDATE OR DELETE OR TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()
            """
        )
    op.execute(LEDGER_APPEND)
    # Followers LISTEN on this channel; the payload is the highest new position.
    # NOTIFY is delivered only at commit, so a woken reader always finds the rows.
    op.execute(NOTIFY_FUNCTION)
    op.execute(NOTIFY_TRIGGER)


def downgrade() -> None:
    op.execute("DROP FUNCTION ledger_append(jsonb, jsonb, jsonb, text, text)")
    op.execute("DROP TABLE idempotency_keys")
    op.execute("DROP TABLE event_tags")
    op.execute("DROP TABLE events")
    op.execute("DROP FUNCTION ledger_notify_append()")
    op.execute("DROP FUNCTION ledger_refuse_change()")
