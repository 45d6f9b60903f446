"""The store seals on append and opens on read; handles are found and kept unique by digest."""

from __future__ import annotations

from uuid import UUID

import msgspec
import psycopg
import pytest

from domain import commands as c
from domain.errors import HandleAlreadyClaimed
from domain.events import ContributionRecorded, MemberForgotten, MemberRegistered
from domain.ids import new_id
from domain.streams import contribution_stream, member_stream, member_tag
from services.handler import CommandHandler, execute_commands
from services.store.identity import handle_owner
from services.store.ledger import Ledger
from services.store.records import RecordedEvent
from services.store.state import Wanted
from tests.privacy.conftest import as_new_event

pytestmark = pytest.mark.anyio

NAME, HANDLE, TITLE = "Odalys Featherstone", "twitter:@OdaFeather", "Notes on patient moderation"


def stored_text(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        events = conn.execute("SELECT data::text, tags::text FROM events").fetchall()
        tags = conn.execute("SELECT tag FROM event_tags").fetchall()
    return str(events + tags).lower()


async def test_what_the_handler_appends_is_stored_sealed_and_reads_back_in_clear(
    ledger: Ledger, database_url: str
) -> None:
    handler = CommandHandler(ledger)
    member = await registered_with_a_talk(handler, "meetup")

    stored = stored_text(database_url)
    assert [s for s in (NAME, "odafeather", TITLE) if s.lower() in stored] == []
    assert "meetup" in stored and str(member) in stored
    feed = [record.decode() for record in await ledger.read_feed()]
    assert feed[0].display_name == NAME  # type: ignore[attr-defined]
    assert feed[0].handles == (HANDLE,)  # type: ignore[attr-defined]
    assert isinstance(feed[1], ContributionRecorded) and feed[1].title == TITLE
    assert await handle_owner(ledger, "twitter:odafeather") == member


async def test_a_handle_stays_unique_by_its_digest_until_its_holder_is_erased(
    ledger: Ledger,
) -> None:
    first, second = new_id(), new_id()
    handler = CommandHandler(ledger)
    await execute_commands(
        handler, [c.RegisterMember(member_id=first, display_name=NAME, handles=(HANDLE,))]
    )
    again = c.RegisterMember(member_id=second, display_name="Someone", handles=("x:odafeather",))

    with pytest.raises(HandleAlreadyClaimed):
        await execute_commands(handler, [again])
    await execute_commands(handler, [c.ForgetMember(member_id=first)])

    assert await handle_owner(ledger, "twitter:odafeather") is None
    await execute_commands(handler, [again])
    assert await handle_owner(ledger, "twitter:odafeather") == second


async def test_an_event_about_a_forgotten_member_is_never_stored_in_clear(
    ledger: Ledger, database_url: str
) -> None:
    """The rules refuse such events; the store seals them anyway, under a key nobody keeps."""
    member = new_id()
    await ledger.append([as_new_event(MemberForgotten(member_id=member))])
    late = ContributionRecorded(
        contribution_id=new_id(), member_id=member, kind="talk", space="meetup", title=TITLE
    )

    await ledger.append([as_new_event(late)])

    assert TITLE.lower() not in stored_text(database_url)
    newest = (await ledger.read_feed())[-1]
    assert newest.erased and newest.decode() == ContributionRecorded(
        contribution_id=late.contribution_id, member_id=member, kind="talk", space="meetup"
    )


async def test_the_state_the_rules_load_opens_names_and_handles_and_leaves_texts_sealed(
    ledger: Ledger,
) -> None:
    member, contribution_id = new_id(), new_id()
    await execute_commands(
        CommandHandler(ledger),
        [
            c.RegisterMember(member_id=member, display_name=NAME, handles=(HANDLE,)),
            c.RecordContribution(
                contribution_id=contribution_id,
                member_id=member,
                kind="talk",
                space="meetup",
                title=TITLE,
            ),
        ],
    )

    rows = await ledger.read_state(
        Wanted(streams=[member_stream(member), contribution_stream(contribution_id)])
    )
    registration, recorded = (row.decode() for row in sorted(rows))
    assert isinstance(registration, MemberRegistered)
    assert (registration.display_name, registration.handles) == (NAME, (HANDLE,))
    assert isinstance(recorded, ContributionRecorded)
    assert (recorded.member_id, recorded.title) == (member, "")
    assert all(TITLE.encode() not in _bytes(row.data) for row in rows)


def _bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


async def test_a_history_page_reads_as_the_feed_does_and_asks_no_key_it_keeps(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = new_id()
    await execute_commands(
        CommandHandler(ledger),
        [
            c.RegisterMember(member_id=member, display_name=NAME, handles=(HANDLE,)),
            *(
                c.RecordContribution(
                    contribution_id=new_id(), member_id=member, kind="talk", space="x", title=t
                )
                for t in (TITLE, "", "A second note")
            ),
        ],
    )
    feed = {record.position: record for record in await ledger.read_feed()}
    reads: list[object] = []
    read_keys = ledger.keyring._read

    async def counted(*args: object) -> dict[str, bytes]:
        reads.append(args)
        return await read_keys(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger.keyring, "_read", counted)

    page = await ledger.read_tagged(member_tag(member), limit=10)

    # The database cut each box out (`CUT_COLUMNS`); the feed splices it out of the text.
    assert [record.position for record in page] == sorted(feed, reverse=True)
    assert page == [feed[record.position] for record in page]
    assert [e.title for e in map(RecordedEvent.decode, page[:3])] == [  # type: ignore[attr-defined]
        "A second note",
        "",
        TITLE,
    ]
    assert reads == []  # the member's key is kept: the page was its one statement


async def test_a_history_page_of_an_erased_member_reads_as_erased_at_once(
    ledger: Ledger,
) -> None:
    handler = CommandHandler(ledger)
    member = await registered_with_a_talk(handler, "x")
    assert not (await ledger.read_tagged(member_tag(member)))[0].erased
    await execute_commands(handler, [c.ForgetMember(member_id=member)])

    page = await ledger.read_tagged(member_tag(member), types=["ContributionRecorded"])

    assert page[0].erased and b"sealed" not in bytes(page[0].data)
    assert msgspec.json.decode(page[0].data)["title"] is None


async def registered_with_a_talk(handler: CommandHandler, space: str) -> UUID:
    """A new member (NAME, HANDLE) who gave a talk titled TITLE in `space`."""
    member = new_id()
    await execute_commands(
        handler,
        [
            c.RegisterMember(member_id=member, display_name=NAME, handles=(HANDLE,)),
            c.RecordContribution(
                contribution_id=new_id(), member_id=member, kind="talk", space=space, title=TITLE
            ),
        ],
    )
    return member
