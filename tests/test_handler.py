"""The one write path: resolve members, decide by the rules, append atomically."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest

from domain import commands as c
from domain.errors import (
    ContributionAlreadyRetracted,
    HandleAlreadyClaimed,
    IdempotencyKeyReused,
    SelfRecognition,
    UnknownHandles,
    UnknownMembers,
)
from domain.ids import new_id
from services import loading
from services.handler import CommandHandler, Resolver, Submission, execute_commands
from services.store.ledger import Ledger
from tests.store.conftest import count_rows

pytestmark = pytest.mark.anyio


def register(name: str, *handles: str) -> c.RegisterMember:
    return c.RegisterMember(member_id=new_id(), display_name=name, handles=handles)


async def test_a_contribution_then_its_retraction_are_recorded_once(
    ledger: Ledger, database_url: str
) -> None:
    handler = CommandHandler(ledger)
    ana = register("Ana", "twitter:@ana")
    contribution = c.RecordContribution(
        contribution_id=new_id(), member_id=ana.member_id, kind="chat_answer", space="kaizenblog"
    )
    await execute_commands(handler, [ana, contribution])
    retraction = c.RetractContribution(contribution_id=contribution.contribution_id)

    await execute_commands(handler, [retraction])

    with pytest.raises(ContributionAlreadyRetracted):
        await execute_commands(handler, [retraction])
    assert count_rows(database_url) == 3


async def test_a_broken_rule_in_a_batch_writes_nothing(ledger: Ledger, database_url: str) -> None:
    handler = CommandHandler(ledger)
    ana = register("Ana")
    self_kudos = c.GiveRecognition(
        recognition_id=new_id(), from_id=ana.member_id, to_id=ana.member_id, kind="kudos"
    )

    with pytest.raises(SelfRecognition) as broken:
        await execute_commands(handler, [ana, self_kudos])

    assert "in command 1 of the batch (GiveRecognition)" in broken.value.__notes__
    assert count_rows(database_url) == 0


async def test_unknown_member_ids_are_named(ledger: Ledger) -> None:
    stranger = new_id()
    mention = c.RecordMention(mention_id=new_id(), member_id=stranger, mentioned_id=new_id())

    with pytest.raises(UnknownMembers) as unknown:
        await execute_commands(CommandHandler(ledger), [mention])

    assert str(stranger) in str(unknown.value)


async def test_handles_resolve_whatever_their_case_and_unknown_ones_can_be_registered(
    ledger: Ledger, database_url: str
) -> None:
    handler = CommandHandler(ledger)
    casudi = register("Caroline Di Diego", "twitter:@CASUDI")
    await execute_commands(handler, [casudi])

    def kudos_from_newcomer(resolver: Resolver) -> list[Submission]:
        giver = resolver.member("twitter:@newbie", register_unknown=True)
        receiver = resolver.member("Twitter:casudi")
        return [
            Submission(
                command=c.GiveRecognition(
                    recognition_id=new_id(), from_id=giver, to_id=receiver, kind="thanks"
                )
            )
        ]

    appended = await handler.execute(
        kudos_from_newcomer, handles=["twitter:@newbie", "Twitter:casudi"]
    )

    assert len(appended.positions) == 2  # the newcomer's registration, then the thanks
    recognition = (await ledger.read_feed(after=appended.positions[0]))[0].decode()
    assert recognition.to_id == casudi.member_id  # type: ignore[attr-defined]

    def unknown(resolver: Resolver) -> list[Submission]:
        resolver.member("github:nobody")
        return []

    with pytest.raises(UnknownHandles, match="no member holds the github handle named") as caught:
        await handler.execute(unknown, handles=["github:nobody"])
    assert caught.value.handles == ("github:nobody",)


async def test_two_members_racing_for_one_handle_leave_it_with_one(
    ledger: Ledger, database_url: str
) -> None:
    handler = CommandHandler(ledger)

    async def claim(name: str) -> str:
        try:
            await execute_commands(handler, [register(name, "github:octocat")])
        except HandleAlreadyClaimed:
            return "refused"
        return "claimed"

    outcomes = await asyncio.gather(*(claim(name) for name in ("Ana", "Bob", "Cy")))

    assert sorted(outcomes) == ["claimed", "refused", "refused"]
    assert count_rows(database_url) == 1


async def test_an_idempotency_key_answers_the_first_result_and_refuses_another_body(
    ledger: Ledger, database_url: str
) -> None:
    handler = CommandHandler(ledger)
    ana = register("Ana")

    def plan(_: Resolver) -> list[Submission]:
        return [Submission(command=ana, occurred_at=datetime(2020, 5, 1, tzinfo=UTC))]

    first = await handler.execute(plan, idempotency_key="k", fingerprint="one")
    again = await handler.execute(plan, idempotency_key="k", fingerprint="one")

    assert again.positions == first.positions and again.replayed
    with pytest.raises(IdempotencyKeyReused):
        await handler.execute(plan, idempotency_key="k", fingerprint="two")
    recorded = await ledger.read_feed()
    assert len(recorded) == 1 and recorded[0].occurred_at == datetime(2020, 5, 1, tzinfo=UTC)


async def test_a_batch_reads_its_state_in_a_few_queries_however_many_commands_it_holds(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = CommandHandler(ledger)
    members = [register(f"Member {i}", f"github:member-{i}") for i in range(50)]
    await execute_commands(handler, members)
    kudos = [
        c.GiveRecognition(
            recognition_id=new_id(), from_id=giver.member_id, to_id=receiver.member_id, kind="kudos"
        )
        for giver, receiver in itertools.pairwise(members)
    ]
    reads: list[loading.Wanted] = []
    read_state = loading.read_state

    async def counted(ledger: Ledger, wanted: loading.Wanted) -> list[loading.Row]:
        reads.append(wanted)
        return await read_state(ledger, wanted)

    monkeypatch.setattr(loading, "read_state", counted)
    appended = await execute_commands(handler, kudos)

    assert len(appended.positions) == 49
    assert len(reads) == 1  # all 99 streams at once (was one query per stream)
    assert len(reads[0].streams) == 50 + 49
