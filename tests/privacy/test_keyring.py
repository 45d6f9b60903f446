"""Data keys: made in batches, wrapped at rest, cached with a bound, absent once erased."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from psycopg import AsyncConnection

from domain.ids import new_id
from services import migrate
from services.privacy.keyring import CACHE_SIZE, Keyring, configured_cache_size
from services.privacy.master import MasterKey, WrongMasterKey, new_master_key
from services.settings import SettingsError
from services.store.ledger import Ledger
from tests.privacy.conftest import erase, key_rows

pytestmark = pytest.mark.anyio


class CountingStatements:
    """Counts the statements a connection sends (the database is real; this only watches)."""

    def __init__(self, conn: AsyncConnection[Any], monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        execute = conn.execute

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await execute(*args, **kwargs)

        monkeypatch.setattr(conn, "execute", counted)


async def test_a_thousand_new_members_get_their_keys_in_three_statements_not_one_each(
    keyring: Keyring,
    conn: AsyncConnection[Any],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    members = [new_id() for _ in range(1000)]
    statements = CountingStatements(conn, monkeypatch)

    keys = await keyring.data_keys(conn, members, create=True)

    assert statements.count == 3  # read what exists, insert the rest, read them back
    assert set(keys) == set(members)
    assert all(len(key) == 32 for key in keys.values())
    assert len(set(keys.values())) == 1000
    stored = key_rows(database_url)
    assert set(stored) == set(members)
    assert all(kek_id == keyring.master.kek_id for _, kek_id in stored.values())
    assert not any(keys[m] in stored[m][0] for m in members), "a key is stored in clear"


async def test_keys_read_back_the_same_through_another_keyring(
    keyring: Keyring, conn: AsyncConnection[Any], master: MasterKey
) -> None:
    members = [new_id() for _ in range(5)]
    made = await keyring.data_keys(conn, members, create=True)

    fresh = await Keyring.open(conn, master)
    read = await fresh.data_keys(conn, members, create=False)

    assert read == made
    assert fresh.cached == 0  # not listening for erasures: nothing is cached
    assert fresh.handle_secret == keyring.handle_secret and len(fresh.handle_secret) == 32


async def test_without_create_members_with_no_key_are_absent_and_nothing_is_made(
    keyring: Keyring, conn: AsyncConnection[Any], database_url: str
) -> None:
    assert await keyring.data_keys(conn, [new_id(), new_id()], create=False) == {}
    assert key_rows(database_url) == {}


async def test_cached_keys_need_no_statement(
    keyring: Keyring, conn: AsyncConnection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    members = [new_id() for _ in range(3)]
    made = await keyring.data_keys(conn, members, create=True)
    statements = CountingStatements(conn, monkeypatch)

    again = await keyring.data_keys(conn, members, create=True)

    assert again == made
    assert statements.count == 0


async def test_the_cache_keeps_only_the_most_recently_used_keys(
    conn: AsyncConnection[Any], master: MasterKey, database_url: str
) -> None:
    keyring = await Keyring.open(conn, master, cache_size=3)
    first, *others = [new_id() for _ in range(5)]
    async with keyring.listening(database_url):
        await keyring.data_keys(conn, [first], create=True)
        for member in others:
            await keyring.data_keys(conn, [member], create=True)
            await keyring.data_keys(conn, [first], create=False)  # used again: stays

        assert keyring.cached == 3
        assert keyring.holds(first) and keyring.holds(others[-1])
        assert not keyring.holds(others[0])


async def test_a_key_made_in_a_transaction_that_rolls_back_is_never_cached(
    keyring: Keyring, conn: AsyncConnection[Any]
) -> None:
    member = new_id()

    class RolledBack(Exception):
        pass

    with pytest.raises(RolledBack):
        async with conn.transaction():
            inside = await keyring.data_keys(conn, [member], create=True)
            assert await keyring.data_keys(conn, [member], create=False) == inside
            raise RolledBack

    assert keyring.cached == 0
    assert await keyring.data_keys(conn, [member], create=False) == {}
    after = await keyring.data_keys(conn, [member], create=True)
    assert after[member] != inside[member]
    assert keyring.cached == 1


async def test_a_forgotten_member_gets_no_new_key_and_is_simply_absent(
    keyring: Keyring, conn: AsyncConnection[Any], ledger: Ledger, database_url: str
) -> None:
    forgotten, alive = new_id(), new_id()
    await keyring.data_keys(conn, [forgotten], create=True)
    assert await erase(ledger, keyring, conn, forgotten) == {forgotten}

    keys = await keyring.data_keys(conn, [forgotten, alive], create=True)

    assert set(keys) == {alive}
    assert set(key_rows(database_url)) == {alive}


async def test_erasure_is_idempotent_and_drops_the_key_from_this_process_at_once(
    keyring: Keyring, conn: AsyncConnection[Any], ledger: Ledger
) -> None:
    member = new_id()
    await keyring.data_keys(conn, [member], create=True)
    assert keyring.cached == 1

    assert await erase(ledger, keyring, conn, member) == {member}
    assert keyring.cached == 0
    assert await keyring.destroy(conn, [member]) == set()  # nothing left to delete: no error
    assert await keyring.data_keys(conn, [member], create=False) == {}


async def test_a_wrapped_key_moved_to_another_members_row_does_not_unwrap(
    keyring: Keyring, conn: AsyncConnection[Any], master: MasterKey
) -> None:
    a, b = new_id(), new_id()
    await keyring.data_keys(conn, [a, b], create=True)
    await conn.execute(
        "UPDATE member_keys SET wrapped = (SELECT wrapped FROM member_keys WHERE member_id = %s) "
        "WHERE member_id = %s",
        [a, b],
    )

    with pytest.raises(WrongMasterKey, match="does not unwrap a stored key"):
        await (await Keyring.open(conn, master)).data_keys(conn, [b], create=False)


async def test_another_master_key_is_refused_at_open_naming_both_key_ids(
    keyring: Keyring, conn: AsyncConnection[Any], master: MasterKey
) -> None:
    other = new_master_key()

    with pytest.raises(WrongMasterKey) as refused:
        await Keyring.open(conn, other)

    assert str(refused.value).startswith(
        f"the master key given ({other.kek_id}) is not the one the ledger's keys are wrapped "
        f"by ({master.kek_id})"
    )


async def test_the_handle_secret_is_made_once_and_stored_wrapped(
    conn: AsyncConnection[Any], master: MasterKey
) -> None:
    first = await Keyring.open(conn, master)
    second = await Keyring.open(conn, master)

    cur = await conn.execute("SELECT name, wrapped, kek_id FROM ledger_secrets")
    rows = await cur.fetchall()
    assert first.handle_secret == second.handle_secret
    assert [(name, kek_id) for name, _, kek_id in rows] == [("handle_hmac", master.kek_id)]
    assert first.handle_secret not in bytes(rows[0][1])


async def test_a_role_that_may_not_make_the_secret_is_told_to_run_db_upgrade(
    empty_database_url: str, master: MasterKey
) -> None:
    # Migrated only: the handle secret is made by `db upgrade` after the migrations.
    await asyncio.to_thread(migrate.upgrade, empty_database_url)
    role = f"reader_{new_id().hex[:12]}"
    async with await AsyncConnection.connect(empty_database_url, autocommit=True) as conn:
        await conn.execute(f"CREATE ROLE {role}")
        try:
            await conn.execute(f"GRANT SELECT ON ledger_secrets TO {role}")
            await conn.execute(f"SET ROLE {role}")

            with pytest.raises(LookupError, match="run `community-ledger db upgrade` as the"):
                await Keyring.open(conn, master)
        finally:
            await conn.execute("RESET ROLE")
            await conn.execute(f"DROP OWNED BY {role}")
            await conn.execute(f"DROP ROLE {role}")


async def test_the_cache_bound_comes_from_the_environment(
    conn: AsyncConnection[Any], master: MasterKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert configured_cache_size({}) == CACHE_SIZE == 100_000
    assert configured_cache_size({"LEDGER_KEY_CACHE_SIZE": "250_000"}) == 250_000
    for wrong in ("0", "-3", "many"):
        with pytest.raises(SettingsError, match="LEDGER_KEY_CACHE_SIZE"):
            configured_cache_size({"LEDGER_KEY_CACHE_SIZE": wrong})
    monkeypatch.setenv("LEDGER_KEY_CACHE_SIZE", "7")
    assert (await Keyring.open(conn, master)).cache_size == 7
    assert (await Keyring.open(conn, master, cache_size=3)).cache_size == 3


async def test_ciphers_are_kept_only_for_cached_keys_and_go_with_them(
    keyring: Keyring, conn: AsyncConnection[Any]
) -> None:
    member, stranger = new_id(), new_id()
    (key,) = (await keyring.data_keys(conn, [member], create=True)).values()
    kept = keyring.cipher(str(member), key)

    assert keyring.cipher(str(member), key) is kept
    other = os.urandom(32)  # a key the keyring does not hold: its cipher is never kept
    assert keyring.cipher(str(stranger), other) is not keyring.cipher(str(stranger), other)

    keyring.forget([member])
    assert keyring.cipher(str(member), key) is not kept


async def test_ciphers_kept_are_bounded(
    conn: AsyncConnection[Any], master: MasterKey, database_url: str
) -> None:
    keyring = await Keyring.open(conn, master, cache_size=3)
    async with keyring.listening(database_url):
        keys = await keyring.data_keys(conn, [new_id() for _ in range(3)], create=True)
        kept = {member: keyring.cipher(str(member), key) for member, key in keys.items()}
        newest = await keyring.data_keys(conn, [new_id()], create=True)  # evicts the oldest
        for member, key in newest.items():
            keyring.cipher(str(member), key)

        assert keyring.cached == 3
        assert sum(keyring.cipher(str(m), k) is kept[m] for m, k in keys.items()) == 2


async def test_keeping_fewer_ciphers_drops_the_oldest_and_bounds_those_made_after(
    keyring: Keyring, conn: AsyncConnection[Any]
) -> None:
    keys = await keyring.data_keys(conn, [new_id() for _ in range(4)], create=True)
    kept = {member: keyring.cipher(str(member), key) for member, key in keys.items()}
    oldest, *others = keys

    keyring.keep_ciphers(2)

    assert [keyring.cipher(str(m), keys[m]) is kept[m] for m in others[1:]] == [True, True]
    assert keyring.cipher(str(oldest), keys[oldest]) is not kept[oldest]
    assert keyring.cached == 4  # the keys stay: only their AES-GCM objects go
