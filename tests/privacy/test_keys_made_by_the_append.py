"""A new member's key goes in with the append that first uses it: one statement, one commit."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from psycopg import AsyncConnection

from domain.errors import WrongExpectedVersion
from domain.events import ContributionRecorded, MemberForgotten, MemberRegistered
from domain.ids import new_id
from services.privacy.keyring import DraftKeys, Keyring
from services.privacy.master import MasterKey
from services.store.ledger import Ledger
from services.store.records import NewEvent
from services.store.sealed import Sealer
from tests.privacy.conftest import as_new_event, key_rows

pytestmark = pytest.mark.anyio

NAME = "Philippa Quennell"


def registration(member_id: Any) -> NewEvent:
    return as_new_event(MemberRegistered(member_id=member_id, display_name=NAME))


async def test_an_append_stores_its_new_members_keys_and_this_process_caches_them(
    ledger: Ledger, keyring: Keyring, database_url: str
) -> None:
    members = [new_id() for _ in range(3)]

    await ledger.append([registration(m) for m in members])

    assert set(key_rows(database_url)) == set(members)
    assert all(keyring.holds(m) for m in members)


async def test_the_ciphers_an_append_sealed_its_new_members_with_are_kept_with_their_keys(
    ledger: Ledger, keyring: Keyring
) -> None:
    members = [str(new_id()) for _ in range(3)]
    sealing_ciphers = Sealer._sealing_ciphers
    used: dict[str, Any] = {}

    async def spying(sealer: Sealer, *args: Any) -> Any:
        ciphers, spelled, draft = await sealing_ciphers(sealer, *args)
        used.update(ciphers)
        return ciphers, spelled, draft

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Sealer, "_sealing_ciphers", spying)
        await ledger.append([registration(UUID(m)) for m in members])

    found, others = keyring.cached_ciphers(members)
    assert others == []
    assert all(found[m] is used[m] for m in members)  # not built again


async def test_a_refused_append_leaves_no_key_behind(
    ledger: Ledger, keyring: Keyring, database_url: str
) -> None:
    member = new_id()
    event = registration(member)

    with pytest.raises(WrongExpectedVersion):
        await ledger.append([event], expected_versions={event.stream: 5})

    assert key_rows(database_url) == {}
    assert not keyring.holds(member)
    assert keyring.cached_ciphers([str(member)]) == ({}, [str(member)])


async def test_an_append_whose_new_key_another_process_made_first_runs_again_with_that_key(
    ledger: Ledger,
    database_url: str,
    master: MasterKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    member = new_id()
    seal = Sealer.seal
    raced: list[DraftKeys] = []

    async def another_process_makes_the_key_meanwhile(
        self: Sealer,
        conn: AsyncConnection[Any],
        events: list[NewEvent],
        *,
        drafting: bool,
        registering: bool = False,
    ) -> tuple[list[NewEvent], DraftKeys | None]:
        sealed, draft = await seal(self, conn, events, drafting=drafting, registering=registering)
        if draft is not None and not raced:
            raced.append(draft)
            async with await AsyncConnection.connect(database_url, autocommit=True) as other:
                await (await Keyring.open(other, master)).data_keys(other, [member], create=True)
        return sealed, draft

    monkeypatch.setattr(Sealer, "seal", another_process_makes_the_key_meanwhile)
    await ledger.append([registration(member)])

    assert raced and set(key_rows(database_url)) == {member}
    async with await AsyncConnection.connect(database_url, autocommit=True) as reader:
        fresh = Ledger(ledger.pool, await Keyring.open(reader, master))
        (read,) = await fresh.read_feed()
    assert not read.erased
    assert read.decode() == MemberRegistered(member_id=member, display_name=NAME)


async def test_a_registration_drafted_unread_over_a_key_made_elsewhere_goes_in_under_that_key(
    ledger: Ledger, database_url: str, master: MasterKey
) -> None:
    """A registering append drafts its members' keys without reading member_keys; a key
    another process made earlier (never in this process's cache) fails that attempt on
    the primary key, and the next attempt reads it and seals under it."""
    member = new_id()
    async with await AsyncConnection.connect(database_url, autocommit=True) as other:
        await (await Keyring.open(other, master)).data_keys(other, [member], create=True)
    made = key_rows(database_url)

    await ledger.append([registration(member)])

    assert key_rows(database_url) == made
    async with await AsyncConnection.connect(database_url, autocommit=True) as reader:
        fresh = Ledger(ledger.pool, await Keyring.open(reader, master))
        (read,) = await fresh.read_feed()
    assert read.decode() == MemberRegistered(member_id=member, display_name=NAME)


async def test_an_event_sealed_for_a_forgotten_member_stores_no_key_for_them(
    ledger: Ledger, keyring: Keyring, database_url: str
) -> None:
    member = new_id()
    await ledger.append([as_new_event(MemberForgotten(member_id=member))])
    late = ContributionRecorded(
        contribution_id=new_id(), member_id=member, kind="talk", space="meetup", title=NAME
    )

    await ledger.append([as_new_event(late)])

    assert member not in key_rows(database_url)
    assert not keyring.holds(member)
    assert (await ledger.read_feed())[-1].erased
