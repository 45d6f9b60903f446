"""Keys made or read at the same time as another process, or as an erasure, stay one key."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from psycopg import AsyncConnection

from domain.errors import MemberIsForgotten
from domain.events import MemberForgotten
from domain.ids import new_id
from services.privacy.keyring import Keyring
from services.privacy.master import MasterKey
from tests.privacy.conftest import append_bare, key_rows

pytestmark = pytest.mark.anyio


async def test_two_processes_opening_a_new_ledger_at_once_agree_on_one_handle_secret(
    database_url: str, master: MasterKey
) -> None:
    async with (
        await AsyncConnection.connect(database_url, autocommit=True) as one,
        await AsyncConnection.connect(database_url, autocommit=True) as two,
    ):
        first, second = await asyncio.gather(Keyring.open(one, master), Keyring.open(two, master))

    assert first.handle_secret == second.handle_secret


async def test_two_keyrings_making_keys_for_the_same_members_at_once_get_the_same_keys(
    database_url: str, master: MasterKey, keyring: Keyring
) -> None:
    shared = [new_id() for _ in range(300)]
    async with (
        await AsyncConnection.connect(database_url, autocommit=True) as one,
        await AsyncConnection.connect(database_url, autocommit=True) as two,
    ):
        other = await Keyring.open(two, master)
        mine, theirs = await asyncio.gather(
            keyring.data_keys(one, [*shared, new_id()], create=True),
            other.data_keys(two, [new_id(), *shared], create=True),
        )

    assert {m: mine[m] for m in shared} == {m: theirs[m] for m in shared}
    assert len(key_rows(database_url)) == 302


async def test_a_key_read_while_its_erasure_is_noticed_is_not_cached(
    keyring: Keyring, conn: AsyncConnection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    member = new_id()
    await keyring.data_keys(conn, [member], create=True)
    keyring.forget_all()
    execute = conn.execute

    async def notice_arrives_meanwhile(*args: Any, **kwargs: Any) -> Any:
        answer = await execute(*args, **kwargs)
        keyring.forget([member])  # the NOTIFY of an erasure, landing while we read
        return answer

    monkeypatch.setattr(conn, "execute", notice_arrives_meanwhile)
    read = await keyring.data_keys(conn, [member], create=False)

    assert set(read) == {member}
    assert not keyring.holds(member)


async def _waiting_for_a_lock(watcher: AsyncConnection[Any], waiter: AsyncConnection[Any]) -> None:
    """Until `waiter`'s backend waits on an advisory lock (bounded: a lost wait fails)."""
    async with asyncio.timeout(30):
        while True:
            cur = await watcher.execute(
                "SELECT 1 FROM pg_locks WHERE pid = %s AND locktype = 'advisory' AND NOT granted",
                [waiter.info.backend_pid],
            )
            if await cur.fetchone():
                return
            await asyncio.sleep(0.01)


async def test_a_key_made_while_its_member_is_being_forgotten_is_refused_once_erasure_commits(
    database_url: str, master: MasterKey, keyring: Keyring, conn: AsyncConnection[Any]
) -> None:
    member = new_id()  # never had a key: the erasure has no row to delete
    async with (
        await AsyncConnection.connect(database_url, autocommit=True) as eraser,
        await AsyncConnection.connect(database_url, autocommit=True) as maker,
    ):
        other = await Keyring.open(maker, master)
        async with eraser.transaction():
            await append_bare(eraser, MemberForgotten(member_id=member))
            assert await keyring.destroy(eraser, [member]) == set()
            making = asyncio.create_task(other.data_keys(maker, [member], create=True))
            await _waiting_for_a_lock(conn, maker)

        with pytest.raises(MemberIsForgotten) as refused:
            await making

    assert refused.value.member_id == member
    assert key_rows(database_url) == {}


async def test_an_erasure_waits_for_a_key_being_made_and_deletes_it(
    database_url: str, master: MasterKey, keyring: Keyring, conn: AsyncConnection[Any]
) -> None:
    member = new_id()
    async with (
        await AsyncConnection.connect(database_url, autocommit=True) as eraser,
        await AsyncConnection.connect(database_url) as maker,  # not autocommit: committed below
    ):
        other = await Keyring.open(maker, master)
        await maker.commit()
        await other.data_keys(maker, [member], create=True)  # its transaction stays open
        async with eraser.transaction():
            await append_bare(eraser, MemberForgotten(member_id=member))
            destroying = asyncio.create_task(keyring.destroy(eraser, [member]))
            await _waiting_for_a_lock(conn, eraser)
            await maker.commit()
            assert await destroying == {member}

    assert key_rows(database_url) == {}
