"""`export jsonl` then `import jsonl` into an empty ledger gives back the same events."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from domain import commands as c
from domain.events import EVENT_TYPES
from domain.ids import new_id
from services.handler import CommandHandler, Plan, Submission
from services.importers.common import run_import
from services.importers.export import export_jsonl
from services.importers.jsonl import jsonl_source
from services.store.ledger import Ledger
from tests.importers.conftest import all_events
from tests.importers.test_kaizenblog import EXAMPLE

pytestmark = pytest.mark.anyio

JOINED = datetime(2020, 1, 1, tzinfo=UTC)


async def record_one_of_everything(ledger: Ledger) -> None:
    """Every event type, each on a day of its own, after the #kaizenblog example."""
    await run_import(ledger, jsonl_source(str(EXAMPLE)))
    ana, bob, cy, dup = (new_id() for _ in range(4))
    contribution, recognition = new_id(), new_id()
    commands: list[c.Command] = [
        c.RegisterMember(member_id=ana, display_name="Ana", handles=("github:ana",)),
        c.RegisterMember(member_id=bob, display_name="Bob", joined_at=JOINED),
        c.RegisterMember(member_id=cy, display_name="Cy"),
        c.RegisterMember(member_id=dup, display_name="Ana (old account)"),
        c.UpdateProfile(member_id=ana, bio="", links=("https://ana.example",)),
        c.LinkHandle(member_id=bob, handle="Twitter:@Bob"),
        c.UnlinkHandle(member_id=bob, handle="twitter:bob"),
        c.RecordContribution(contribution_id=contribution, member_id=ana, kind="talk",
                             space="meetup", title="Ledgers", attributes={"room": "B"}),
        c.RecordContribution(contribution_id=new_id(), member_id=bob, kind="answer",
                             space="meetup", reply_to=contribution),
        c.RetractContribution(contribution_id=contribution, reason="double-booked"),
        c.MakeIntroduction(introduction_id=new_id(), introducer_id=cy, introduced_ids=(ana, bob),
                           note="both like ledgers"),
        c.RecordMention(mention_id=new_id(), member_id=bob, mentioned_id=ana,
                        contribution_id=contribution),
        c.GiveRecognition(recognition_id=recognition, from_id=bob, to_id=ana, kind="kudos"),
        c.WithdrawRecognition(recognition_id=recognition, reason="wrong person"),
        c.MergeMembers(survivor_id=ana, duplicate_id=dup),
        c.ForgetMember(member_id=cy, reason="asked to be forgotten"),
    ]  # fmt: skip
    handler = CommandHandler(ledger)
    for day, command in enumerate(commands, 1):
        await handler.execute(dated(command, datetime(2024, 5, day, 9, 30, tzinfo=UTC)))


def dated(command: c.Command, when: datetime) -> Plan:
    return lambda _: [Submission(command=command, occurred_at=when)]


async def test_an_export_imported_into_an_empty_ledger_gives_the_same_events_in_order(
    ledger: Ledger, other_ledger: Ledger, tmp_path: Path
) -> None:
    await record_one_of_everything(ledger)
    path = tmp_path / "ledger.jsonl"
    with path.open("wb") as output:
        exported = await export_jsonl(ledger, output, page=7)

    summary = await run_import(other_ledger, jsonl_source(str(path)), chunk_size=10)

    original = [(kind, data, at) for kind, data, at, _ in await all_events(ledger)]
    copied = [(kind, data, at) for kind, data, at, _ in await all_events(other_ledger)]
    assert exported == len(original) == summary.events_written and summary.rejected == 0
    assert {kind for kind, _, _ in original} == set(EVENT_TYPES)
    assert copied == original


async def test_an_export_lists_one_item_per_event_without_default_fields(ledger: Ledger) -> None:
    await run_import(ledger, jsonl_source(str(EXAMPLE)))
    output = io.BytesIO()

    await export_jsonl(ledger, output)

    first = output.getvalue().splitlines()[0]
    assert first == (b'{"command":"register_member","display_name":"Valeria Maltoni",'
                     b'"id":"0e9564d7-0e14-5499-9f2a-bbb844c995ec",'
                     b'"occurred_at":"2009-08-22T12:00:00Z"}')  # fmt: skip
