"""Helpers for the importer tests: a second database for round trips, and the ledger's events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import msgspec
import pytest
from psycopg_pool import AsyncConnectionPool

from domain.events import Event
from services import bootstrap
from services.database import with_database
from services.store.ledger import Ledger
from tests.conftest import _create, _drop


@pytest.fixture
def other_database_url(server_url: str, template_database: str) -> Iterator[str]:
    name = f"ledger_test_{uuid.uuid4().hex[:16]}"
    _create(server_url, name, template=template_database)
    yield with_database(server_url, name)
    _drop(server_url, name)


@pytest.fixture
async def other_ledger(other_database_url: str) -> AsyncIterator[Ledger]:
    async with (
        bootstrap.keyring(other_database_url) as keyring,
        AsyncConnectionPool(other_database_url, min_size=1, max_size=4, open=False) as pool,
    ):
        yield Ledger(pool, keyring)


async def all_events(ledger: Ledger) -> list[tuple[str, dict[str, Any], datetime, Event]]:
    """(type, data, occurred_at, decoded event) of every event, in position order."""
    found: list[tuple[str, dict[str, Any], datetime, Event]] = []
    after = 0
    while page := await ledger.read_feed(after=after, limit=500):
        found += [(r.type, msgspec.json.decode(r.data), r.occurred_at, r.decode()) for r in page]
        after = page[-1].position
    return found
