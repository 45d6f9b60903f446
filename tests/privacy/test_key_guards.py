"""The database guards member keys: deleted only by erasure, changed only by re-wrapping."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection

from domain.events import MemberForgotten, MemberRegistered
from domain.ids import new_id
from services.privacy.keyring import Keyring
from services.store.ledger import Ledger
from tests.privacy.conftest import append_bare, as_new_event, erase, key_rows

pytestmark = pytest.mark.anyio


async def test_deleting_a_key_outside_an_erasure_is_refused(
    keyring: Keyring, conn: AsyncConnection[Any], database_url: str
) -> None:
    member = new_id()
    await keyring.data_keys(conn, [member], create=True)

    with pytest.raises(psycopg.Error) as refused:
        await conn.execute("DELETE FROM member_keys WHERE member_id = %s", [member])

    assert f"the data key of member {member} may be deleted only by erasing them" in str(
        refused.value
    )
    assert set(key_rows(database_url)) == {member}


async def test_deleting_a_key_in_the_transaction_that_forgets_the_member_is_allowed(
    keyring: Keyring, conn: AsyncConnection[Any], ledger: Ledger, database_url: str
) -> None:
    member, other = new_id(), new_id()
    await keyring.data_keys(conn, [member, other], create=True)

    assert await erase(ledger, keyring, conn, member) == {member}

    assert set(key_rows(database_url)) == {other}


async def test_forgetting_one_member_does_not_let_the_transaction_delete_anothers_key(
    keyring: Keyring, conn: AsyncConnection[Any], ledger: Ledger, database_url: str
) -> None:
    forgotten, kept = new_id(), new_id()
    await keyring.data_keys(conn, [forgotten, kept], create=True)

    with pytest.raises(psycopg.Error, match=f"the data key of member {kept} may be deleted only"):
        async with conn.transaction():
            await ledger.append([as_new_event(MemberForgotten(member_id=forgotten))], conn=conn)
            await keyring.destroy(conn, [forgotten, kept])

    assert set(key_rows(database_url)) == {forgotten, kept}


async def test_a_forgetting_in_an_earlier_transaction_does_not_allow_a_later_delete(
    keyring: Keyring, conn: AsyncConnection[Any], ledger: Ledger, database_url: str
) -> None:
    member = new_id()
    await keyring.data_keys(conn, [member], create=True)
    await append_bare(conn, MemberForgotten(member_id=member))  # forgotten, key left behind

    with pytest.raises(psycopg.Error, match=f"the data key of member {member} may be deleted only"):
        async with conn.transaction():
            other = MemberRegistered(member_id=new_id(), display_name="Someone Else")
            await ledger.append([as_new_event(other)], conn=conn)
            await keyring.destroy(conn, [member])

    assert set(key_rows(database_url)) == {member}


async def test_a_new_key_for_a_forgotten_member_is_refused(
    keyring: Keyring, conn: AsyncConnection[Any], ledger: Ledger, database_url: str
) -> None:
    member = new_id()
    await append_bare(conn, MemberForgotten(member_id=member))

    with pytest.raises(psycopg.Error) as refused:
        await conn.execute(
            "INSERT INTO member_keys (member_id, wrapped, kek_id) VALUES (%s, %s, %s)",
            [member, b"\x00" * 60, keyring.master.kek_id],
        )

    assert f"member {member} was forgotten: no new data key may be made for them" in str(
        refused.value
    )
    assert key_rows(database_url) == {}


async def test_a_key_wrapped_by_another_master_key_is_refused(
    keyring: Keyring, conn: AsyncConnection[Any], database_url: str
) -> None:
    with pytest.raises(psycopg.Error) as refused:
        await conn.execute(
            "INSERT INTO member_keys (member_id, wrapped, kek_id) VALUES (%s, %s, 'kek-old')",
            [new_id(), b"\x00" * 60],
        )

    assert "a data key wrapped by master key kek-old while the ledger's keys are wrapped by" in (
        str(refused.value)
    )
    assert key_rows(database_url) == {}


@pytest.mark.parametrize(
    ("change", "value"),
    [("member_id", "gen_random_uuid()"), ("created_at", "now() - interval '1 day'")],
)
async def test_a_key_changes_only_its_wrapping(
    keyring: Keyring, conn: AsyncConnection[Any], database_url: str, change: str, value: str
) -> None:
    member = new_id()
    await keyring.data_keys(conn, [member], create=True)
    before = key_rows(database_url)

    with pytest.raises(psycopg.Error, match="only wrapped and kek_id of member_keys may change"):
        await conn.execute(f"UPDATE member_keys SET {change} = {value}")

    await conn.execute("UPDATE member_keys SET kek_id = kek_id, wrapped = wrapped")
    assert key_rows(database_url) == before


async def test_a_key_insert_may_not_choose_its_creation_time(
    keyring: Keyring, conn: AsyncConnection[Any]
) -> None:
    with pytest.raises(psycopg.Error, match="created_at is set by the database"):
        await conn.execute(
            "INSERT INTO member_keys (member_id, wrapped, kek_id, created_at) "
            "VALUES (%s, %s, %s, now() - interval '1 hour')",
            [new_id(), b"\x00" * 60, keyring.master.kek_id],
        )


@pytest.mark.parametrize(
    "statement",
    [
        "TRUNCATE member_keys",
        "DELETE FROM ledger_secrets",
        "TRUNCATE ledger_secrets",
        "UPDATE ledger_secrets SET name = 'other'",
    ],
)
async def test_keys_and_secrets_are_never_wiped(
    keyring: Keyring, conn: AsyncConnection[Any], database_url: str, statement: str
) -> None:
    await keyring.data_keys(conn, [new_id()], create=True)
    before = key_rows(database_url)

    with pytest.raises(psycopg.Error, match=r"refused|may change"):
        await conn.execute(statement)

    cur = await conn.execute("SELECT count(*) FROM ledger_secrets")
    assert await cur.fetchone() == (1,)
    assert key_rows(database_url) == before
