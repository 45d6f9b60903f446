"""Who holds a handle, and who was merged into whom: folded straight from the ledger.

For reads that must be as fresh as the writes (no projection lag), with the same rules'
state (`domain.state`) the handler decides with.
"""

from __future__ import annotations

from uuid import UUID

from domain.events import MembersMerged
from domain.state import fold, merged_in
from domain.streams import handle_tag, member_tag
from services.store.ledger import Ledger

HANDLE_EVENTS = 1000
"""How many of a handle's newest events decide its owner: links and unlinks are rare."""


async def handle_owner(ledger: Ledger, key: str) -> UUID | None:
    """The member who holds the handle `key` (normalised) now, if anyone."""
    records = await ledger.read_tagged(handle_tag(key), limit=HANDLE_EVENTS)
    return fold(r.decode() for r in reversed(records)).owner_of(key)


async def merged_into(ledger: Ledger, member_id: UUID) -> list[UUID]:
    """The member and those merged into it, directly or down a chain of merges.

    One read per link of the longest chain of merges; a member never merged costs one
    probe that finds nothing.
    """
    members, merges = [member_id], []
    frontier = [member_id]
    while frontier:
        found = await ledger.read_tagged_of_types(
            [member_tag(member) for member in frontier], ["MembersMerged"]
        )
        merges += [m for r in found if isinstance(m := r.decode(), MembersMerged)]
        frontier = [m for m in merged_in(member_id, merges) if m not in members]
        members += frontier
    return members
