"""0006 adds the key tables and their guards, and its downgrade takes exactly those away."""

from __future__ import annotations

import psycopg

from services import migrate


def _schema(url: str) -> tuple[set[str], set[str], set[str]]:
    with psycopg.connect(url) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        functions = conn.execute(
            "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
        )
        found = ({name for (name,) in tables.fetchall()}, {name for (name,) in functions})
        triggers = conn.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        return (*found, {name for (name,) in triggers.fetchall()})


def test_0006_adds_the_key_tables_and_guards_and_its_downgrade_restores_0005(
    empty_database_url: str,
) -> None:
    migrate.upgrade(empty_database_url, "0005_readable_append")
    at_0005 = _schema(empty_database_url)

    migrate.upgrade(empty_database_url, "0006_member_keys")
    at_0006 = _schema(empty_database_url)
    migrate.downgrade(empty_database_url, "0005_readable_append")

    tables, functions, triggers = (
        now - before for now, before in zip(at_0006, at_0005, strict=True)
    )
    assert tables == {"member_keys", "ledger_secrets"}
    assert functions == {
        "ledger_member_forgotten",
        "member_keys_lock_class",
        "member_keys_lock_bucket",
        "member_keys_guard_insert",
        "member_keys_guard_delete",
        "ledger_keys_guard_update",
        "ledger_keys_refuse",
    }
    assert triggers == {
        "member_keys_guard_insert",
        "member_keys_guard_update",
        "member_keys_guard_delete",
        "member_keys_no_truncate",
        "ledger_secrets_guard_update",
        "ledger_secrets_no_delete",
    }
    assert _schema(empty_database_url) == at_0005
    assert migrate.current_revision(empty_database_url) == "0005_readable_append"
