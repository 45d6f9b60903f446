"""Read-your-writes: a read given `min_position` waits, bounded, for the projections it reads."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from litestar import Request
from litestar.exceptions import ServiceUnavailableException
from litestar.params import Parameter
from psycopg_pool import AsyncConnectionPool

from domain.limits import MAX_POSITION
from services.api.numbers import whole_number
from services.projector.appliers import projection_names

WAIT_SECONDS = 5.0
POLL_SECONDS = 0.025

MinPosition = Annotated[
    int | None,
    Parameter(
        query="min_position",
        ge=0,
        le=MAX_POSITION,
        required=False,
        description="Wait (up to 5 s) until the projections read here reached this "
        "position: pass the last position a write answered to read your write",
    ),
]

LIVE_POSITION = """
    SELECT coalesce(min(position), -1), count(*)
    FROM projection_builds
    WHERE state = 'live' AND name = ANY (%(names)s)
"""


def reads(*declared: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """An endpoint's `opt`: every projection it reads, the union of its queries' declarations.

    The one list both the `min_position` wait and the tests take, so they cannot drift.
    """
    names = tuple(dict.fromkeys(name for names in declared for name in names))
    known = projection_names()
    if unknown := [name for name in names if name not in known]:
        raise LookupError(f"unknown projection {', '.join(unknown)}; known: {', '.join(known)}")
    return {"reads": names}


async def consistent(
    request: Request[Any, Any, Any],
    pool: AsyncConnectionPool,
    min_position: int | None,
    only: tuple[str, ...] | None = None,
) -> None:
    """Wait for the projections the endpoint declares it reads (its `opt`, see `reads`), or
    for `only` those of them this request reads (a leaderboard reads its metric's)."""
    declared = projections_read(request)
    if only is not None and (undeclared := set(only) - set(declared)):
        raise LookupError(f"{request.url.path} reads undeclared projections {undeclared}")
    await wait_for(
        pool, declared if only is None else only, requested_position(request, min_position)
    )


def projections_read(request: Request[Any, Any, Any]) -> tuple[str, ...]:
    names: tuple[str, ...] = request.route_handler.opt["reads"]
    return names


def requested_position(request: Request[Any, Any, Any], query_value: int | None) -> int | None:
    header = request.headers.get("ledger-min-position")
    if header is None:
        return query_value
    return max(whole_number(header, "Ledger-Min-Position"), query_value or 0)


async def wait_for(
    pool: AsyncConnectionPool,
    names: tuple[str, ...],
    position: int | None,
    timeout: float | None = None,
) -> None:
    """Return once every named projection reached `position`; 503 with Retry-After otherwise."""
    if not position:
        return
    timeout = WAIT_SECONDS if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        async with pool.connection() as conn:
            cur = await conn.execute(LIVE_POSITION, {"names": list(names)}, prepare=True)
            row = await cur.fetchone()
        reached, live = row or (-1, 0)
        if live == len(names) and reached >= position:
            return
        if time.monotonic() >= deadline:
            raise ServiceUnavailableException(
                detail=f"the projections {', '.join(names)} have not reached position {position} "
                f"within {timeout:g} s (they are at {max(reached, 0)}); retry shortly",
                headers={"Retry-After": "1"},
            )
        await asyncio.sleep(POLL_SECONDS)
