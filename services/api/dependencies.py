"""What handlers need, injected by name: the objects the lifespan keeps on `app.state`."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import Provide
from psycopg_pool import AsyncConnectionPool

from services.api.metrics import CatchUpRate
from services.handler import CommandHandler
from services.store.ledger import Ledger


def _pool(state: State) -> AsyncConnectionPool:
    pool: AsyncConnectionPool = state.pool
    return pool


def _ledger(state: State) -> Ledger:
    ledger: Ledger = state.ledger
    return ledger


def _handler(state: State) -> CommandHandler:
    handler: CommandHandler = state.handler
    return handler


def _catch_up(state: State) -> CatchUpRate:
    catch_up: CatchUpRate = state.catch_up
    return catch_up


DEPENDENCIES = {
    "pool": Provide(_pool, sync_to_thread=False),
    "ledger": Provide(_ledger, sync_to_thread=False),
    "handler": Provide(_handler, sync_to_thread=False),
    "catch_up": Provide(_catch_up, sync_to_thread=False),
}
"""For `Litestar(dependencies=…)`: a handler asks for `pool: AsyncConnectionPool` and gets it."""
