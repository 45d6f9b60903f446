"""A real PostgreSQL for the suite: the embedded one, or TEST_DATABASE_URL's server.

The schema is migrated once into a template database; every test that asks for
`database_url` gets its own fresh clone of it (CREATE DATABASE … TEMPLATE is fast). The
clones are made one ahead, and dropped, in a thread, while the tests run: a test waits for
neither (a clone and a forced drop each take a few hundred milliseconds on a busy machine).
The embedded server runs without fsync: nothing here survives an operating system crash,
and no test makes one.

With LEDGER_TEST_ROLES=1 (the default when TEST_DATABASE_URL is set) `db upgrade` also
creates and grants the API's and the projector's roles, and `api_url` and
`projector_url` connect as them: the suite then runs as production does. Otherwise
both are `database_url`, the owner's.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from services import bootstrap
from services.database import with_database
from services.embedded_db import embedded_server_url
from services.privacy.keyring import Keyring
from services.settings import Roles, load_settings
from services.store import privileges
from services.store.ledger import Ledger

ROOT = Path(__file__).resolve().parent.parent

TEST_MASTER_KEY = "dGVzdCBtYXN0ZXIga2V5OiBub3QgZm9yIHByb2R1Y3Q="
"""A fixed master key (32 bytes, URL-safe base64), so every test process, and every CLI a
test runs, wraps and unwraps keys alike. Set before anything reads the environment."""
os.environ["LEDGER_MASTER_KEY"] = TEST_MASTER_KEY
os.environ.pop("LEDGER_MASTER_KEY_FILE", None)
os.environ.pop("LEDGER_NEW_MASTER_KEY", None)
TEST_ROLES = Roles(
    api="ledger_test_api",
    projector="ledger_test_projector",
    api_password="ledger-test-api",
    projector_password="ledger-test-projector",
)
"""Cluster-wide, so shared by concurrent sessions on one server: same names, same grants."""


TEMPLATE_LOCK = 7_031_990_001
"""The advisory lock a test process holds while it migrates its template database."""


def roles_wanted() -> bool:
    flag = os.environ.get("LEDGER_TEST_ROLES", "")
    if flag:
        return flag.lower() not in ("0", "false", "no")
    return bool(os.environ.get("TEST_DATABASE_URL"))


def as_role(url: str, role: str, password: str | None) -> str:
    """The same database, connected as `role`."""
    return make_conninfo(url, user=role, password=password or "")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def server_url() -> str:
    """An administrative URL to the server the tests create their databases on."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        return external
    data_dir = Path(os.environ.get("LEDGER_TEST_DATA_DIR", ROOT / ".ledger" / "test"))
    url = embedded_server_url(data_dir)
    _without_durability(url)
    return url


@pytest.fixture(scope="session")
def test_roles() -> Roles | None:
    return TEST_ROLES if roles_wanted() else None


@pytest.fixture(scope="session")
def template_database(server_url: str, test_roles: Roles | None) -> Iterator[str]:
    name = f"ledger_template_{os.getpid()}"
    _drop(server_url, name)
    _create(server_url, name)
    # As `db upgrade` does, so the roles find the ledger's handle secret made by the owner.
    # One worker at a time (pytest-xdist): the roles are the server's, made and granted once.
    with psycopg.connect(server_url, autocommit=True) as lock:
        lock.execute("SELECT pg_advisory_lock(%s)", [TEMPLATE_LOCK])
        bootstrap.upgrade(
            with_database(server_url, name),
            bootstrap.master_key(load_settings()),
            roles=test_roles,
        )
    yield name
    _drop(server_url, name)


@pytest.fixture
def empty_database_url(server_url: str) -> Iterator[str]:
    """A database with no schema at all, for the migration tests."""
    name = f"ledger_test_{uuid.uuid4().hex[:16]}"
    _create(server_url, name)
    yield with_database(server_url, name)
    _drop(server_url, name)


class Clones:
    """Fresh clones of the template, each made before a test asks for it and dropped after
    it ends, in one thread of their own (in order: a drop never races the next clone)."""

    def __init__(self, server_url: str, template: str, roles: Roles | None) -> None:
        self.server_url, self.template, self.roles = server_url, template, roles
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clones")
        self.drops: list[Future[None]] = []
        self.next = self.thread.submit(self._clone)

    def take(self) -> str:
        """A clone nobody has used (its name), and the next one started."""
        name = self.next.result()
        self.next = self.thread.submit(self._clone)
        return name

    def give_back(self, name: str) -> None:
        self.drops = [d for d in self.drops if not d.done() or d.exception() is not None]
        self.drops.append(self.thread.submit(_drop, self.server_url, name))

    def settle(self) -> None:
        """Wait until no clone or drop is under way (for a test that needs a quiet server)."""
        self.thread.submit(lambda: None).result()

    def close(self) -> None:
        """Drop the clone made ahead; a drop that failed fails the session here."""
        self.give_back(self.next.result())
        self.thread.shutdown(wait=True)
        for drop in self.drops:
            drop.result()

    def _clone(self) -> str:
        name = f"ledger_test_{uuid.uuid4().hex[:16]}"
        _create(self.server_url, name, template=self.template)
        if self.roles is not None:
            with psycopg.connect(with_database(self.server_url, name), autocommit=True) as conn:
                privileges.grant_database(conn, self.roles)
        return name


@pytest.fixture(scope="session")
def clones(server_url: str, template_database: str, test_roles: Roles | None) -> Iterator[Clones]:
    made = Clones(server_url, template_database, test_roles)
    yield made
    made.close()


@pytest.fixture
def database_url(server_url: str, clones: Clones) -> Iterator[str]:
    name = clones.take()
    yield with_database(server_url, name)
    clones.give_back(name)


@pytest.fixture
def api_url(database_url: str, test_roles: Roles | None) -> str:
    """Where the API connects: as the API's role when the suite runs with roles."""
    if test_roles is None:
        return database_url
    return as_role(database_url, test_roles.api, test_roles.api_password)


@pytest.fixture
def projector_url(database_url: str, test_roles: Roles | None) -> str:
    """Where the projector connects: as the projector's role when the suite runs with roles."""
    if test_roles is None:
        return database_url
    return as_role(database_url, test_roles.projector, test_roles.projector_password)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=16, open=False) as opened:
        yield opened


@pytest.fixture
async def keyring(database_url: str) -> AsyncIterator[Keyring]:
    """The test process's keyring (the fixed test master key), following erasures."""
    async with bootstrap.keyring(database_url) as opened:
        yield opened


@pytest.fixture
async def ledger(pool: AsyncConnectionPool, keyring: Keyring) -> Ledger:
    return Ledger(pool, keyring)


def _create(server_url: str, name: str, template: str | None = None) -> None:
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(query)


def _without_durability(server_url: str) -> None:
    """No fsync on the embedded test server (its own data folder): commits, clones and drops
    stop waiting for the disk. Set once; the settings need a reload, not a restart."""
    wanted = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    with psycopg.connect(server_url, autocommit=True) as conn:
        changed = False
        for setting, value in wanted.items():
            if conn.execute("SELECT current_setting(%s)", [setting]).fetchone() != (value,):
                query = sql.SQL("ALTER SYSTEM SET {} = {}")
                conn.execute(query.format(sql.Identifier(setting), sql.Literal(value)))
                changed = True
        if changed:
            conn.execute("SELECT pg_reload_conf()")


def _drop(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
