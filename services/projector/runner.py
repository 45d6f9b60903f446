"""Runs projections as jobs: catch up, follow, rebuild and swap, one runner per projection.

Each batch is read from the feed once, decoded once, and applied to every build that
needs it, each build in its own transaction together with its checkpoint, so killing
the process at any moment never double-counts or skips. Each projection writes on a
connection of its own, all at once, while the next batch is read: PostgreSQL's work for
one overlaps the folds of the others (docs/projections.md, "Speed").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import traceback
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
import psycopg
from psycopg import AsyncConnection, sql

from domain.errors import LedgerError
from domain.projections import Entry
from services.privacy.keyring import Keyring
from services.privacy.master import load_master_key
from services.projector import builds
from services.projector.appliers import Applier, make_appliers
from services.projector.builds import Build, LostLease
from services.projector.collector import fewer_collections
from services.projector.feed import (
    FeedReader,
    Wakeups,
    decode_error,
    decode_until_poison,
    sleep_until,
)
from services.projector.progress import Progress
from services.settings import load_settings
from services.store.records import FeedRecord
from services.store.sealed import Sealer

log = logging.getLogger("community_ledger.projector")

BATCH_SIZE = 20_000
POLL_SECONDS = 5.0
ANALYZE_AFTER = 10_000
"""A build caught up over at least this many events has its tables analyzed at once."""


class ProjectionFailed(Exception):
    """A projection stopped on an event it cannot apply; the others go on."""


class Runner:
    """Works on the projections it holds a lease for; waits for the others."""

    def __init__(
        self,
        conninfo: str,
        names: Sequence[str] = (),
        *,
        rebuild: Sequence[str] = (),
        owner: str | None = None,
        batch_size: int = BATCH_SIZE,
        progress: Progress | None = None,
        appliers: Sequence[Applier] | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        # Appliers remember rows between batches: each runner has its own set.
        every = make_appliers() if appliers is None else appliers
        known = {applier.name: applier for applier in every}
        if unknown := [name for name in (*names, *rebuild) if name not in known]:
            raise LookupError(f"unknown projection {', '.join(unknown)}; known: {', '.join(known)}")
        self.conninfo = conninfo
        self.keyring = keyring
        """The process's data keys, shared with the API when both run in one process."""
        self.appliers = [known[name] for name in (names or known)]
        self.rebuild_requested = set(rebuild)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.batch_size = batch_size
        self.progress = progress or Progress.for_terminal()
        self.tokens: dict[str, int] = {}
        self.builds: dict[str, list[Build]] = {}
        self.failures: list[str] = []
        self._renewed_at = 0.0
        self._indexed: set[int] = set()
        """Builds whose indexes this runner made (they are idempotent, but take a lock)."""
        self._first_seen_at: dict[int, int] = {}
        """Each build's position when this runner first fed it."""
        self._connections: dict[str, AsyncConnection[Any]] = {}

    @contextlib.asynccontextmanager
    async def _keys(self) -> AsyncIterator[Keyring]:
        """The keyring given, or one of the runner's own (a projector run on its own)."""
        if self.keyring is not None:
            yield self.keyring
            return
        async with await AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
            keyring = await Keyring.open(conn, load_master_key(load_settings()))
        async with keyring.listening(self.conninfo):
            yield keyring

    async def run(self, *, follow: bool = False, wait_seconds: float = 15.0) -> list[str]:
        """Catch up (and with `follow`, keep up); answer the failures, if any."""
        async with (
            self._keys() as keyring,
            await AsyncConnection.connect(self.conninfo, autocommit=True) as conn,
        ):
            ledger = FeedReader(conn, self.batch_size, Sealer(keyring))
            wakeups = Wakeups(self.conninfo) if follow else None
            started = time.monotonic()
            try:
                while True:
                    await self._hold_leases(conn)
                    head = await ledger.head()
                    moved = await self._step(conn, ledger, head)
                    if not moved:
                        await self._when_idle()
                    waiting = [a.name for a in self._active() if a.name not in self.tokens]
                    if not moved and not follow:
                        if not waiting:
                            break
                        if time.monotonic() - started > wait_seconds:
                            self._report_busy(conn, waiting)
                            break
                    if not moved:
                        await sleep_until(wakeups, 1.0 if waiting else POLL_SECONDS)
            finally:
                self.progress.close()
                await ledger.close()
                await self._close()
                for name in list(self.tokens):
                    await builds.release_lease(conn, name, self.owner)
                if wakeups:
                    await wakeups.close()
        return self.failures

    def _active(self) -> list[Applier]:
        failed = {failure.split(":", 1)[0] for failure in self.failures}
        return [applier for applier in self.appliers if applier.name not in failed]

    async def _hold_leases(self, conn: AsyncConnection[Any]) -> None:
        if self.tokens and time.monotonic() - self._renewed_at < builds.LEASE_SECONDS / 3:
            return
        for applier in self._active():
            token = await builds.take_lease(conn, applier.name, self.owner)
            if token is None:
                self.tokens.pop(applier.name, None)
                self.builds.pop(applier.name, None)
                continue
            if self.tokens.get(applier.name) != token:
                self.tokens[applier.name] = token
                self.builds[applier.name] = await self._prepare(conn, applier)
        self._renewed_at = time.monotonic()

    async def _prepare(self, conn: AsyncConnection[Any], applier: Applier) -> list[Build]:
        """The builds to feed: the live one, plus a fresh one when a rebuild is due."""
        current = await builds.builds_of(conn, applier.name)
        live, building = current.get("live"), current.get("building")
        due = applier.name in self.rebuild_requested or live is None
        due = due or (live is not None and live.version != applier.version)
        if due and (
            building is None
            or building.version != applier.version
            or applier.name in self.rebuild_requested
        ):
            building = await builds.start_build(
                conn, applier.name, applier.version, applier.create_tables
            )
            log.info(
                "%s: rebuilding v%s into %s", applier.name, applier.version, building.schema_name
            )
        elif building is not None and building.version == applier.version:
            # A rebuild asked for over HTTP is only a row until a runner makes its tables.
            await builds.materialize(conn, building, applier.create_tables)
        self.rebuild_requested.discard(applier.name)
        feeding = [b for b in (live, building) if b is not None and b.version == applier.version]
        for build in feeding:
            if build.error:
                self.failures.append(f"{applier.name}: {build.error}")
                return []
        return feeding

    async def _step(self, conn: AsyncConnection[Any], ledger: FeedReader, head: int) -> bool:
        """Apply one batch to every build behind the head; answer whether anything moved."""
        feeding = [
            (applier, build)
            for applier in self._active()
            for build in self.builds.get(applier.name, [])
            if applier.name in self.tokens
        ]
        for applier, build in feeding:
            first_seen_at = self._first_seen_at.setdefault(build.build_id, build.position)
            if build.position >= head and build.build_id not in self._indexed:
                # Made once, now, rather than kept up row by row through the catch-up: for a
                # rebuild, and for the empty live build `db upgrade` makes (its first catch-up).
                await applier.create_indexes(conn, build.schema_name)
                if head - first_seen_at >= ANALYZE_AFTER:
                    # Statistics too: tables filled in one go have none until autovacuum
                    # comes round, and the first reads after a swap would plan for the
                    # tables' old sizes (a hash join over every row, not a probe each).
                    for table in applier.tables:
                        await conn.execute(
                            sql.SQL("ANALYZE {}").format(sql.Identifier(build.schema_name, table))
                        )
                self._indexed.add(build.build_id)
            if build.state == "building" and build.position >= head:
                await builds.swap_in(conn, build, applier.tables)
                log.info("%s: %s is live at position %s", applier.name, build.schema_name, head)
        behind = [(a, b) for a, b in feeding if b.position < head]
        self.progress.update({f"{a.name} ({b.state})": (b.position, head) for a, b in feeding})
        if not behind:
            return False
        with fewer_collections():
            await self._apply_batch(ledger, behind)
        return True

    async def _apply_batch(self, ledger: FeedReader, behind: list[tuple[Applier, Build]]) -> None:
        records = await ledger.batch(min(build.position for _, build in behind))
        entries = decode_until_poison(records)
        poison = records[len(entries)] if len(entries) < len(records) else None
        async with asyncio.TaskGroup() as group:
            for applier in dict.fromkeys(applier for applier, _ in behind):
                own = [build for a, build in behind if a is applier]
                group.create_task(self._feed(applier, own, entries, records, poison))

    async def _feed(
        self,
        applier: Applier,
        feeding: list[Build],
        entries: list[Entry],
        records: list[FeedRecord],
        poison: FeedRecord | None,
    ) -> None:
        """Apply the batch to this projection's builds, on the projection's own connection."""
        conn = await self._connection(applier.name)
        for build in feeding:
            batch = [entry for entry in entries if entry.position > build.position]
            if batch:
                await self._apply(conn, applier, build, batch, records)
            elif poison is not None and poison.position > build.position:
                await self._stop(conn, applier, build, poison, decode_error(poison))

    async def _connection(self, name: str) -> AsyncConnection[Any]:
        if (conn := self._connections.get(name)) is None or conn.closed:
            conn = await AsyncConnection.connect(self.conninfo, autocommit=True)
            self._connections[name] = conn
        return conn

    async def _close(self) -> None:
        for conn in self._connections.values():
            await conn.close()
        self._connections.clear()

    async def _apply(
        self,
        conn: AsyncConnection[Any],
        applier: Applier,
        build: Build,
        batch: list[Entry],
        records: list[FeedRecord],
    ) -> None:
        try:
            await self._apply_in_transaction(conn, applier, build, batch)
        except LostLease:
            log.warning("%s: lease lost to another runner; stepping back", applier.name)
            self.tokens.pop(applier.name, None)
            self.builds.pop(applier.name, None)
        except (psycopg.OperationalError, asyncio.CancelledError):
            raise
        except Exception:
            await self._find_poison(conn, applier, build, batch, records)

    async def _apply_in_transaction(
        self, conn: AsyncConnection[Any], applier: Applier, build: Build, batch: list[Entry]
    ) -> None:
        async with conn.transaction():
            # The checkpoint moves in the same transaction as the read-model writes:
            # a crash loses both or neither, so a restart neither re-applies nor skips.
            await builds.advance(
                conn, build, batch[-1].position, self.owner, self.tokens[applier.name]
            )
            await applier.apply(conn, build.schema_name, batch, after=build.position)
        build.position = batch[-1].position

    async def _find_poison(
        self,
        conn: AsyncConnection[Any],
        applier: Applier,
        build: Build,
        batch: list[Entry],
        records: list[FeedRecord],
    ) -> None:
        """Apply one event at a time up to the one that fails, and stop there, naming it."""
        by_position = {record.position: record for record in records}
        for entry in batch:
            try:
                await self._apply_in_transaction(conn, applier, build, [entry])
            except LostLease:
                self.tokens.pop(applier.name, None)
                return
            except Exception as error:
                await self._stop(conn, applier, build, by_position[entry.position], error)
                return

    async def _stop(
        self,
        conn: AsyncConnection[Any],
        applier: Applier,
        build: Build,
        record: FeedRecord,
        error: BaseException,
    ) -> None:
        reason = (
            f"stopped at position {record.position} ({record.type}, event {record.event_id}): "
            f"{type(error).__name__}: {_said(error)}"
        )
        # The frames, not the messages: the reason is logged and shown to every read key.
        log.error(
            "%s: %s\n%s", applier.name, reason, "".join(traceback.format_tb(error.__traceback__))
        )
        await builds.fail(conn, build, reason)
        self.failures.append(f"{applier.name}: {reason}")

    async def _when_idle(self) -> None:
        """Caught up: the jobs some projections run over whole read models (a score's graph
        job), on their live builds, by the runner holding their lease."""
        for applier in self._active():
            job = getattr(applier, "when_idle", None)
            if job is None or applier.name not in self.tokens:
                continue
            for build in self.builds.get(applier.name, []):
                if build.state != "live":
                    continue
                try:
                    if await job(await self._connection(applier.name), build.schema_name):
                        log.info("%s: graph job done in %s", applier.name, build.schema_name)
                except (psycopg.OperationalError, asyncio.CancelledError):
                    raise
                except Exception as error:  # the job is retried at its next turn
                    log.error("%s: graph job failed: %s", applier.name, type(error).__name__)

    def _report_busy(self, conn: AsyncConnection[Any], waiting: list[str]) -> None:
        for name in waiting:
            log.warning("%s: another runner holds it; left to that runner", name)


def _said(error: BaseException) -> str:
    """What of an error may be logged and shown: the kinds whose messages name fields,
    types and positions. Others may quote an event's values (a constraint's DETAIL quotes
    the row), so they are named by type only."""
    if isinstance(error, psycopg.Error):
        return error.diag.message_primary or "(no message)"
    if isinstance(error, msgspec.ValidationError | msgspec.DecodeError | LedgerError):
        return str(error)
    return "(message withheld: it may quote personal data; the log has the frames)"
