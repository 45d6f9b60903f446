"""Readable append: `ledger_append` as psql shows it, with named constants and numbered phases.

Revision ID: 0005_readable_append
Revises: 0004_parallel_appends
Create Date: 2026-12-03

Behaviour and signatures are 0004's; only what the database shows changes. 0004 built
its bodies with f-strings, so the stored definitions held bare lock keys and masks. Here
nothing is interpolated: the three lock keys are IMMUTABLE SQL functions (PostgreSQL
inlines and folds them, so plans are 0004's), the ordering key shared by the append and
`ledger_horizon()`, which finds the appends in flight by it; the other constants are
CONSTANT declarations; locals are prefixed and parameters qualified, so no
`#variable_conflict` is needed; and comments number the phases as docs/ledger.md does.
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0005_readable_append"
down_revision = "0004_parallel_appends"
branch_labels = None
depends_on = None

LOCK_KEYS = """
CREATE FUNCTION ledger_ordering_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- Transaction advisory lock: shared by ordinary appends until they commit, exclusive
    -- for an append that must be alone. ledger_horizon() finds the appends in flight by
    -- it. 0001's append lock key, so 0001's appends and later ones never overlap.
    SELECT 7031170661::bigint
$$;

CREATE FUNCTION ledger_sequencer_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- Session advisory lock held for microseconds inside one call of ledger_append: the
    -- xid and the positions are taken under it, so among appends positions rise with xids.
    SELECT 7031170662::bigint
$$;

CREATE FUNCTION ledger_tag_lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- The first key of the two-key advisory locks on tag buckets; the bucket is the second.
    SELECT 7031
$$;
"""

LEDGER_APPEND = """
CREATE OR REPLACE FUNCTION ledger_append(
    new_events          jsonb,
    expected_versions   jsonb DEFAULT NULL,
    append_condition    jsonb DEFAULT NULL,
    idempotency_key     text  DEFAULT NULL,
    request_fingerprint text  DEFAULT NULL
) RETURNS TABLE (out_position bigint, out_event_id uuid, out_replayed boolean)
LANGUAGE plpgsql AS $$
-- The whole append in one round trip. The numbered comments are the phases of
-- docs/ledger.md ("Appending: one function, one round trip").
--
-- Parameters are written ledger_append.<name> and locals start with v_ (constants c_),
-- so no name here can be read as a column: PL/pgSQL's default, an error on any such
-- ambiguity, stands, and no #variable_conflict is needed. The parameters keep their
-- names because CREATE OR REPLACE cannot rename them and callers may name them.
DECLARE
    -- Tag locks are per bucket of a tag's hash, so an append takes a bounded number of
    -- them. A power of two: a tag's bucket is its hash's low bits.
    c_tag_buckets      CONSTANT integer := 128;
    c_tag_bucket_mask  CONSTANT integer := c_tag_buckets - 1;
    -- An append that would take more bucket locks than this appends alone instead.
    c_max_tag_locks    CONSTANT integer := 32;

    v_total            integer := jsonb_array_length(ledger_append.new_events);
    v_stored           record;
    v_known_ids        uuid[];
    v_mismatch         record;
    v_conflicting      bigint[];
    v_guarded          integer[];
    v_touched          integer[];
    v_bucket           integer;
    v_alone            boolean;
    v_first_position   bigint;
    v_appender_xid     xid8;
BEGIN
    -- 1. Idempotency key: a key already used answers its stored positions (same
    -- fingerprint) or raises LE004 (another request).
    IF ledger_append.idempotency_key IS NOT NULL THEN
        SELECT * INTO v_stored FROM idempotency_keys k WHERE k.key = ledger_append.idempotency_key;
        IF FOUND THEN
            IF v_stored.fingerprint IS DISTINCT FROM ledger_append.request_fingerprint THEN
                RAISE EXCEPTION 'idempotency key reused with a different request'
                    USING ERRCODE = 'LE004',
                          DETAIL = jsonb_build_object('key', ledger_append.idempotency_key)::text;
            END IF;
            RETURN QUERY
                SELECT p.value::bigint,
                       (v_stored.response->'event_ids'->>(p.ordinality::int - 1))::uuid,
                       true
                FROM jsonb_array_elements_text(v_stored.response->'positions') WITH ORDINALITY AS p;
            RETURN;
        END IF;
    END IF;

    -- 2. Event ids: all of them already recorded is a retry, answered with their
    -- positions; only some of them raises LE003.
    --
    -- Every read below is written as one index probe per item (a LATERAL with a LIMIT,
    -- which the planner cannot turn into a scan of the whole table, however small it
    -- thought the table was when it cached the plan).
    SELECT array_agg(e.event_id) INTO v_known_ids
    FROM jsonb_array_elements(ledger_append.new_events) AS x(item)
    CROSS JOIN LATERAL (
        SELECT k.event_id FROM events k
        WHERE k.event_id = (x.item->>'event_id')::uuid
        LIMIT 1
    ) AS e;
    IF v_known_ids IS NOT NULL THEN
        IF cardinality(v_known_ids) = v_total THEN
            RETURN QUERY
                SELECT e.position, e.event_id, true
                FROM jsonb_array_elements(ledger_append.new_events) WITH ORDINALITY AS x(item, n)
                JOIN events e ON e.event_id = (x.item->>'event_id')::uuid
                ORDER BY x.n;
            RETURN;
        END IF;
        RAISE EXCEPTION 'some event ids are already recorded'
            USING ERRCODE = 'LE003',
                  DETAIL = jsonb_build_object('event_ids', v_known_ids, 'total', v_total)::text;
    END IF;

    -- 3. Locks: always in this order (ordering key, then tag buckets ascending) so two
    -- appends never wait for each other in a cycle; none is a global lock held until
    -- commit.
    --
    -- Tag buckets make conditions race-free without a global lock: an append holds the
    -- buckets of the tags it writes (shared) until commit; an append with a condition on
    -- tag T holds T's bucket exclusively, so it checks only once every append writing T
    -- has committed, and nobody writes T until it has. The first tag of a query is
    -- enough: a matching event carries all of them.
    IF ledger_append.append_condition IS NULL THEN
        v_guarded := '{}';
    ELSE
        SELECT coalesce(array_agg(DISTINCT hashtext(q.item->'tags'->>0) & c_tag_bucket_mask),
                        '{}')
        INTO v_guarded
        FROM jsonb_array_elements(coalesce(ledger_append.append_condition->'items', '[]'))
            AS q(item)
        WHERE jsonb_array_length(coalesce(q.item->'tags', '[]')) > 0;
    END IF;
    IF v_total <= c_max_tag_locks THEN
        SELECT coalesce(array_agg(DISTINCT hashtext(t.tag) & c_tag_bucket_mask), '{}')
        INTO v_touched
        FROM jsonb_array_elements(ledger_append.new_events) AS x(item),
             jsonb_array_elements_text(coalesce(x.item->'tags', '[]')) AS t(tag);
    ELSE
        v_touched := array_fill(0, ARRAY[c_max_tag_locks + 1]);  -- surely too many: alone
    END IF;

    -- Alone: wait until every other append has committed, and hold new ones off. Needed
    -- when this transaction already has an xid (it wrote before calling us, so its xid
    -- may be older than appends numbered before it: see the reader's argument in
    -- docs/ledger.md), when a condition names no tag, and for big batches (cheaper than
    -- hundreds of bucket locks, and they would fill the lock table).
    v_alone := pg_current_xact_id_if_assigned() IS NOT NULL
          OR EXISTS (
                SELECT 1
                FROM jsonb_array_elements(coalesce(ledger_append.append_condition->'items', '[]'))
                    AS q(item)
                WHERE jsonb_array_length(coalesce(q.item->'tags', '[]')) = 0)
          OR cardinality(v_touched) + cardinality(v_guarded) > c_max_tag_locks;
    IF v_alone THEN
        PERFORM pg_advisory_xact_lock(ledger_ordering_lock_key());
    ELSE
        PERFORM pg_advisory_xact_lock_shared(ledger_ordering_lock_key());
        FOR v_bucket IN
            SELECT b FROM unnest(v_touched || v_guarded) AS b GROUP BY b ORDER BY b
        LOOP
            IF v_bucket = ANY (v_guarded) THEN
                PERFORM pg_advisory_xact_lock(ledger_tag_lock_class(), v_bucket);
            ELSE
                PERFORM pg_advisory_xact_lock_shared(ledger_tag_lock_class(), v_bucket);
            END IF;
        END LOOP;
    END IF;

    -- 4. Expected versions: the first stream not at its expected version raises LE001,
    -- naming stream, expected and actual.
    --
    -- Two appends to one stream can both pass this check; the unique (stream,
    -- stream_version) then refuses the second at insert, and the store retries it, which
    -- lands here again and reports the conflict.
    IF ledger_append.expected_versions IS NOT NULL THEN
        SELECT s.key AS stream, s.value::bigint AS expected,
               coalesce((SELECT max(e.stream_version) FROM events e WHERE e.stream = s.key), 0)
                   AS actual
        INTO v_mismatch
        FROM jsonb_each_text(ledger_append.expected_versions) AS s
        WHERE s.value::bigint IS DISTINCT FROM
              coalesce((SELECT max(e.stream_version) FROM events e WHERE e.stream = s.key), 0)
        ORDER BY s.key
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'wrong expected version'
                USING ERRCODE = 'LE001',
                      DETAIL = jsonb_build_object(
                          'stream', v_mismatch.stream,
                          'expected', v_mismatch.expected,
                          'actual', v_mismatch.actual
                      )::text;
        END IF;
    END IF;

    -- 5. Condition: an event after position P carrying all the tags of one query (and of
    -- one of its types) raises LE002, naming the positions.
    IF ledger_append.append_condition IS NOT NULL THEN
        WITH queries AS MATERIALIZED (
            SELECT ARRAY(SELECT jsonb_array_elements_text(coalesce(item->'tags', '[]'))) AS tags,
                   ARRAY(SELECT jsonb_array_elements_text(coalesce(item->'types', '[]'))) AS types
            FROM jsonb_array_elements(ledger_append.append_condition->'items') AS item
        ),
        hits AS (
            -- A query with tags: the first tag's rows after P, then the other tags and types.
            SELECT e.position
            FROM queries q
            CROSS JOIN LATERAL (
                SELECT t.position FROM event_tags t
                WHERE t.tag = q.tags[1]
                  AND t.position > (ledger_append.append_condition->>'after')::bigint
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
            JOIN events e ON e.position > (ledger_append.append_condition->>'after')::bigint
                         AND (cardinality(q.types) = 0 OR e.type = ANY (q.types))
            WHERE cardinality(q.tags) = 0
        )
        SELECT array_agg(DISTINCT h.position ORDER BY h.position) INTO v_conflicting FROM hits h;
        IF v_conflicting IS NOT NULL THEN
            RAISE EXCEPTION 'append condition failed'
                USING ERRCODE = 'LE002',
                      DETAIL = jsonb_build_object(
                          'after', (ledger_append.append_condition->>'after')::bigint,
                          'positions', v_conflicting[1:20]
                      )::text;
        END IF;
    END IF;

    -- 6. Positions and insert: the xid and the positions are taken together under one
    -- short lock, so among appends positions rise with xids (what lets readers stop at
    -- the xid horizon); then events and tags go in in one statement, and the
    -- idempotency answer is stored.
    PERFORM pg_advisory_lock(ledger_sequencer_lock_key());
    BEGIN
        v_appender_xid := pg_current_xact_id();
        v_first_position := nextval('events_position_seq');
        IF v_total > 1 THEN
            PERFORM setval('events_position_seq', v_first_position + v_total - 1);
        END IF;
        PERFORM pg_advisory_unlock(ledger_sequencer_lock_key());
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM pg_advisory_unlock(ledger_sequencer_lock_key());
        RAISE;
    END;

    RETURN QUERY
    WITH input AS (
        SELECT x.item, x.n
        FROM jsonb_array_elements(ledger_append.new_events) WITH ORDINALITY AS x(item, n)
    ),
    versions AS (
        SELECT s.stream,
               (SELECT max(e.stream_version) FROM events e WHERE e.stream = s.stream) AS version
        FROM (SELECT DISTINCT i.item->>'stream' AS stream FROM input i) AS s
    ),
    new_rows AS (
        SELECT v_first_position + i.n - 1 AS position,
               (i.item->>'event_id')::uuid AS event_id,
               i.item->>'type' AS type,
               coalesce((i.item->>'schema_version')::integer, 1) AS schema_version,
               i.item->'data' AS data,
               coalesce(i.item->'metadata', '{}'::jsonb) AS metadata,
               i.item->>'stream' AS stream,
               -- The expected version, when given, rather than what is there now: a
               -- racing append that committed since the check then collides on the
               -- unique (stream, stream_version) instead of being silently followed.
               coalesce((ledger_append.expected_versions->>(i.item->>'stream'))::bigint,
                        v.version, 0)
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
               r.stream, r.stream_version, r.tags, r.occurred_at, v_appender_xid
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

    IF ledger_append.idempotency_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (key, fingerprint, response)
        SELECT ledger_append.idempotency_key, ledger_append.request_fingerprint,
               jsonb_build_object(
                   'positions', coalesce(jsonb_agg(v_first_position + x.n - 1 ORDER BY x.n),
                                         '[]'),
                   'event_ids', coalesce(jsonb_agg(x.item->'event_id' ORDER BY x.n), '[]')
               )
        FROM jsonb_array_elements(ledger_append.new_events) WITH ORDINALITY AS x(item, n);
    END IF;
END
$$
"""

LEDGER_HORIZON = """
CREATE OR REPLACE FUNCTION ledger_horizon() RETURNS xid8
LANGUAGE sql VOLATILE AS $$
    -- The one horizon: the feed readers and ledger_head() read below it, in a statement
    -- of its own before the read (docs/ledger.md, "Order without a global lock"). It is
    -- the oldest xid among the appends in flight in this database (each holds
    -- ledger_ordering_lock_key() until it commits), or, with none, the next xid to be
    -- handed out. Transactions of other kinds and other databases do not hold it back.
    SELECT coalesce(min(running.xid), pg_snapshot_xmax(pg_current_snapshot()))
    FROM pg_snapshot_xip(pg_current_snapshot()) AS running(xid)
    -- pg_locks shows 32-bit xids: an xid8 matches by its low 32 bits (modulo 2^32).
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
          -- A bigint advisory key shows as classid (its high 32 bits), objid (its low 32
          -- bits) and objsubid 1.
          AND appending.classid = (ledger_ordering_lock_key() >> 32)::oid
          AND appending.objid = (ledger_ordering_lock_key() & 4294967295)::oid
          AND appending.objsubid = 1
    )
$$
"""


def upgrade() -> None:
    op.execute(LOCK_KEYS)
    op.execute(LEDGER_APPEND)
    op.execute(LEDGER_HORIZON)


def downgrade() -> None:
    parallel = importlib.import_module("migrations.versions.0004_parallel_appends")
    op.execute(parallel.LEDGER_APPEND)
    op.execute("DROP FUNCTION ledger_horizon()")
    op.execute(parallel.LEDGER_HORIZON)
    op.execute("DROP FUNCTION ledger_tag_lock_class()")
    op.execute("DROP FUNCTION ledger_sequencer_lock_key()")
    op.execute("DROP FUNCTION ledger_ordering_lock_key()")
