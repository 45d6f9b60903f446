"""Rotation re-wraps every key under a new master key, all at once, and touches no event."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection

from domain.events import MemberForgotten
from domain.ids import new_id
from services.privacy.keyring import Keyring
from services.privacy.master import MasterKey, WrongMasterKey, new_master_key
from services.privacy.rotation import rotate_master
from services.store.ledger import Ledger
from tests.privacy.conftest import as_new_event, key_rows

pytestmark = pytest.mark.anyio


def events_table(database_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as sync:
        return sync.execute("SELECT * FROM events ORDER BY position").fetchall()


async def test_after_rotation_the_new_key_reads_every_data_key_and_the_old_one_fails(
    keyring: Keyring,
    conn: AsyncConnection[Any],
    master: MasterKey,
    ledger: Ledger,
    database_url: str,
) -> None:
    members = [new_id() for _ in range(20)]
    made = await keyring.data_keys(conn, members, create=True)
    await ledger.append([as_new_event(MemberForgotten(member_id=new_id()))])
    events = events_table(database_url)
    new = new_master_key()

    rotated = await rotate_master(conn, master, new, batch=7)

    assert (rotated.keys, rotated.secrets) == (20, 1)
    assert {kek_id for _, kek_id in key_rows(database_url).values()} == {new.kek_id}
    after = await Keyring.open(conn, new)
    assert await after.data_keys(conn, members, create=False) == made
    assert after.handle_secret == keyring.handle_secret
    with pytest.raises(WrongMasterKey, match=f"wrapped by \\({new.kek_id}\\)"):
        await Keyring.open(conn, master)
    assert events_table(database_url) == events


async def test_a_process_still_holding_the_old_key_is_told_to_restart(
    keyring: Keyring, conn: AsyncConnection[Any], master: MasterKey, database_url: str
) -> None:
    known, newcomer = new_id(), new_id()
    await keyring.data_keys(conn, [known], create=True)
    keyring.forget_all()

    await rotate_master(conn, master, new_master_key())

    with pytest.raises(WrongMasterKey, match="restart"):
        await keyring.data_keys(conn, [newcomer], create=True)
    with pytest.raises(WrongMasterKey, match="restart"):
        await keyring.data_keys(conn, [known], create=False)
    assert set(key_rows(database_url)) == {known}


async def test_rotation_with_the_wrong_current_key_changes_nothing(
    keyring: Keyring, conn: AsyncConnection[Any], database_url: str
) -> None:
    await keyring.data_keys(conn, [new_id(), new_id()], create=True)
    before = key_rows(database_url)

    with pytest.raises(WrongMasterKey, match="is not the one the ledger's keys are wrapped by"):
        await rotate_master(conn, new_master_key(), new_master_key())

    assert key_rows(database_url) == before


async def test_rotating_to_the_same_key_is_refused(
    keyring: Keyring, conn: AsyncConnection[Any], master: MasterKey
) -> None:
    with pytest.raises(WrongMasterKey, match="the new master key is the current one"):
        await rotate_master(conn, master, master)
