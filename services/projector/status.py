"""Where each projection stands: version, checkpoint, lag, state, and who runs it."""

from __future__ import annotations

from typing import Any

import msgspec
from psycopg import AsyncConnection

from services.projector.appliers import PROJECTIONS, projection_names
from services.store.ledger import readable_head

STATUS = """
    SELECT b.name, b.version, b.state, b.position, b.error, b.schema_name,
           l.owner, l.expires_at > now() AS leased,
           (SELECT extract(epoch FROM now() - e.recorded_at)
              FROM events e WHERE e.position > b.position
              ORDER BY e.position LIMIT 1) AS waiting_seconds
    FROM projection_builds b
    LEFT JOIN projection_leases l ON l.name = b.name
    WHERE b.state IN ('live', 'building')
"""


class ProjectionStatus(msgspec.Struct, kw_only=True):
    name: str
    version: int
    """The version the code has; a live build of another version is rebuilt on the next run."""
    live_version: int | None
    checkpoint: int
    head: int
    lag_events: int
    lag_seconds: float
    state: str
    """never run, caught up, behind, rebuilding, or failed"""
    owner: str | None
    rebuild_position: int | None = None
    error: str | None = None


async def projection_statuses(conn: AsyncConnection[Any]) -> list[ProjectionStatus]:
    head = await readable_head(conn)
    cur = await conn.execute(STATUS)
    rows: dict[tuple[str, str], tuple[Any, ...]] = {
        (row[0], row[2]): row for row in await cur.fetchall()
    }
    return [_status(applier.name, applier.version, head, rows) for applier in PROJECTIONS]


STALLED = """
    SELECT n.name,
           extract(epoch FROM now() - greatest(b.updated_at, e.recorded_at))
    FROM unnest(%(names)s::text[]) AS n(name)
    LEFT JOIN projection_builds b ON b.name = n.name AND b.state = 'live'
    CROSS JOIN LATERAL (
        SELECT recorded_at FROM events
        WHERE position > coalesce(b.position, 0)
        ORDER BY position
        LIMIT 1
    ) e
"""


async def stalled_seconds(conn: AsyncConnection[Any]) -> dict[str, float]:
    """Per projection with events left to apply, how long its checkpoint has stood still.

    Counted from the later of the checkpoint's last move and the arrival of the first event
    it has yet to apply: a projection idle for an hour that gets an event is not stalled
    for an hour. Projections with nothing to apply are absent.
    """
    cur = await conn.execute(STALLED, {"names": projection_names()})
    return {name: max(0.0, float(seconds)) for name, seconds in await cur.fetchall()}


def _status(
    name: str, version: int, head: int, rows: dict[tuple[str, str], tuple[Any, ...]]
) -> ProjectionStatus:
    live, building = rows.get((name, "live")), rows.get((name, "building"))
    current = live or building
    checkpoint = int(live[3]) if live else 0
    error = next((row[4] for row in (live, building) if row and row[4]), None)
    if current is None:
        state = "never run"
    elif error:
        state = "failed"
    elif building is not None or live is None or live[1] != version:
        state = "rebuilding"
    else:
        state = "caught up" if checkpoint >= head else "behind"
    owner = current[6] if current is not None and current[7] else None
    return ProjectionStatus(
        name=name,
        version=version,
        live_version=int(live[1]) if live else None,
        checkpoint=checkpoint,
        head=head,
        lag_events=head - checkpoint,
        lag_seconds=round(float(live[8] or 0.0), 3) if live else 0.0,
        state=state,
        owner=owner,
        rebuild_position=int(building[3]) if building else None,
        error=error,
    )
