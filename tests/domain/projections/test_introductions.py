"""Introductions that took, by hand: given a ledger, when read at `as_of`, then each pair's status.

Every moment here is START plus whole days, so the window (30 days) can be checked by eye.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from domain import events as e
from domain.ids import new_id
from domain.projections import introductions
from domain.projections.introductions import DEFAULT_WINDOW, Pair, State
from tests.domain.projections.timeline import (
    ANA,
    BO,
    CY,
    DEE,
    START,
    contributed,
    forgotten,
    introduced,
    ledger,
    mentioned,
    merged,
    recognised,
    retracted,
    withdrawn,
)


def day(n: float) -> datetime:
    return START + timedelta(days=n)


class Story:
    """A ledger folded at once; `then` reads the pairs of one introduction at `as_of`."""

    def __init__(self, items: tuple[tuple[float, e.Event], ...]) -> None:
        self.state = introductions.fold(State(), ledger(*((day(n), ev) for n, ev in items)))

    def pair(self, made: e.IntroductionMade, a: UUID, b: UUID) -> Pair:
        return self.state.pairs[made.introduction_id, *sorted((a, b))]  # type: ignore[index]

    def status(self, made: e.IntroductionMade, a: UUID, b: UUID, as_of: float) -> str:
        pair = self.pair(made, a, b)
        return introductions.status(
            pair.introduced_at, pair.evidence_at, day(as_of), DEFAULT_WINDOW
        )

    def introduction(self, made: e.IntroductionMade, as_of: float) -> str:
        pairs = [p for p in self.state.pairs.values() if p.introduction_id == made.introduction_id]
        moment = self.state.introductions[made.introduction_id].introduced_at
        evidence = [p.evidence_at for p in pairs]
        return introductions.introduction_status(moment, evidence, day(as_of), DEFAULT_WINDOW)

    def pairs(self, made: e.IntroductionMade) -> set[tuple[UUID, UUID]]:
        return {(a, b) for iid, a, b in self.state.pairs if iid == made.introduction_id}


def given(*items: tuple[float, e.Event]) -> Story:
    return Story(items)


DEE_INTRODUCES_ANA_AND_BO = introduced(DEE, ANA, BO)


def test_an_introduction_pairs_every_two_introduced_members_never_the_introducer() -> None:
    made = introduced(DEE, ANA, BO, CY)
    story = given((0, made))
    assert story.pairs(made) == {(ANA, BO), (ANA, CY), (BO, CY)}
    assert story.state.roles == {
        (DEE, "introducer", 1): made.introduction_id,
        (ANA, "introduced", 1): made.introduction_id,
        (BO, "introduced", 1): made.introduction_id,
        (CY, "introduced", 1): made.introduction_id,
    }


def test_a_pair_took_when_one_mentions_the_other_within_the_window() -> None:
    said = mentioned(BO, ANA)
    story = given((0, DEE_INTRODUCES_ANA_AND_BO), (3, said))
    pair = story.pair(DEE_INTRODUCES_ANA_AND_BO, ANA, BO)
    assert (pair.evidence_kind, pair.evidence_id, pair.evidence_position) == (
        "mention",
        said.mention_id,
        2,
    )
    assert pair.evidence_at == day(3)
    assert story.status(DEE_INTRODUCES_ANA_AND_BO, ANA, BO, as_of=40) == "took"


def test_a_pair_took_when_one_recognises_the_other() -> None:
    thanks = recognised(ANA, BO)
    story = given((0, DEE_INTRODUCES_ANA_AND_BO), (29, thanks))
    pair = story.pair(DEE_INTRODUCES_ANA_AND_BO, ANA, BO)
    assert (pair.evidence_kind, pair.evidence_id) == ("recognition", thanks.recognition_id)
    assert story.status(DEE_INTRODUCES_ANA_AND_BO, ANA, BO, as_of=29) == "took"


def test_a_pair_took_when_one_replies_to_the_others_contribution_even_one_from_before() -> None:
    post = contributed(ANA)
    reply = e.ContributionRecorded(
        contribution_id=new_id(),
        member_id=BO,
        kind="chat_answer",
        space="s",
        reply_to=post.contribution_id,
    )
    story = given((-5, post), (0, DEE_INTRODUCES_ANA_AND_BO), (2, reply))
    pair = story.pair(DEE_INTRODUCES_ANA_AND_BO, ANA, BO)
    assert (pair.evidence_kind, pair.evidence_id, pair.evidence_position) == (
        "reply",
        reply.contribution_id,
        3,
    )
    assert story.status(DEE_INTRODUCES_ANA_AND_BO, ANA, BO, as_of=2) == "took"


def test_a_pair_took_when_one_introduces_the_other_to_someone_else() -> None:
    onward = introduced(BO, ANA, CY)
    story = given((0, DEE_INTRODUCES_ANA_AND_BO), (30, onward))
    pair = story.pair(DEE_INTRODUCES_ANA_AND_BO, ANA, BO)
    assert (pair.evidence_kind, pair.evidence_id) == ("introduction", onward.introduction_id)
    # The window's last moment still counts; the onward introduction makes a pair of its own.
    assert story.status(DEE_INTRODUCES_ANA_AND_BO, ANA, BO, as_of=30) == "took"
    assert story.pairs(onward) == {(ANA, CY)}


def test_a_pair_lapsed_when_they_first_met_after_the_window() -> None:
    story = given((0, DEE_INTRODUCES_ANA_AND_BO), (31, mentioned(ANA, BO)))
    pair = story.pair(DEE_INTRODUCES_ANA_AND_BO, ANA, BO)
    assert pair.evidence_at == day(31), "the first contact is kept, late or not"
    assert story.status(DEE_INTRODUCES_ANA_AND_BO, ANA, BO, as_of=30) == "pending"
    assert story.status(DEE_INTRODUCES_ANA_AND_BO, ANA, BO, as_of=31) == "lapsed"
    assert story.status(DEE_INTRODUCES_ANA_AND_BO, ANA, BO, as_of=400) == "lapsed"


def test_a_pair_is_pending_while_the_window_is_open_and_evidence_after_as_of_does_not_count() -> (
    None
):
    story = given((0, DEE_INTRODUCES_ANA_AND_BO), (10, mentioned(ANA, BO)))
    assert story.status(DEE_INTRODUCES_ANA_AND_BO, ANA, BO, as_of=9) == "pending"
    assert story.status(DEE_INTRODUCES_ANA_AND_BO, ANA, BO, as_of=10) == "took"


def test_what_is_not_a_direct_contact_of_the_two_leaves_the_pair_without_evidence() -> None:
    story = given(
        (-1, mentioned(ANA, BO)),  # before the introduction
        (0, DEE_INTRODUCES_ANA_AND_BO),
        (1, mentioned(DEE, ANA)),  # the introducer, not the pair
        (2, introduced(CY, ANA, BO)),  # introduced again, by someone else
        (3, recognised(ANA, CY)),
    )
    assert story.pair(DEE_INTRODUCES_ANA_AND_BO, ANA, BO).evidence_at is None
    assert story.status(DEE_INTRODUCES_ANA_AND_BO, ANA, BO, as_of=31) == "lapsed"


def test_the_first_contact_is_by_moment_so_a_later_entry_with_an_earlier_moment_replaces_it() -> (
    None
):
    late, early = mentioned(ANA, BO), recognised(BO, ANA)
    story = given((0, DEE_INTRODUCES_ANA_AND_BO), (40, late), (5, early))
    pair = story.pair(DEE_INTRODUCES_ANA_AND_BO, ANA, BO)
    assert (pair.evidence_id, pair.evidence_at) == (early.recognition_id, day(5))


def test_an_introduction_took_when_one_of_its_pairs_took() -> None:
    made = introduced(DEE, ANA, BO, CY)
    story = given((0, made), (4, mentioned(CY, BO)))
    assert story.status(made, ANA, BO, as_of=60) == "lapsed"
    assert story.status(made, BO, CY, as_of=60) == "took"
    assert story.introduction(made, as_of=60) == "took"
    assert story.introduction(made, as_of=3) == "pending"


def test_a_withdrawn_recognition_and_a_retracted_reply_stay_evidence() -> None:
    thanks = recognised(ANA, BO)
    post = contributed(CY)
    reply = e.ContributionRecorded(
        contribution_id=new_id(),
        member_id=DEE,
        kind="chat_answer",
        space="s",
        reply_to=post.contribution_id,
    )
    cy_and_dee = introduced(ANA, CY, DEE)
    story = given(
        (0, DEE_INTRODUCES_ANA_AND_BO),
        (0, post),
        (0, cy_and_dee),
        (1, thanks),
        (1, reply),
        (2, withdrawn(thanks)),
        (2, retracted(reply)),
    )
    assert story.status(DEE_INTRODUCES_ANA_AND_BO, ANA, BO, as_of=60) == "took"
    assert story.status(cy_and_dee, CY, DEE, as_of=60) == "took"


def test_a_merged_duplicates_pairs_and_evidence_move_to_the_survivor() -> None:
    # CY is a second account of ANA: introduced to BO as CY, ANA talks to BO afterwards.
    made = introduced(DEE, CY, BO)
    story = given((0, made), (1, merged(CY, into=ANA)), (2, mentioned(ANA, BO)))
    pair = story.pair(made, ANA, BO)
    assert (pair.evidence_kind, pair.evidence_position) == ("mention", 3)
    assert story.pairs(made) == {(ANA, BO)}
    assert story.state.introductions[made.introduction_id].introduced_ids == [ANA, BO]
    assert (ANA, "introduced", 1) in story.state.roles and (
        CY,
        "introduced",
        1,
    ) not in story.state.roles


def test_evidence_found_before_a_merge_follows_the_duplicate_and_the_earlier_one_stays() -> None:
    made = introduced(DEE, ANA, BO, CY)
    story = given(
        (0, made),
        (6, mentioned(ANA, BO)),
        (3, mentioned(CY, BO)),
        (7, merged(CY, into=ANA)),
    )
    # (ANA, BO) and (CY, BO) meet as one pair: the earlier evidence (day 3) stays.
    assert story.pairs(made) == {(ANA, BO)}
    assert story.pair(made, ANA, BO).evidence_at == day(3)


def test_a_pair_whose_two_members_are_merged_is_dropped_and_an_introducer_merge_follows() -> None:
    made = introduced(DEE, ANA, BO, CY)
    story = given((0, made), (1, merged(BO, into=ANA)), (2, merged(DEE, into=CY)))
    assert story.pairs(made) == {(ANA, CY)}
    assert story.pair(made, ANA, CY).introducer_id == CY
    assert story.state.introductions[made.introduction_id].introducer_id == CY
    assert story.state.removed_pairs >= {(made.introduction_id, *sorted((ANA, BO)))}


def test_an_erased_members_pairs_and_evidence_stay_counted() -> None:
    story = given((0, DEE_INTRODUCES_ANA_AND_BO), (1, mentioned(BO, ANA)), (2, forgotten(BO)))
    assert story.status(DEE_INTRODUCES_ANA_AND_BO, ANA, BO, as_of=60) == "took"
    assert story.state.changed_pairs == {(DEE_INTRODUCES_ANA_AND_BO.introduction_id, ANA, BO)}
