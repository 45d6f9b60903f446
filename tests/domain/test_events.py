"""Where each event is versioned, how it is found, and that it survives storage."""

from __future__ import annotations

import typing
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.codec import decode_event, encode_payload
from domain.events import (
    EVENT_TYPES,
    ContributionRecorded,
    ContributionRetracted,
    Event,
    HandleLinked,
    HandleUnlinked,
    IntroductionMade,
    MemberForgotten,
    MemberProfileUpdated,
    MemberRegistered,
    MembersMerged,
    MentionRecorded,
    RecognitionGiven,
    RecognitionWithdrawn,
    member_ids_of,
    stream_of,
    tags_of,
    type_name,
)
from domain.ids import new_id

ANA, BO, CY = new_id(), new_id(), new_id()
WORK, INTRO, MENTION, KUDOS = new_id(), new_id(), new_id(), new_id()

CASES: list[tuple[Event, str, tuple[str, ...]]] = [
    (
        MemberRegistered(
            member_id=ANA, display_name="Ana", handles=("Twitter:@CASUDI", "x:@yannr")
        ),
        f"member-{ANA}",
        (f"member:{ANA}", "handle:twitter:casudi", "handle:twitter:yannr"),
    ),
    (MemberProfileUpdated(member_id=ANA, bio="hi"), f"member-{ANA}", (f"member:{ANA}",)),
    (
        HandleLinked(member_id=ANA, handle="twitter:@Note_To_CMO"),
        f"member-{ANA}",
        (f"member:{ANA}", "handle:twitter:note_to_cmo"),
    ),
    (
        HandleUnlinked(member_id=ANA, handle="GitHub:OctoCat"),
        f"member-{ANA}",
        (f"member:{ANA}", "handle:github:octocat"),
    ),
    (
        MembersMerged(survivor_id=ANA, duplicate_id=BO),
        f"member-{BO}",
        (f"member:{ANA}", f"member:{BO}"),
    ),
    (MemberForgotten(member_id=ANA), f"member-{ANA}", (f"member:{ANA}",)),
    (
        ContributionRecorded(contribution_id=WORK, member_id=ANA, kind="recap", space="kaizenblog"),
        f"contribution-{WORK}",
        (f"member:{ANA}", f"contribution:{WORK}", "space:kaizenblog"),
    ),
    (
        ContributionRetracted(contribution_id=WORK, member_id=ANA),
        f"contribution-{WORK}",
        (f"member:{ANA}", f"contribution:{WORK}"),
    ),
    (
        IntroductionMade(
            introduction_id=INTRO, introducer_id=ANA, introduced_ids=(BO, CY), space="kaizenblog"
        ),
        f"introduction-{INTRO}",
        (f"member:{ANA}", f"member:{BO}", f"member:{CY}", "space:kaizenblog"),
    ),
    (
        MentionRecorded(mention_id=MENTION, member_id=ANA, mentioned_id=BO, contribution_id=WORK),
        f"mention-{MENTION}",
        (f"member:{ANA}", f"member:{BO}", f"contribution:{WORK}"),
    ),
    (
        RecognitionGiven(
            recognition_id=KUDOS,
            from_id=ANA,
            to_id=BO,
            kind="kudos",
            contribution_id=WORK,
            space="k",
        ),
        f"recognition-{KUDOS}",
        (f"member:{ANA}", f"member:{BO}", f"contribution:{WORK}", "space:k"),
    ),
    (
        RecognitionWithdrawn(recognition_id=KUDOS, from_id=ANA, to_id=BO),
        f"recognition-{KUDOS}",
        (f"member:{ANA}", f"member:{BO}"),
    ),
]


def test_every_event_type_has_a_case() -> None:
    assert {type_name(event) for event, _, _ in CASES} == set(EVENT_TYPES)


@pytest.mark.parametrize(
    ("event", "stream", "tags"), CASES, ids=[type_name(event) for event, _, _ in CASES]
)
def test_stream_and_tags_of_each_event(event: Event, stream: str, tags: tuple[str, ...]) -> None:
    assert stream_of(event) == stream
    assert tags_of(event) == tags


def test_member_ids_of_lists_each_member_once() -> None:
    event = IntroductionMade(introduction_id=INTRO, introducer_id=ANA, introduced_ids=(BO, ANA, BO))
    assert member_ids_of(event) == (ANA, BO)


_offsets = st.integers(-1439, 1439).map(lambda minutes: timezone(timedelta(minutes=minutes)))
_when = st.datetimes(
    datetime(1900, 1, 1), datetime(2200, 1, 1), timezones=st.one_of(st.none(), _offsets)
)


def _strategy(cls: type[Event]) -> st.SearchStrategy[Event]:
    hints = typing.get_type_hints(cls)
    fields = {name: st.from_type(hints[name]) for name in cls.__struct_fields__}
    if "joined_at" in fields:
        fields["joined_at"] = st.none() | _when
    return st.builds(cls, **fields)


any_event = st.one_of([_strategy(cls) for cls in EVENT_TYPES.values()])


@given(any_event)
def test_every_event_survives_encoding_and_decoding(event: Event) -> None:
    assert decode_event(type_name(event), event.SCHEMA_VERSION, encode_payload(event)) == event
