"""Empty live read models from `db upgrade` on, so a fresh deployment serves empty reads.

Without them the API would read relations that do not exist until the projector's
first catch-up swaps them in: a 500 on every read of a freshly migrated database.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from services.projector import builds
from services.projector.appliers import Applier, make_appliers


async def make_live_builds(
    conn: AsyncConnection[Any], appliers: Sequence[Applier] | None = None
) -> list[str]:
    """Give each projection that has no live build an empty one at position 0; answer their names.

    Each under the projection's lease, as a runner works: a projection a runner holds
    now is left to that runner, which is making its live build. The runner catches an
    empty live build up in place; a version bump or `projections rebuild` still builds
    beside it and swaps, as for any live build.
    """
    owner = f"db upgrade:{socket.gethostname()}:{os.getpid()}"
    made = []
    for applier in make_appliers() if appliers is None else appliers:
        if "live" in await builds.builds_of(conn, applier.name):
            continue
        if await builds.take_lease(conn, applier.name, owner) is None:
            continue
        try:
            if "live" not in await builds.builds_of(conn, applier.name):
                await builds.start_live(
                    conn, applier.name, applier.version, applier.create_tables, applier.tables
                )
                made.append(applier.name)
        finally:
            await builds.release_lease(conn, applier.name, owner)
    return made
