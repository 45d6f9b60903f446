"""Where each projection stands: version, checkpoint, lag, state, and who runs it."""

from __future__ import annotations

from typing import Any

import msgspec
from psycopg import AsyncConnection

from services.projector.appliers import PROJECTIONS, projection_names
from services.store.feed import readable_head, waiting_seconds

STATUS = """
    SELECT b.name, b.version, b.state, b.position, b.error, b.schema_name,
           l.owner, l.expires_at > now() AS leased
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
    """The `host:pid` holding the projection's lease; over HTTP, shown to admin keys only."""
    rebuild_position: int | None = None
    error: str | None = None


async def projection_statuses(conn: AsyncConnection[Any]) -> list[ProjectionStatus]:
    head = await readable_head(conn)
    cur = await conn.execute(STATUS)
    found = await cur.fetchall()
    # The store knows when events were recorded: each row gains how long its next one waited.
    waiting = await waiting_seconds(conn, [row[3] for row in found])
    rows: dict[tuple[str, str], tuple[Any, ...]] = {
        (row[0], row[2]): (*row, waiting.get(row[3])) for row in found
    }
    return [_status(applier.name, applier.version, head, rows) for applier in PROJECTIONS]


STALLED = """
    SELECT n.name, coalesce(b.position, 0), extract(epoch FROM now() - b.updated_at)
    FROM unnest(%(names)s::text[]) AS n(name)
    LEFT JOIN projection_builds b ON b.name = n.name AND b.state = 'live'
"""


async def stalled_seconds(conn: AsyncConnection[Any]) -> dict[str, float]:
    """Per projection with events left to apply, how long its checkpoint has stood still.

    Counted from the later of the checkpoint's last move and the arrival of the first event
    it has yet to apply: a projection idle for an hour that gets an event is not stalled
    for an hour. Projections with nothing to apply are absent.
    """
    cur = await conn.execute(STALLED, {"names": projection_names()})
    checkpoints = await cur.fetchall()
    waiting = await waiting_seconds(conn, [position for _, position, _ in checkpoints])
    stalled = {}
    for name, position, since_moved in checkpoints:
        if position in waiting:
            seconds = waiting[position]
            if since_moved is not None:
                seconds = min(seconds, float(since_moved))
            stalled[name] = max(0.0, seconds)
    return stalled


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
