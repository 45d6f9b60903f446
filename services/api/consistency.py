"""Read-your-writes: a read given `min_position` waits, bounded, for the projections it reads.

The wait polls nothing: every waiter in the process shares one listener and one read of
the checkpoints per projector notice (services/api/watch.py); past LEDGER_MAX_WAITERS
waiting at once, a read answers 503 at once.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.exceptions import ServiceUnavailableException
from litestar.params import Parameter

from domain.limits import MAX_POSITION
from services.api.numbers import whole_number
from services.api.watch import ProjectionWatch, TooManyWaiters
from services.projector.appliers import projection_names

WAIT_SECONDS = 5.0

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
    min_position: int | None,
    only: tuple[str, ...] | None = None,
) -> None:
    """Wait for the projections the endpoint declares it reads (its `opt`, see `reads`), or
    for `only` those of them this request reads (a leaderboard reads its metric's)."""
    declared = projections_read(request)
    if only is not None and (undeclared := set(only) - set(declared)):
        raise LookupError(f"{request.url.path} reads undeclared projections {undeclared}")
    await wait_for(
        request.app.state.watch,
        declared if only is None else only,
        requested_position(request, min_position),
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
    watch: ProjectionWatch,
    names: tuple[str, ...],
    position: int | None,
    timeout: float | None = None,
) -> None:
    """Return once every named projection reached `position`; 503 with Retry-After otherwise."""
    if not position:
        return
    timeout = WAIT_SECONDS if timeout is None else timeout
    try:
        await watch.wait(names, position, timeout)
    except TooManyWaiters:
        raise ServiceUnavailableException(
            detail=f"more than {watch.max_waiters} requests are waiting for projections in "
            "this server; retry shortly, or read without min_position",
            headers={"Retry-After": "1"},
        ) from None
    except TimeoutError:
        reached = min((watch.live.get(name, 0) for name in names), default=0)
        raise ServiceUnavailableException(
            detail=f"the projections {', '.join(names)} have not reached position {position} "
            f"within {timeout:g} s (they are at {max(reached, 0)}); retry shortly",
            headers={"Retry-After": "1"},
        ) from None
