"""The #kaizenblog example, loaded into an empty ledger, says what the recap says."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from uuid import UUID

import pytest

from domain.events import (
    ContributionRecorded,
    Event,
    MemberRegistered,
    MentionRecorded,
    RecognitionGiven,
)
from domain.ids import deterministic_id
from domain.state import fold
from services.handler import Resolver
from services.importers.common import run_import
from services.importers.jsonl import jsonl_source
from services.store.ledger import Ledger
from tests.importers.conftest import all_events

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kaizenblog" / "kaizenblog.jsonl"


class Chat:
    """The example as loaded: members by name, contributions, mentions and recognitions."""

    def __init__(self, events: Sequence[Event]) -> None:
        self.members = {e.member_id: e for e in events if isinstance(e, MemberRegistered)}
        self.contributions = [e for e in events if isinstance(e, ContributionRecorded)]
        self.mentions = [e for e in events if isinstance(e, MentionRecorded)]
        self.recognitions = [e for e in events if isinstance(e, RecognitionGiven)]

    def name(self, member_id: UUID) -> str:
        return self.members[member_id].display_name

    def answers(self, question: str) -> list[tuple[str, str]]:
        return [(self.name(c.member_id), c.body) for c in self.contributions
                if c.kind == "chat_answer" and c.attributes["question"] == question]  # fmt: skip

    def by(self, name: str) -> list[ContributionRecorded]:
        return [c for c in self.contributions if self.name(c.member_id) == name]


@pytest.fixture
async def chat(ledger: Ledger) -> Chat:
    summary = await run_import(ledger, jsonl_source(str(EXAMPLE)))
    assert (summary.rejected, summary.members_created, summary.events_written) == (0, 22, 81)
    return Chat([event for *_, event in await all_events(ledger)])


async def test_each_question_got_the_answers_the_recap_quotes(chat: Chat) -> None:
    counts = Counter(
        c.attributes["question"] for c in chat.contributions if c.kind == "chat_answer"
    )

    assert counts == {"Q1": 6, "Q2": 7, "Q3": 8, "Q4": 5}
    assert [name for name, _ in chat.answers("Q1")] == [
        "Stephen Denny", "AngelaDunn", "Amy Blake", "Bruno Coehlo", "Patrick Prothe",
        "Bernd Nurnberger",
    ]  # fmt: skip
    assert ("Caroline Di Diego", "contributing/communicating U name it > OUTPUT = other 50%") in (
        chat.answers("Q2")
    )
    assert ("Yann Ropars", "Be present and create meaningful space for participants") in (
        chat.answers("Q2")
    )
    assert [name for name, _ in chat.answers("Q4")] == [
        "Caroline Di Diego", "Diane Court", "Rick Alcantara", "Cathy Larkin", "Joe Sanchez",
    ]  # fmt: skip


async def test_people_quoted_twice_answered_two_questions(chat: Chat) -> None:
    def questions(name: str) -> list[str]:
        return [c.attributes["question"] for c in chat.by(name) if c.kind == "chat_answer"]

    assert questions("Amy Blake") == ["Q1", "Q3"]
    assert questions("Bruno Coehlo") == ["Q1", "Q3"]
    assert questions("Caroline Di Diego") == ["Q2", "Q4"]
    assert questions("Joe Sanchez") == ["Q3", "Q4"]


async def test_every_participant_has_the_twitter_handle_the_recap_gives(chat: Chat) -> None:
    recap = next(c for c in chat.contributions if c.kind == "recap")
    written = set(re.findall(r"([A-Z][\w]*(?: [A-Z][\w]*)*) \((@\w+)\)", recap.body))
    registered = {(m.display_name, h.removeprefix("twitter:")) for m in chat.members.values()
                  for h in m.handles}  # fmt: skip

    assert len(written) == 20 and ("Yann Ropars", "@yannr") in written
    assert written <= registered


async def test_handles_resolve_to_their_member_whatever_their_case(ledger: Ledger) -> None:
    await run_import(ledger, jsonl_source(str(EXAMPLE)))
    tagged = [*await ledger.read_tagged("handle:twitter:casudi"),
              *await ledger.read_tagged("handle:twitter:yannr")]  # fmt: skip
    known = fold(record.decode() for record in sorted(tagged, key=lambda r: r.position))
    resolver = Resolver(known)

    caroline = {resolver.member(ref) for ref in ("twitter:casudi", "Twitter:@CASUDI", "x:Casudi")}
    assert len(caroline) == 1
    assert known.members[caroline.pop()].display_name == "Caroline Di Diego"
    yann = resolver.member("twitter:@yannr")
    assert known.members[yann].display_name == "Yann Ropars"
    assert yann == deterministic_id("kaizenblog", "member", "Yann Ropars")  # as the README says


async def test_the_host_hosted_asked_and_wrote_the_post_that_started_it(chat: Chat) -> None:
    host = chat.by("Valeria Maltoni")
    kinds = Counter(c.kind for c in host)

    assert kinds == {"blog_post": 1, "chat_hosting": 1, "chat_question": 5, "chat_summary": 1}
    post = next(c for c in host if c.kind == "blog_post")
    assert post.title == "Why Believing is the Most Important Thing You Can Do"
    asked = [c.attributes["question"] for c in host if c.kind == "chat_question"]
    assert asked == ["Q1", "Q2", "Q3", "Q3", "Q4"]  # Q3 is followed by its clarification
    assert any(c.body == "Q3 clarification = another way to let go of control." for c in host)


async def test_yann_started_the_side_conversation_on_community_leaders(chat: Chat) -> None:
    side = [c for c in chat.by("Yann Ropars") if c.attributes.get("thread") == "community-leader"]

    assert [(c.kind, c.title) for c in side] == [
        ("chat_question", "What makes a good community leader?")
    ]


async def test_the_recap_mentions_the_host_and_yann_and_highlights_everyone_quoted(
    chat: Chat,
) -> None:
    recap = next(c for c in chat.contributions if c.kind == "recap")
    answerers = {chat.name(c.member_id) for c in chat.contributions if c.kind == "chat_answer"}

    assert {chat.name(m.mentioned_id) for m in chat.mentions} == {"Valeria Maltoni", "Yann Ropars"}
    assert all(m.contribution_id == recap.contribution_id for m in chat.mentions)
    highlighted = {chat.name(r.to_id) for r in chat.recognitions if r.kind == "highlight"}
    assert highlighted == answerers | {"Valeria Maltoni"} and len(answerers) == 20
    assert {r.from_id for r in chat.recognitions} == {recap.member_id}
