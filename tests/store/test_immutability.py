"""The database itself refuses to change or remove recorded events."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from services import migrate
from services.store.ledger import Ledger
from tests.store.conftest import count_rows, new_event

pytestmark = pytest.mark.anyio

REFUSALS = [
    "UPDATE events SET type = 'Tampered'",
    "DELETE FROM events",
    "TRUNCATE events, event_tags",
    "UPDATE event_tags SET tag = 'x'",
    "DELETE FROM event_tags",
]


@pytest.mark.parametrize("statement", REFUSALS)
async def test_changing_recorded_events_is_refused_with_a_clear_message(
    ledger: Ledger, database_url: str, statement: str
) -> None:
    await ledger.append([new_event(tags=("member:a",))])

    with psycopg.connect(database_url) as conn, pytest.raises(psycopg.Error) as refused:
        conn.execute(statement)

    assert "the ledger is append-only" in str(refused.value)
    assert count_rows(database_url) == 1


def test_update_is_refused_even_when_the_ledger_is_empty(database_url: str) -> None:
    with psycopg.connect(database_url) as conn, pytest.raises(psycopg.Error) as refused:
        conn.execute("UPDATE events SET type = 'Tampered'")

    assert "UPDATE on events is refused" in str(refused.value)


async def test_the_app_role_may_read_and_append_but_not_update(
    ledger: Ledger, database_url: str
) -> None:
    role = f"ledger_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role}")
    try:
        migrate.grant_app_role(database_url, role)
        await ledger.append([new_event()])
        with psycopg.connect(database_url) as conn:
            conn.execute(f"SET ROLE {role}")
            appended = {
                "event_id": str(uuid.uuid4()),
                "type": "Noted",
                "data": {},
                "stream": "s",
                "occurred_at": "2026-01-01T00:00:00Z",
            }
            conn.execute("SELECT * FROM ledger_append(%s::jsonb)", [json.dumps([appended])])
            conn.execute("SAVEPOINT before_update")
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as denied:
                conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
            assert "must be owner" in str(denied.value)
            conn.execute("ROLLBACK TO SAVEPOINT before_update")
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as denied:
                conn.execute("DELETE FROM events")
            assert "permission denied for table events" in str(denied.value)
            conn.rollback()
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
