"""The composition root: settings -> master key, pool -> keyring, Ledger -> handler -> projections.

Every entry point (serve, the projector, the importers, keys, demo) builds what it needs
here, so each object is made one way, and only once its command runs: importing a module
builds nothing stateful. Entry points import this module; nothing below them does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from services import migrate
from services.database import database_url
from services.handler import CommandHandler
from services.importers.dry_run import DryRunLedger
from services.privacy.keyring import Keyring
from services.privacy.master import MasterKey, load_master_key
from services.projector.appliers import make_appliers
from services.projector.progress import Progress
from services.projector.runner import BATCH_SIZE, Runner
from services.settings import Roles, Settings, load_settings
from services.store.ledger import Ledger

if TYPE_CHECKING:
    from services.webhooks.dispatcher import Dispatcher

POOL_SIZE = 10


def settings() -> Settings:
    return load_settings()


def database(settings: Settings) -> str:
    """The URL every connection uses; with no DATABASE_URL, this starts the embedded server."""
    return database_url(settings)


def master_key(settings: Settings) -> MasterKey:
    """The KEK; raises MasterKeyError when missing or malformed (the CLI says so and exits 2)."""
    return load_master_key(settings)


@asynccontextmanager
async def keyring(url: str, master: MasterKey | None = None) -> AsyncIterator[Keyring]:
    """The process's keyring, checked against the ledger (WrongMasterKey) and following
    erasures for the block. Nested `listening` blocks share its one listener."""
    master = master or master_key(settings())
    async with connection(url) as conn:
        opened = await Keyring.open(conn, master)
    async with opened.listening(url):
        yield opened


def check_master_key(url: str, master: MasterKey) -> None:
    """Refuse to start (WrongMasterKey) before anything runs, rather than in a half-started
    server. A ledger not yet at revision 0006 has no keys to check against."""

    async def check() -> None:
        async with connection(url) as conn:
            cur = await conn.execute("SELECT to_regclass('ledger_secrets') IS NOT NULL")
            row = await cur.fetchone()
            if row and row[0]:
                await Keyring.open(conn, master)

    asyncio.run(check())


def upgrade(
    url: str,
    master: MasterKey,
    *,
    revision: str = "head",
    roles: Roles | None = None,
    only_as_owner: bool = False,
) -> None:
    """`db upgrade` wherever it runs: the master key is checked before anything changes (a
    wrong one stops here, in one line), then the migrations and the roles' grants, then the
    ledger's handle secret is made under this key, as the owner (the roles may only read
    it). `only_as_owner` is `serve`'s: as a restricted role, only check the schema."""
    check_master_key(url, master)
    if only_as_owner:
        migrate.upgrade_if_owner(url, roles=roles)
    else:
        migrate.upgrade(url, revision, roles=roles)
    check_master_key(url, master)


def pool(url: str, *, size: int = POOL_SIZE) -> AsyncConnectionPool:
    """The process's one pool, opened by the caller's `async with`, never at import."""
    # Autocommit: a read is one round trip, not a query and then a COMMIT when the
    # connection goes back to the pool; writes open their own transactions.
    return AsyncConnectionPool(
        url, min_size=1, max_size=size, kwargs={"autocommit": True}, open=False
    )


def command_handler(ledger: Ledger, *, dry_run: bool = False) -> CommandHandler:
    """The one write path; a dry run decides everything by the rules and appends nothing."""
    return CommandHandler(DryRunLedger(ledger) if dry_run else ledger)


@dataclass(frozen=True)
class WritePath:
    """What a process that writes holds for its lifetime."""

    pool: AsyncConnectionPool
    ledger: Ledger
    handler: CommandHandler
    keyring: Keyring


@asynccontextmanager
async def write_path(
    url: str,
    *,
    pool_size: int = POOL_SIZE,
    dry_run: bool = False,
    master: MasterKey | None = None,
) -> AsyncIterator[WritePath]:
    """Pool, keyring, ledger and handler, open for the block; the pool closes when it ends."""
    async with keyring(url, master) as keys, pool(url, size=pool_size) as opened:
        ledger = Ledger(opened, keys)
        yield WritePath(opened, ledger, command_handler(ledger, dry_run=dry_run), keys)


def runner(
    url: str,
    names: Sequence[str] = (),
    *,
    rebuild: Sequence[str] = (),
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
    keyring: Keyring | None = None,
) -> Runner:
    """A projection runner with appliers of its own: their memories are never shared."""
    return Runner(
        url,
        names,
        rebuild=rebuild,
        batch_size=batch_size,
        progress=progress,
        appliers=make_appliers(),
        keyring=keyring,
    )


def dispatcher(url: str, keyring: Keyring, settings: Settings) -> Dispatcher:
    """The webhook dispatcher, signing with the master key the process's keyring holds.
    Imported here: its HTTP client is not needed by the commands that do not deliver."""
    from services.webhooks.dispatcher import Dispatcher

    return Dispatcher(url, keyring, settings)


@asynccontextmanager
async def connection(url: str) -> AsyncIterator[AsyncConnection[Any]]:
    """One autocommit connection, for the short commands (keys, status, the demo's key)."""
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        yield conn
