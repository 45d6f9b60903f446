"""The database itself refuses to change or remove recorded events."""

from __future__ import annotations

import psycopg
import pytest

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
