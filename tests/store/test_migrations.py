"""The schema goes from empty to head and back to empty through Alembic."""

from __future__ import annotations

import psycopg

from services import migrate


def _objects(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        functions = conn.execute(
            "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
        ).fetchall()
    return {name for (name,) in tables + functions}


def test_upgrade_from_empty_to_head_creates_the_ledger(empty_database_url: str) -> None:
    assert migrate.current_revision(empty_database_url) is None

    migrate.upgrade(empty_database_url)

    assert migrate.current_revision(empty_database_url) == migrate.head_revision()
    expected = {"events", "event_tags", "idempotency_keys", "ledger_append", "projection_builds"}
    assert expected <= _objects(empty_database_url)


def test_downgrade_to_base_leaves_nothing_but_alembic_bookkeeping(
    empty_database_url: str,
) -> None:
    migrate.upgrade(empty_database_url)

    migrate.downgrade(empty_database_url, "base")

    assert _objects(empty_database_url) == {"alembic_version"}
    assert migrate.current_revision(empty_database_url) is None


def test_upgrade_after_downgrade_works_again(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url)
    migrate.downgrade(empty_database_url)

    migrate.upgrade(empty_database_url)

    assert migrate.is_at_head(empty_database_url)


def _definitions(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT proname, pg_get_functiondef(oid) FROM pg_proc "
            "WHERE pronamespace = 'public'::regnamespace AND prokind = 'f'"
        ).fetchall()
    return dict(rows)


def test_0005_changes_only_how_the_append_reads_and_its_downgrade_restores_0004(
    empty_database_url: str,
) -> None:
    migrate.upgrade(empty_database_url, "0004_parallel_appends")
    at_0004 = _definitions(empty_database_url)

    migrate.upgrade(empty_database_url, "0005_readable_append")
    at_0005 = _definitions(empty_database_url)
    migrate.downgrade(empty_database_url, "0004_parallel_appends")

    assert at_0005["ledger_append"] != at_0004["ledger_append"]
    assert at_0005["ledger_horizon"] != at_0004["ledger_horizon"]
    assert set(at_0005) - set(at_0004) == {
        "ledger_ordering_lock_key",
        "ledger_sequencer_lock_key",
        "ledger_tag_lock_class",
    }
    assert _definitions(empty_database_url) == at_0004
    assert migrate.current_revision(empty_database_url) == "0004_parallel_appends"
