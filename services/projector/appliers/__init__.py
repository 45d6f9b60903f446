"""Appliers: load the rows a batch touches, let the domain fold it, write back what changed.

Each build of a projection lives in a schema of its own; the runner creates it, calls
`create_tables`, then `apply` inside transactions it owns (with its checkpoint), so an
applier never commits. The SQL helpers are in `rows`, the protocol and `Memory` in `base`.

Between batches an applier remembers (`Memory`) what is bounded by the community's
size rather than the ledger's: every alias, and for profiles the rows themselves. That
memory belongs to one runner, so appliers are made per runner by `make_appliers`, never
at import. A build's secondary indexes are made by `create_indexes` when it has caught
up, just before it goes live, rather than maintained row by row through the catch-up.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.projector.appliers.base import Applier
from services.projector.appliers.community_health import CommunityHealthApplier
from services.projector.appliers.connections import ConnectionsApplier
from services.projector.appliers.contribution_counts import ContributionCountsApplier
from services.projector.appliers.interaction_counts import InteractionCountsApplier
from services.projector.appliers.introductions import IntroductionsApplier
from services.projector.appliers.member_profiles import MemberProfilesApplier
from services.projector.appliers.scores import SCORE_APPLIERS

__all__ = ["PROJECTIONS", "Applier", "make_appliers", "projection_names"]

PROJECTIONS: tuple[type[Applier], ...] = (
    MemberProfilesApplier,
    ContributionCountsApplier,
    ConnectionsApplier,
    InteractionCountsApplier,
    IntroductionsApplier,
    *SCORE_APPLIERS,
    CommunityHealthApplier,
)
"""Every projection, in the order status lists them. Classes, not instances: reading a
name, a version or the tables builds nothing and shares no state."""


def projection_names() -> list[str]:
    return [projection.name for projection in PROJECTIONS]


def make_appliers(names: Sequence[str] = ()) -> tuple[Applier, ...]:
    """Fresh appliers (all, or those named) with empty memories: one set per runner."""
    known = {projection.name: projection for projection in PROJECTIONS}
    if unknown := [name for name in names if name not in known]:
        raise LookupError(f"unknown projection {', '.join(unknown)}; known: {', '.join(known)}")
    return tuple(known[name]() for name in (names or known))
