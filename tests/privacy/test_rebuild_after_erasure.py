"""Rebuilding every projection from zero after erasures gives the tables catch-up gave.

Catch-up folded each member's registration in clear before their erasure destroyed the
key; a rebuild folds the same events with the erased fields blank. The folds must not
care: forgetting clears what the blanks would have left out.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from psycopg import AsyncConnection

from domain import events as e
from domain.codec import encode_payload
from domain.projections import Entry
from services.privacy.keyring import Keyring
from services.projector.runner import Runner
from services.store.ledger import Ledger
from services.store.records import NewEvent
from tests.appliers import APPLIERS
from tests.domain.projections.strategies import valid_ledgers
from tests.projector.test_appliers import dump

pytestmark = pytest.mark.anyio

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def folded(tables: dict[str, Any]) -> dict[str, Any]:
    """The tables a fold of the ledger makes; a graph job's record of when it ran is not one."""
    jobs = {table for applier in APPLIERS for table in getattr(applier, "job_tables", ())}
    return {name: rows for name, rows in tables.items() if name not in jobs}


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[AsyncConnection[Any]]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as opened:
        yield opened


def fresh_ids(entries: list[Entry]) -> list[Entry]:
    """The same story with ids of its own, so examples share a database without meeting."""
    ids: dict[str, str] = {}
    renamed = []
    for entry in entries:
        text = _UUID.sub(
            lambda m: ids.setdefault(m.group(), str(uuid.uuid4())),
            encode_payload(entry.event).decode(),
        )
        event = msgspec.json.decode(text, type=e.AnyEvent)  # type: ignore[arg-type]
        renamed.append(msgspec.structs.replace(entry, event=event))
    return renamed


def new_event(entry: Entry) -> NewEvent:
    event = entry.event
    return NewEvent(
        event_id=uuid.uuid4(),
        type=e.type_name(event),
        data=msgspec.Raw(encode_payload(event)),
        stream=e.stream_of(event),
        tags=e.tags_of(event),
        occurred_at=entry.occurred_at,
    )


async def catch_up(database_url: str, keyring: Keyring, *, rebuild: bool = False) -> None:
    names = [applier.name for applier in APPLIERS] if rebuild else []
    assert await Runner(database_url, rebuild=names, keyring=keyring).run() == []


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(story=valid_ledgers())
async def test_rebuilding_from_zero_after_erasures_equals_the_tables_catch_up_built(
    story: list[Entry],
    ledger: Ledger,
    keyring: Keyring,
    conn: AsyncConnection[Any],
    database_url: str,
) -> None:
    entries = fresh_ids(story)
    pending: list[Entry] = []
    for entry in entries:
        if isinstance(entry.event, e.MemberForgotten) and pending:
            # What was written before the erasure is projected while it still reads in clear.
            await ledger.append([new_event(x) for x in pending])
            await catch_up(database_url, keyring)
            pending = []
        pending.append(entry)
    if pending:
        await ledger.append([new_event(x) for x in pending])
    await catch_up(database_url, keyring)
    incremental = folded(await dump(conn, "read"))

    await catch_up(database_url, keyring, rebuild=True)

    assert folded(await dump(conn, "read")) == incremental
