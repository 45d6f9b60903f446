"""The personal fields the state fold reads: only names and handles (`READS_PERSONAL`).

The store leaves every other box sealed when it loads state for the rules (a chunk of an
import opens no contribution's text), so those fields must never change what is known."""

from __future__ import annotations

import msgspec
from hypothesis import given

from domain.events import (
    ContributionRecorded,
    Event,
    MemberProfileUpdated,
    RecognitionGiven,
    type_name,
)
from domain.ids import new_id
from domain.personal import BLANKS, PERSONAL
from domain.state import READS_PERSONAL, fold
from tests.domain.scenarios import ANA, BO, everyone, registered
from tests.domain.test_events import any_event


def blanked(event: Event) -> Event:
    """`event` as the store loads it when its box is left sealed: its personal fields blank."""
    return msgspec.structs.replace(event, **BLANKS.get(type_name(event), {}))


@given(any_event)
def test_no_personal_field_outside_reads_personal_changes_what_the_fold_knows(
    event: Event,
) -> None:
    if type_name(event) in READS_PERSONAL:
        return
    assert fold([*everyone(), blanked(event)]) == fold([*everyone(), event])


def test_texts_reasons_and_notes_fold_the_same_blank() -> None:
    given_events = [
        registered(ANA, name="Ana"),
        registered(BO, name="Bo"),
        ContributionRecorded(
            contribution_id=new_id(),
            member_id=ANA,
            kind="article",
            space="forum",
            title="Notes on patient moderation",
            body="Long text",
            url="https://example.org/n",
        ),
        RecognitionGiven(
            recognition_id=new_id(), from_id=BO, to_id=ANA, kind="kudos", reason="for the notes"
        ),
    ]
    assert fold([blanked(e) for e in given_events[2:]]) == fold(given_events[2:])
    assert fold(given_events[:2] + [blanked(e) for e in given_events[2:]]) == fold(given_events)


def test_names_and_handles_are_what_the_fold_reads() -> None:
    assert set(READS_PERSONAL) - PERSONAL.keys() == set()
    update = MemberProfileUpdated(member_id=ANA, display_name="Ana B.")
    assert fold([registered(ANA, name="Ana"), update]) != fold(
        [registered(ANA, name="Ana"), blanked(update)]
    )
