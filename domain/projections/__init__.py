"""Projection folds: pure functions from ledger entries to read-model changes.

The services layer loads the rows a batch touches, hands them to a fold with the
batch, and writes back what the fold changed (`services/projector/appliers/`).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from domain.events import Event


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One ledger event as a fold sees it."""

    position: int
    occurred_at: datetime
    event: Event


def survivor(aliases: dict[UUID, UUID], member_id: UUID) -> UUID:
    """The member whose history now holds `member_id`'s, following merges."""
    seen = {member_id}
    while (next_id := aliases.get(member_id)) is not None and next_id not in seen:
        member_id = next_id
        seen.add(member_id)
    return member_id
