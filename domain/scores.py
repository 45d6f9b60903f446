"""Scores: named, versioned formulas over the ledger, each a weighted sum of components.

A formula never changes once published: a change is a new version, built beside the old
one from the ledger (its own projection), readable side by side until the old one is
retired. docs/scores.md gives every component's definition and every weight's reason.
"""

from __future__ import annotations

from typing import Literal

import msgspec

COUNTED = ("reach", "recognitions_given", "answers_drawn", "sought_out")
"""Components the score's own projection counts from events: distinct counterparts."""
TOOK = "pairs_took"
"""Counted from the introductions read model (pairs that took within its window)."""
BROKERAGE = "brokerage"
"""Computed by the graph job over the connections read model."""
COMPONENTS = (TOOK, *COUNTED, BROKERAGE)

Status = Literal["published", "retired"]


class Component(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    weight: float
    unit: str
    """What one unit of the component is: the weight is points per unit."""


class Formula(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: int
    components: tuple[Component, ...]
    summary: str
    status: Status = "published"

    @property
    def projection(self) -> str:
        """The projection that builds it: each version its own build."""
        return f"score_{self.name}_v{self.version}"

    def table(self, kind: str) -> str:
        """A table of its build, as `read` names it: evidence, contacts, totals, brokerage,
        graph_runs, aliases."""
        return f"{self.projection}_{kind}"

    @property
    def counted(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.components if c.name in COUNTED)

    def value(self, components: dict[str, float]) -> float:
        """The score: each component's value times its weight, summed (4 decimals)."""
        return round(sum(c.weight * components.get(c.name, 0.0) for c in self.components), 4)

    def weight(self, component: str) -> float:
        return next((c.weight for c in self.components if c.name == component), 0.0)

    def has(self, component: str) -> bool:
        return any(c.name == component for c in self.components)


CONNECTOR_V1 = Formula(
    name="connector",
    version=1,
    summary="Who connects people: introductions that took, the members reached, "
    "recognition given away, the members drawn into conversation, and the paths between "
    "others that run through them.",
    components=(
        Component(name=TOOK, weight=3.0, unit="distinct pair introduced that took"),
        Component(
            name="reach", weight=1.0, unit="distinct member introduced, mentioned or recognised"
        ),
        Component(name="recognitions_given", weight=1.0, unit="distinct member recognised"),
        Component(
            name="answers_drawn",
            weight=1.0,
            unit="distinct member who replied to this one's contributions",
        ),
        Component(
            name=BROKERAGE,
            weight=1.0,
            unit="percentage point of the shortest paths "
            "between other members that run through this one",
        ),
    ),
)

CONNECTOR_V2_DRAFT = Formula(
    name="connector",
    version=2,
    summary="connector v1, with introductions that took weighing more and a new component: "
    "the distinct members who sought this one out (mentioned or recognised them).",
    components=(
        Component(name=TOOK, weight=4.0, unit="distinct pair introduced that took"),
        Component(
            name="reach", weight=1.0, unit="distinct member introduced, mentioned or recognised"
        ),
        Component(name="recognitions_given", weight=1.0, unit="distinct member recognised"),
        Component(
            name="answers_drawn",
            weight=1.0,
            unit="distinct member who replied to this one's contributions",
        ),
        Component(
            name="sought_out",
            weight=0.5,
            unit="distinct member who mentioned or recognised this one",
        ),
        Component(
            name=BROKERAGE,
            weight=1.0,
            unit="percentage point of the shortest paths "
            "between other members that run through this one",
        ),
    ),
)
"""Not published (docs/scores.md, "Versions"): the tests build it beside v1 to prove the
mechanism; a community that wants it adds it to FORMULAS."""

FORMULAS: tuple[Formula, ...] = (CONNECTOR_V1,)
"""Every formula a deployment knows: published ones are built and read, retired ones only
listed. Publishing a version is adding it here; retiring one is setting its status."""


def built(formulas: tuple[Formula, ...] = FORMULAS) -> tuple[Formula, ...]:
    return tuple(f for f in formulas if f.status == "published")


def find(name: str, version: int | None, formulas: tuple[Formula, ...] = FORMULAS) -> Formula:
    """The formula asked for (default: the newest published version); LookupError otherwise."""
    versions = [f for f in formulas if f.name == name]
    if not versions:
        known = sorted({f.name for f in formulas})
        raise LookupError(f"no score {name!r}; there are: {', '.join(known)}")
    if version is None:
        published = [f for f in versions if f.status == "published"]
        if not published:
            raise LookupError(f"every version of score {name!r} is retired")
        return max(published, key=lambda f: f.version)
    for formula in versions:
        if formula.version == version:
            if formula.status == "retired":
                raise LookupError(f"score {name!r} version {version} is retired")
            return formula
    listed = ", ".join(str(f.version) for f in versions)
    raise LookupError(f"score {name!r} has no version {version}; it has: {listed}")
