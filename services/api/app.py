"""The Litestar application: one pool per process, opened in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, get
from litestar.datastructures import State
from litestar.exceptions import ServiceUnavailableException
from psycopg_pool import AsyncConnectionPool

from services import migrate
from services.store.ledger import Ledger


@get("/health", operation_id="Health", summary="The process is up", tags=["operations"])
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", operation_id="Ready", summary="The database answers and the schema is at head",
     tags=["operations"])  # fmt: skip
async def ready(state: State) -> dict[str, str]:
    pool: AsyncConnectionPool = state.pool
    try:
        async with pool.connection(timeout=2) as conn:
            cur = await conn.execute("SELECT version_num FROM alembic_version")
            row = await cur.fetchone()
    except Exception as error:
        raise ServiceUnavailableException(f"database not reachable: {error}") from error
    head = migrate.head_revision()
    if row is None or row[0] != head:
        raise ServiceUnavailableException(f"schema at {row[0] if row else 'base'}, head is {head}")
    return {"status": "ready", "schema": head}


def create_app(database_url: str) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncConnectionPool(database_url, min_size=1, max_size=10, open=False) as pool:
            app.state.pool = pool
            app.state.ledger = Ledger(pool)
            yield

    return Litestar(route_handlers=[health, ready], lifespan=[lifespan])
