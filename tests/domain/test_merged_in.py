"""Whose events a member's history holds: its own and those merged into it, down chains."""

from __future__ import annotations

from domain.events import MembersMerged
from domain.ids import new_id
from domain.state import merged_in


def test_a_member_never_merged_holds_only_itself() -> None:
    ann, other = new_id(), new_id()

    assert merged_in(ann, [MembersMerged(survivor_id=other, duplicate_id=new_id())]) == [ann]


def test_a_chain_is_followed_from_the_last_survivor_down() -> None:
    a, b, c, d = (new_id() for _ in range(4))
    merges = [
        MembersMerged(survivor_id=b, duplicate_id=c),
        MembersMerged(survivor_id=a, duplicate_id=b),
        MembersMerged(survivor_id=a, duplicate_id=d),
    ]

    assert merged_in(a, merges) == [a, b, d, c]
    assert merged_in(b, merges) == [b, c]
    assert merged_in(c, merges) == [c]


def test_a_cycle_in_bad_data_ends_the_walk() -> None:
    a, b = new_id(), new_id()
    merges = [
        MembersMerged(survivor_id=a, duplicate_id=b),
        MembersMerged(survivor_id=b, duplicate_id=a),
    ]

    assert merged_in(a, merges) == [a, b]
