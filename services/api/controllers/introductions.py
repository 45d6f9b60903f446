"""Introductions that took: one introduction with its pairs, and a member's introductions.

Statuses are evaluated at `as_of` (default now) with the window of
LEDGER_INTRODUCTION_WINDOW_DAYS (or `window_days`), so the same `as_of` gives the same
answer; every answer says the ledger position its read model had reached.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, get
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Parameter
from psycopg_pool import AsyncConnectionPool

from domain.projections import as_utc
from services.api.auth import SECURITY, require
from services.api.consistency import MinPosition, consistent, reads
from services.queries import introductions as qi
from services.queries.cursors import IntroductionCursor, InvalidCursor
from services.settings import MAX_INTRODUCTION_WINDOW_DAYS

AsOf = Annotated[
    datetime | None,
    Parameter(
        description="The moment statuses are evaluated at (ISO 8601; no offset means UTC); "
        "default now. Introductions made after it are left out of lists and counts"
    ),
]
WindowDays = Annotated[
    int | None,
    Parameter(
        ge=1,
        le=MAX_INTRODUCTION_WINDOW_DAYS,
        description="Days after an introduction within which a first contact makes a pair "
        "take; default the server's LEDGER_INTRODUCTION_WINDOW_DAYS (30)",
    ),
]


class IntroductionAnswer(qi.AsOf, kw_only=True):
    introduction: qi.IntroductionDetail


class IntroductionPage(qi.AsOf, kw_only=True):
    role: str
    introductions: list[qi.IntroductionOut]
    next_cursor: str | None
    """Pass as `cursor` for older introductions; null when there are none."""


def moment_and_window(
    request: Request[Any, Any, Any], as_of: datetime | None, window_days: int | None
) -> tuple[datetime, timedelta]:
    window: timedelta = request.app.state.introduction_window
    return (
        datetime.now(UTC) if as_of is None else as_utc(as_of),
        window if window_days is None else timedelta(days=window_days),
    )


class IntroductionController(Controller):
    guards = [require("read")]
    security = SECURITY
    tags = ["introductions"]

    @get(
        "/v1/introductions/{introduction_id:uuid}",
        operation_id="GetIntroduction",
        summary="An introduction, its pairs and whether each took",
        opt=reads(qi.READS),
    )
    async def get_introduction(
        self,
        request: Request[Any, Any, Any],
        pool: AsyncConnectionPool,
        introduction_id: UUID,
        as_of: AsOf = None,
        window_days: WindowDays = None,
        min_position: MinPosition = None,
    ) -> IntroductionAnswer:
        """Each pair of introduced members took (they met directly within the window), is
        pending (the window is open) or lapsed; the evidence is their first contact."""
        moment, window = moment_and_window(request, as_of, window_days)
        await consistent(request, min_position)
        async with pool.connection() as conn, conn.transaction():
            at = await qi.snapshot(conn, moment, window)
            found = await qi.introduction(conn, introduction_id, moment, window)
        if found is None:
            raise NotFoundException(
                f"no introduction with id {introduction_id} (or not projected yet: "
                "pass min_position to wait for your write)"
            )
        return IntroductionAnswer(**msgspec.structs.asdict(at), introduction=found)

    @get(
        "/v1/members/{member_id:uuid}/introductions",
        operation_id="GetMemberIntroductions",
        summary="The introductions a member made or was introduced in, newest first",
        opt=reads(qi.MEMBER_READS),
    )
    async def member_introductions(
        self,
        request: Request[Any, Any, Any],
        pool: AsyncConnectionPool,
        member_id: UUID,
        role: Literal["introducer", "introduced"] = "introducer",
        as_of: AsOf = None,
        window_days: WindowDays = None,
        cursor: Annotated[str | None, Parameter(max_length=500)] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        min_position: MinPosition = None,
    ) -> IntroductionPage:
        """A merged member's introductions are listed under the member it was merged into."""
        moment, window = moment_and_window(request, as_of, window_days)
        try:
            after: IntroductionCursor | None = qi.page_cursor(cursor) if cursor else None
        except InvalidCursor as error:
            raise ValidationException(
                f"cursor: {error}",
                extra=[{"key": "cursor", "source": "query", "message": str(error)}],
            ) from error
        await consistent(request, min_position)
        async with pool.connection() as conn, conn.transaction():
            at = await qi.snapshot(conn, moment, window)
            if not await qi.member_known(conn, member_id):
                raise NotFoundException(f"no member with id {member_id}")
            found, next_cursor = await qi.of_member(
                conn, member_id, role, moment, window, limit, after
            )
        return IntroductionPage(
            **msgspec.structs.asdict(at),
            role=role,
            introductions=found,
            next_cursor=next_cursor,
        )
