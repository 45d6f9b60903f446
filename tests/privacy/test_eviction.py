"""An erasure in one process drops the member's key from every process's cache at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from psycopg import AsyncConnection

from domain.ids import new_id
from services.privacy.keyring import Keyring
from services.privacy.master import MasterKey
from services.store.ledger import Ledger
from tests.conftest import ROOT
from tests.privacy.conftest import erase

pytestmark = pytest.mark.anyio

WAIT_SECONDS = 30.0
"""A bound on waiting for a notification, so a lost one fails the test instead of hanging."""


async def until(condition: Any) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while not condition():
            await asyncio.sleep(0.01)


async def test_an_erasure_through_one_pool_evicts_the_key_cached_by_another(
    database_url: str, master: MasterKey, ledger: Ledger
) -> None:
    member, other = new_id(), new_id()
    async with (
        await AsyncConnection.connect(database_url, autocommit=True) as here,
        await AsyncConnection.connect(database_url, autocommit=True) as there,
    ):
        eraser = await Keyring.open(here, master)
        reader = await Keyring.open(there, master)
        async with eraser.listening(database_url), reader.listening(database_url):
            await reader.data_keys(there, [member, other], create=True)
            assert reader.holds(member) and reader.holds(other)

            await erase(ledger, eraser, here, member)
            await until(lambda: not reader.holds(member))

            assert reader.holds(other)
            assert await reader.data_keys(there, [member, other], create=False) == {
                other: (await eraser.data_keys(here, [other], create=False))[other]
            }


ERASER = textwrap.dedent(
    """
    import asyncio, sys
    from uuid import UUID
    from psycopg import AsyncConnection
    from services import bootstrap
    from tests.privacy.conftest import erase

    async def main(url: str, member: UUID) -> None:
        async with bootstrap.write_path(url) as wired:
            async with await AsyncConnection.connect(url, autocommit=True) as conn:
                print(sorted(await erase(wired.ledger, wired.keyring, conn, member)))

    asyncio.run(main(sys.argv[1], UUID(sys.argv[2])))
    """
)


async def test_an_erasure_in_another_process_evicts_the_key_cached_here(
    keyring: Keyring, conn: AsyncConnection[Any], database_url: str
) -> None:
    member = new_id()
    await keyring.data_keys(conn, [member], create=True)
    assert keyring.holds(member)

    erased = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", ERASER, database_url, str(member)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert erased.returncode == 0, erased.stderr
    assert erased.stdout.strip() == f"[UUID('{member}')]"
    await until(lambda: not keyring.holds(member))
    assert await keyring.data_keys(conn, [member], create=False) == {}


async def test_a_lost_listener_empties_the_cache_and_caching_resumes_once_it_is_back(
    keyring: Keyring, conn: AsyncConnection[Any]
) -> None:
    before, after = new_id(), new_id()
    await keyring.data_keys(conn, [before], create=True)
    assert keyring.holds(before)

    await conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query = 'LISTEN ledger_member_keys'"
    )
    await until(lambda: not keyring.holds(before))
    await until(lambda: keyring.following)
    await keyring.data_keys(conn, [after], create=True)

    assert keyring.holds(after)
