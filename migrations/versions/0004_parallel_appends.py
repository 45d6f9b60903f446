"""Parallel appends: positions from a sequence, gap-free reading below the xid8 horizon.

Revision ID: 0004_parallel_appends
Revises: 0003_api_keys
Create Date: 2026-12-02

0001 handed out positions under one advisory lock held until commit: simple and
gap-free, but every append waited for the previous one's WAL flush, so concurrent
writers could not share a flush (group commit). Here the lock that orders positions is
held only while a transaction takes its xid and its positions, and readers of the feed
stop below the oldest transaction still running (docs/ledger.md, "Order without a global
lock", gives the argument).
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0004_parallel_appends"
down_revision = "0003_api_keys"
branch_labels = None
depends_on = None

SEQUENCER_KEY = 7031170662
"""Session advisory lock held for microseconds: xid and positions are taken under it."""
ORDERING_KEY = 7031170661
"""Transaction advisory lock: shared by ordinary appends, exclusive for the rare ones that
must see every other append finished (0001's lock key, so old and new never overlap)."""
TAG_LOCK_CLASS = 7031
TAG_BUCKETS = 128
"""A power of two: a tag's bucket is its hash's low bits."""
MAX_TAG_LOCKS = 32
"""An append touching more buckets than this takes ORDERING_KEY exclusively instead."""

LEDGER_APPEND = f"""
CREATE OR REPLACE FUNCTION ledger_append(
    new_events          jsonb,
    expected_versions   jsonb DEFAULT NULL,
    append_condition    jsonb DEFAULT NULL,
    idempotency_key     text  DEFAULT NULL,
    request_fingerprint text  DEFAULT NULL
) RETURNS TABLE (out_position bigint, out_event_id uuid, out_replayed boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    total        integer := jsonb_array_length(new_events);
    stored       record;
    known_ids    uuid[];
    mismatch     record;
    conflicting  bigint[];
    guarded      integer[];
    touched      integer[];
    bucket       integer;
    alone        boolean;
    first_position bigint;
    appender_xid   xid8;
BEGIN
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

    -- Every read below is written as one index probe per item (a LATERAL with a LIMIT,
    -- which the planner cannot turn into a scan of the whole table, however small it
    -- thought the table was when it cached the plan).
    SELECT array_agg(e.event_id) INTO known_ids
    FROM jsonb_array_elements(new_events) AS x(item)
    CROSS JOIN LATERAL (
        SELECT k.event_id FROM events k
        WHERE k.event_id = (x.item->>'event_id')::uuid
        LIMIT 1
    ) AS e;
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

    -- Locks, always in this order (ordering key, then tag buckets ascending) so two
    -- appends never wait for each other in a cycle.
    --
    -- Tag buckets make conditions race-free without a global lock: an append holds the
    -- buckets of the tags it writes (shared) until commit; an append with a condition on
    -- tag T holds T's bucket exclusively, so it checks only once every append writing T
    -- has committed, and nobody writes T until it has. The first tag of a query is
    -- enough: a matching event carries all of them.
    IF append_condition IS NULL THEN
        guarded := '{{}}';
    ELSE
        SELECT coalesce(array_agg(DISTINCT hashtext(q.item->'tags'->>0) & {TAG_BUCKETS - 1}),
                        '{{}}')
        INTO guarded
        FROM jsonb_array_elements(coalesce(append_condition->'items', '[]')) AS q(item)
        WHERE jsonb_array_length(coalesce(q.item->'tags', '[]')) > 0;
    END IF;
    IF total <= {MAX_TAG_LOCKS} THEN
        SELECT coalesce(array_agg(DISTINCT hashtext(t.tag) & {TAG_BUCKETS - 1}), '{{}}')
        INTO touched
        FROM jsonb_array_elements(new_events) AS x(item),
             jsonb_array_elements_text(coalesce(x.item->'tags', '[]')) AS t(tag);
    ELSE
        touched := array_fill(0, ARRAY[{MAX_TAG_LOCKS} + 1]);  -- surely too many: alone
    END IF;

    -- Alone: wait until every other append has committed, and hold new ones off. Needed
    -- when this transaction already has an xid (it wrote before calling us, so its xid
    -- may be older than appends numbered before it: see the reader's argument in
    -- docs/ledger.md), when a condition names no tag, and for big batches (cheaper than
    -- hundreds of bucket locks, and they would fill the lock table).
    alone := pg_current_xact_id_if_assigned() IS NOT NULL
          OR EXISTS (
                SELECT 1
                FROM jsonb_array_elements(coalesce(append_condition->'items', '[]')) AS q(item)
                WHERE jsonb_array_length(coalesce(q.item->'tags', '[]')) = 0)
          OR cardinality(touched) + cardinality(guarded) > {MAX_TAG_LOCKS};
    IF alone THEN
        PERFORM pg_advisory_xact_lock({ORDERING_KEY});
    ELSE
        PERFORM pg_advisory_xact_lock_shared({ORDERING_KEY});
        FOR bucket IN SELECT b FROM unnest(touched || guarded) AS b GROUP BY b ORDER BY b LOOP
            IF bucket = ANY (guarded) THEN
                PERFORM pg_advisory_xact_lock({TAG_LOCK_CLASS}, bucket);
            ELSE
                PERFORM pg_advisory_xact_lock_shared({TAG_LOCK_CLASS}, bucket);
            END IF;
        END LOOP;
    END IF;

    -- Two appends to one stream can both pass this check; the unique (stream,
    -- stream_version) then refuses the second at insert, and the store retries it, which
    -- lands here again and reports the conflict.
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
        WITH queries AS MATERIALIZED (
            SELECT ARRAY(SELECT jsonb_array_elements_text(coalesce(item->'tags', '[]'))) AS tags,
                   ARRAY(SELECT jsonb_array_elements_text(coalesce(item->'types', '[]'))) AS types
            FROM jsonb_array_elements(append_condition->'items') AS item
        ),
        hits AS (
            -- A query with tags: the first tag's rows after P, then the other tags and types.
            SELECT e.position
            FROM queries q
            CROSS JOIN LATERAL (
                SELECT t.position FROM event_tags t
                WHERE t.tag = q.tags[1] AND t.position > (append_condition->>'after')::bigint
                OFFSET 0
            ) AS t
            CROSS JOIN LATERAL (
                SELECT m.position, m.tags, m.type FROM events m
                WHERE m.position = t.position
                LIMIT 1
            ) AS e
            WHERE cardinality(q.tags) > 0
              AND e.tags @> q.tags
              AND (cardinality(q.types) = 0 OR e.type = ANY (q.types))
            UNION ALL
            -- A query without tags: by types alone, or any event at all.
            SELECT e.position
            FROM queries q
            JOIN events e ON e.position > (append_condition->>'after')::bigint
                         AND (cardinality(q.types) = 0 OR e.type = ANY (q.types))
            WHERE cardinality(q.tags) = 0
        )
        SELECT array_agg(DISTINCT h.position ORDER BY h.position) INTO conflicting FROM hits h;
        IF conflicting IS NOT NULL THEN
            RAISE EXCEPTION 'append condition failed'
                USING ERRCODE = 'LE002',
                      DETAIL = jsonb_build_object(
                          'after', (append_condition->>'after')::bigint,
                          'positions', conflicting[1:20]
                      )::text;
        END IF;
    END IF;

    -- The xid and the positions are taken together under one short lock, so among
    -- appends positions rise with xids: what lets readers stop at the xid horizon.
    PERFORM pg_advisory_lock({SEQUENCER_KEY});
    BEGIN
        appender_xid := pg_current_xact_id();
        first_position := nextval('events_position_seq');
        IF total > 1 THEN
            PERFORM setval('events_position_seq', first_position + total - 1);
        END IF;
        PERFORM pg_advisory_unlock({SEQUENCER_KEY});
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM pg_advisory_unlock({SEQUENCER_KEY});
        RAISE;
    END;

    RETURN QUERY
    WITH input AS (
        SELECT x.item, x.n
        FROM jsonb_array_elements(new_events) WITH ORDINALITY AS x(item, n)
    ),
    versions AS (
        SELECT s.stream,
               (SELECT max(e.stream_version) FROM events e WHERE e.stream = s.stream) AS version
        FROM (SELECT DISTINCT i.item->>'stream' AS stream FROM input i) AS s
    ),
    new_rows AS (
        SELECT first_position + i.n - 1 AS position,
               (i.item->>'event_id')::uuid AS event_id,
               i.item->>'type' AS type,
               coalesce((i.item->>'schema_version')::integer, 1) AS schema_version,
               i.item->'data' AS data,
               coalesce(i.item->'metadata', '{{}}'::jsonb) AS metadata,
               i.item->>'stream' AS stream,
               -- The expected version, when given, rather than what is there now: a
               -- racing append that committed since the check then collides on the
               -- unique (stream, stream_version) instead of being silently followed.
               coalesce((expected_versions->>(i.item->>'stream'))::bigint, v.version, 0)
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
                            stream, stream_version, tags, occurred_at, xid)
        SELECT r.position, r.event_id, r.type, r.schema_version, r.data, r.metadata,
               r.stream, r.stream_version, r.tags, r.occurred_at, appender_xid
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
                   'positions', coalesce(jsonb_agg(first_position + x.n - 1 ORDER BY x.n), '[]'),
                   'event_ids', coalesce(jsonb_agg(x.item->'event_id' ORDER BY x.n), '[]')
               )
        FROM jsonb_array_elements(new_events) WITH ORDINALITY AS x(item, n);
    END IF;
END
$$
"""


# The horizon a feed reader may read up to, in a statement of its own, before the read
# (docs/ledger.md, "Order without a global lock"): the oldest xid among the appends in
# flight in this database (they hold ORDERING_KEY until commit), or, with none, the next
# xid to be handed out. Transactions of other kinds and other databases do not hold it
# back. pg_locks shows 32-bit xids; the snapshot's list of running xids gives their xid8.
LEDGER_HORIZON = f"""
CREATE FUNCTION ledger_horizon() RETURNS xid8
LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(min(running.xid), pg_snapshot_xmax(pg_current_snapshot()))
    FROM pg_snapshot_xip(pg_current_snapshot()) AS running(xid)
    WHERE running.xid::text::numeric % 4294967296 IN (
        SELECT own.transactionid::text::numeric
        FROM pg_locks appending
        JOIN pg_locks own ON own.virtualtransaction = appending.virtualtransaction
                         AND own.locktype = 'transactionid'
                         AND own.mode = 'ExclusiveLock'
                         AND own.granted
        WHERE appending.locktype = 'advisory'
          AND appending.database = (SELECT oid FROM pg_database
                                    WHERE datname = current_database())
          AND appending.classid = {ORDERING_KEY >> 32}
          AND appending.objid = {ORDERING_KEY & 0xFFFFFFFF}
          AND appending.objsubid = 1
    )
$$
"""


# The highest position a reader can reach now, in one round trip: a VOLATILE function
# takes a fresh snapshot for each statement it runs, so the read below sees the ledger as
# of after the horizon was read, as the argument needs.
LEDGER_HEAD = """
CREATE FUNCTION ledger_head() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    horizon xid8 := ledger_horizon();
BEGIN
    RETURN (
        SELECT coalesce(max(e.position), 0)
        FROM events e
        WHERE e.position < (
            SELECT coalesce(min(h.position + 0), 9223372036854775807)
            FROM events h
            WHERE h.xid >= horizon
              AND h.xid < pg_snapshot_xmax(pg_current_snapshot())
        )
    );
END
$$
"""


def upgrade() -> None:
    # Rows already there were committed long ago: xid 0 is below any horizon. The
    # constant default first, then the volatile one, so the table is not rewritten.
    op.execute("ALTER TABLE events ADD COLUMN xid xid8 NOT NULL DEFAULT '0'")
    op.execute("ALTER TABLE events ALTER COLUMN xid SET DEFAULT pg_current_xact_id()")
    # Serves the reader's "lowest position at or above the horizon": the few newest rows.
    op.execute("CREATE INDEX events_xid_idx ON events (xid)")
    op.execute("CREATE SEQUENCE events_position_seq AS bigint OWNED BY events.position")
    op.execute(
        "SELECT setval('events_position_seq', coalesce(max(position), 0) + 1, false) FROM events"
    )
    op.execute(LEDGER_APPEND)
    op.execute(LEDGER_HORIZON)
    op.execute(LEDGER_HEAD)
    # The store sends the NOTIFY after the append has committed: a NOTIFY inside the
    # append's transaction holds the notify-queue lock across its WAL flush, which
    # serialises commits just as 0001's lock did.
    op.execute("DROP TRIGGER events_notify_append ON events")
    op.execute("DROP FUNCTION ledger_notify_append()")
    # Tag rows are written only by ledger_append, in the statement that writes their
    # events, and neither table takes UPDATE or DELETE: the foreign key could never
    # fail, and checking it cost a quarter of a batch's time.
    op.execute("ALTER TABLE event_tags DROP CONSTRAINT event_tags_position_fkey")


def downgrade() -> None:
    first = importlib.import_module("migrations.versions.0001_ledger")
    op.execute(
        "ALTER TABLE event_tags ADD CONSTRAINT event_tags_position_fkey "
        "FOREIGN KEY (position) REFERENCES events (position)"
    )
    op.execute(first.NOTIFY_FUNCTION)
    op.execute(first.NOTIFY_TRIGGER)
    op.execute("DROP FUNCTION ledger_head()")
    op.execute("DROP FUNCTION ledger_horizon()")
    op.execute("DROP FUNCTION ledger_append(jsonb, jsonb, jsonb, text, text)")
    op.execute(first.LEDGER_APPEND)
    op.execute("DROP SEQUENCE events_position_seq")
    op.execute("DROP INDEX events_xid_idx")
    op.execute("ALTER TABLE events DROP COLUMN xid")
