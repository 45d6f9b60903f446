"""Scores: the formulas, a member's values with their components, leaderboards, and the
events behind every point (docs/scores.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, get
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Parameter
from psycopg_pool import AsyncConnectionPool

from domain import scores as registry
from domain.scores import COMPONENTS, Formula
from services.api.auth import SECURITY, require
from services.api.consistency import MinPosition, consistent, reads, requested_position
from services.queries import scores as q
from services.queries.cursors import EvidenceCursor, InvalidCursor, decode_cursor

READS = tuple(name for f in registry.built() for name in q.reads(f))
"""Every published version's projections: each read waits only for its version's."""

Version = Annotated[
    int | None,
    Parameter(ge=1, le=1000, description="A published version; default the newest"),
]


class ComponentOut(msgspec.Struct, kw_only=True):
    name: str
    weight: float
    unit: str


class FormulaOut(msgspec.Struct, kw_only=True):
    name: str
    version: int
    status: str
    summary: str
    components: list[ComponentOut]
    documentation: str = "docs/scores.md"


class ScoreList(msgspec.Struct, kw_only=True):
    scores: list[FormulaOut]


class MemberScores(msgspec.Struct, kw_only=True):
    member_id: UUID
    scores: list[q.ScoreValue]


class ScoreLeaderboard(msgspec.Struct, kw_only=True):
    name: str
    version: int
    window: str
    since: str | None
    until: str | None
    brokerage_counted: bool
    """Brokerage is a snapshot of the whole graph: counted only for window=all up to now."""
    as_of: q.AsOf
    entries: list[q.Ranked]


class Explanation(msgspec.Struct, kw_only=True):
    member_id: UUID
    name: str
    version: int
    component: str
    value: float
    weight: float
    as_of: q.AsOf
    events: list[q.EvidenceOut]
    next_cursor: str | None
    note: str | None = None


def _formula(name: str, version: int | None) -> Formula:
    try:
        return registry.find(name, version)
    except LookupError as error:
        raise NotFoundException(str(error)) from error


def _cursor(text: str | None) -> EvidenceCursor | None:
    """Read first, so a forged cursor is a 400 whatever else the request names."""
    try:
        return decode_cursor(text, EvidenceCursor) if text else None
    except InvalidCursor as error:
        raise ValidationException(
            f"cursor: {error}",
            extra=[{"key": "cursor", "source": "query", "message": str(error)}],
        ) from error


def _took_window(request: Request[Any, Any, Any]) -> timedelta:
    window: timedelta = request.app.state.introduction_window
    return window


class ScoreController(Controller):
    guards = [require("read")]
    security = SECURITY
    tags = ["scores"]

    @get("/v1/scores", operation_id="ListScores", summary="The scores and their versions")
    async def list_scores(self) -> ScoreList:
        """Every formula with its components and weights; retired versions are listed, not read."""
        return ScoreList(
            scores=[
                FormulaOut(
                    name=f.name,
                    version=f.version,
                    status=f.status,
                    summary=f.summary,
                    components=[
                        ComponentOut(name=c.name, weight=c.weight, unit=c.unit)
                        for c in f.components
                    ],
                )
                for f in registry.FORMULAS
            ]
        )

    @get(
        "/v1/members/{member_id:uuid}/scores",
        operation_id="GetMemberScores",
        summary="A member's scores, with their components",
        opt=reads(READS),
    )
    async def member_scores(
        self,
        request: Request[Any, Any, Any],
        pool: AsyncConnectionPool,
        member_id: UUID,
        name: Annotated[str | None, Parameter(max_length=64, description="One score")] = None,
        version: Version = None,
        min_position: MinPosition = None,
    ) -> MemberScores:
        """Each score's value now, each component's value, weight and points, as of a position."""
        if version is not None and name is None:
            raise ValidationException("version needs name: a version belongs to one score")
        names = [name] if name else sorted({f.name for f in registry.built()})
        formulas = [_formula(n, version) for n in names]
        await consistent(request, min_position, tuple(p for f in formulas for p in q.reads(f)))
        async with pool.connection() as conn:
            if not await q.member_exists(conn, member_id):
                raise NotFoundException(f"no member {member_id}")
            values = [
                await q.member_score(conn, f, member_id, _took_window(request)) for f in formulas
            ]
        return MemberScores(member_id=member_id, scores=values)

    @get(
        "/v1/members/{member_id:uuid}/scores/{name:str}/components/{component:str}/events",
        operation_id="ExplainMemberScore",
        summary="The events behind one component of a member's score",
        opt=reads(READS),
    )
    async def explain(
        self,
        request: Request[Any, Any, Any],
        pool: AsyncConnectionPool,
        member_id: UUID,
        name: Annotated[str, Parameter(max_length=64)],
        component: Annotated[
            str, Parameter(max_length=64, schema_extra={"enum": list(COMPONENTS)})
        ],
        version: Version = None,
        cursor: Annotated[str | None, Parameter(max_length=500)] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
        min_position: MinPosition = None,
    ) -> Explanation:
        """Oldest first: for a counted component each event that reached a counterpart; for
        pairs_took each pair introduced that took and the first contact that made it take."""
        after = _cursor(cursor)
        formula = _formula(name, version)
        if not formula.has(component):
            raise NotFoundException(
                f"score {name!r} v{formula.version} has no component {component!r}; it has: "
                + ", ".join(c.name for c in formula.components)
            )
        await consistent(request, min_position, q.reads(formula))
        async with pool.connection() as conn:
            if not await q.member_exists(conn, member_id):
                raise NotFoundException(f"no member {member_id}")
            score = await q.member_score(conn, formula, member_id, _took_window(request))
            page = await q.evidence(
                conn, formula, member_id, component, _took_window(request), after, limit
            )
        value = next(c for c in score.components if c.name == component)
        note = None
        if component == registry.BROKERAGE:
            note = (
                "brokerage is measured on the whole connection graph, not counted from events: "
                f"see /v1/members/{member_id}/connections and docs/scores.md"
            )
        return Explanation(
            member_id=member_id,
            name=formula.name,
            version=formula.version,
            component=component,
            value=value.value,
            weight=value.weight,
            as_of=score.as_of,
            events=page.items,
            next_cursor=page.next_cursor,
            note=note,
        )

    @get(
        "/v1/scores/{name:str}/leaderboard",
        operation_id="ScoreLeaderboard",
        summary="Top members by a score over a window",
        opt=reads(READS),
    )
    async def leaderboard(
        self,
        request: Request[Any, Any, Any],
        pool: AsyncConnectionPool,
        name: Annotated[str, Parameter(max_length=64)],
        version: Version = None,
        window: Literal["7d", "30d", "90d", "365d", "all"] = "all",
        until: Annotated[
            str | None,
            Parameter(
                max_length=40,
                description="End of the window: a day (not counted) or a moment (its whole "
                "UTC day counted); default now. Any day: the graph job ranks every window "
                "ending on any day the ledger fills (the top 100)",
            ),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=100)] = 10,
        min_position: MinPosition = None,
    ) -> ScoreLeaderboard:
        """window=all: the score now. Other windows: what members earned within them (distinct
        counterparts reached and pairs that took in those days); brokerage only in all. As
        the graph job last ranked it (`as_of`), for any `until` too, unless `min_position`
        asks for what it has not ranked."""
        formula = _formula(name, version)
        try:
            days = q.score_window(window, until, datetime.now(UTC))
        except ValueError as error:
            raise ValidationException(str(error)) from error
        await consistent(request, min_position, q.reads(formula))
        took_window = _took_window(request)
        at_least = requested_position(request, min_position)
        async with pool.connection() as conn:
            if until is None:
                kept = await q.ranked(conn, formula, window, days, took_window, at_least, limit)
            else:
                assert days is not None  # a window with `until` always has its days
                kept = await q.ranked_until(
                    conn, formula, window, days, took_window, at_least, limit
                )
            if kept is not None:
                as_of, entries = kept
            else:
                entries = await q.leaderboard(conn, formula, days, took_window, limit)
                as_of = await q.as_of(conn, formula)
        return ScoreLeaderboard(
            name=formula.name,
            version=formula.version,
            window=window,
            since=str(days.first_day) if days and days.first_day else None,
            until=str(days.end_day) if days and days.end_day else None,
            brokerage_counted=days is None,
            as_of=as_of,
            entries=entries,
        )
