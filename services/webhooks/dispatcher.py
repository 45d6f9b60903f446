"""The webhook dispatcher: a job over the feed, like the projections, one lease per subscription.

Each subscription it holds has a task of its own, so a slow or failing receiver holds back
only its own subscription. A task delivers the matching events after the checkpoint in
position order, one at a time, and records each answer; the checkpoint moves only past
events answered 2xx, in the statement that logs them (`delivery.record`), a few at a time
(every `FLUSH_EVERY` deliveries or `FLUSH_SECONDS`): a crash redelivers at most those, and
delivery is at least once. A failed attempt is retried after the next delay of the
schedule (with jitter); after the last one the subscription is disabled with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool

from services.metrics import (
    WEBHOOK_DELIVERIES,
    WEBHOOK_DELIVERY_SECONDS,
    WEBHOOK_LAG,
    WEBHOOK_RETRY_QUEUE,
    WEBHOOKS_DISABLED,
)
from services.privacy.keyring import Keyring
from services.privacy.master import WrongMasterKey
from services.projector import builds
from services.settings import Settings
from services.store.feed import listen, readable_head
from services.store.public import event_out
from services.store.records import RecordedEvent
from services.store.sealed import Sealer
from services.store.subscribed import Matching, read_subscribed
from services.webhooks import delivery
from services.webhooks.delivery import Attempt, Lease, Subscription
from services.webhooks.secrets import Signer, unwrap_secret
from services.webhooks.sending import Outcome, Sender

log = logging.getLogger("community_ledger.webhooks")

BATCH_SIZE = 500
FLUSH_EVERY = 100
FLUSH_SECONDS = 0.25
JITTER = 0.2
"""Each retry waits its scheduled delay times a random factor in [1 - JITTER, 1 + JITTER]."""
POOL_SIZE = 8
STOP_FLUSH_SECONDS = 2.0

_encoder = msgspec.json.Encoder()


class Bell:
    """Wakes every task waiting for new events when an append commits."""

    def __init__(self) -> None:
        self._rung = asyncio.Event()

    def ring(self) -> None:
        self._rung.set()
        self._rung = asyncio.Event()

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._rung.wait()


class Dispatcher:
    """Delivers for every enabled subscription it holds a lease on; see the module's text."""

    def __init__(
        self,
        conninfo: str,
        keyring: Keyring,
        settings: Settings,
        *,
        owner: str | None = None,
        batch_size: int = BATCH_SIZE,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self.conninfo = conninfo
        self.keyring = keyring
        self.sealer = Sealer(keyring)
        self.schedule = settings.webhook_retry_schedule
        self.lease_seconds = settings.webhook_lease_seconds
        # One name per dispatcher, not per process: two in one process (a restart inside
        # the server, a test) must not each take the other's leases for their own.
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.batch_size = batch_size
        self.pool = AsyncConnectionPool(
            conninfo, min_size=1, max_size=pool_size, kwargs={"autocommit": True}, open=False
        )
        self.sender = Sender(
            timeout=settings.webhook_timeout_seconds,
            allow_private=settings.webhooks_allow_private_targets,
        )
        self.bell = Bell()
        self.workers: dict[UUID, Worker] = {}

    @property
    def renew_every(self) -> float:
        return self.lease_seconds / 3

    async def run(self, *, follow: bool = False) -> None:
        """Deliver until every subscription held is caught up or waiting for a retry; with
        `follow`, keep delivering (and take over subscriptions other dispatchers drop)."""
        async with self._open():
            await self._claim(follow)
            while follow or self.workers:
                running = [worker.task for worker in self.workers.values()]
                if running and not follow:
                    await asyncio.wait(running, timeout=self.renew_every)
                else:
                    await asyncio.sleep(self.renew_every)
                try:
                    await self._renew()
                    if follow:
                        await self._claim(follow)
                except psycopg.OperationalError as error:
                    # The database is away: the tasks stop delivering as their leases run
                    # out, and this loop takes them up again once it answers.
                    log.warning(
                        "webhooks: cannot renew leases (%s); retrying", type(error).__name__
                    )

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[None]:
        listener = asyncio.create_task(self._listen())
        try:
            async with self.pool:
                try:
                    yield
                finally:
                    for worker in list(self.workers.values()):
                        worker.task.cancel()
                    for worker in list(self.workers.values()):
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await worker.task
                    await self.sender.close()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener

    async def _listen(self) -> None:
        while True:
            try:
                async for _ in listen(self.conninfo):
                    self.bell.ring()
            except psycopg.OperationalError:
                await asyncio.sleep(1.0)

    async def _claim(self, follow: bool) -> None:
        """Take the lease of every enabled subscription nobody holds, and start delivering."""
        async with self.pool.connection() as conn:
            enabled = await delivery.enabled_subscriptions(conn)
            for webhook_id in enabled:
                if webhook_id in self.workers:
                    continue
                name = delivery.lease_name(webhook_id)
                taken_at = time.monotonic()
                token = await builds.take_lease(conn, name, self.owner, seconds=self.lease_seconds)
                if token is None:
                    continue
                lease = Lease(name=name, owner=self.owner, token=token)
                worker = Worker(self, webhook_id, lease, taken_at, follow)
                self.workers[webhook_id] = worker
                worker.task.add_done_callback(functools.partial(self._finished, worker))

    async def _renew(self) -> None:
        """Renew the leases held; a task whose lease went to another dispatcher stops."""
        async with self.pool.connection() as conn:
            for worker in list(self.workers.values()):
                if worker.task.done():
                    continue  # it gave its lease back as it ended: taking it again would keep it
                renewed_at = time.monotonic()
                token = await builds.take_lease(
                    conn, worker.lease.name, self.owner, seconds=self.lease_seconds
                )
                if token == worker.lease.token:
                    worker.renewed_at = renewed_at
                else:
                    log.warning("webhook %s: lease lost to another dispatcher", worker.webhook_id)
                    worker.task.cancel()

    def _finished(self, worker: Worker, _: object) -> None:
        if self.workers.get(worker.webhook_id) is worker:
            del self.workers[worker.webhook_id]
        if worker.lagged:
            WEBHOOK_LAG.remove(str(worker.webhook_id))
        if not worker.task.cancelled() and (error := worker.task.exception()) is not None:
            log.warning("webhook %s: delivery stopped on %r", worker.webhook_id, error)


class Worker:
    """One subscription's deliveries, in position order, while its lease is held."""

    def __init__(
        self, dispatcher: Dispatcher, webhook_id: UUID, lease: Lease, taken_at: float, follow: bool
    ) -> None:
        self.dispatcher = dispatcher
        self.webhook_id = webhook_id
        self.lease = lease
        self.renewed_at = taken_at
        self.follow = follow
        self.lagged = False
        self._signer: tuple[tuple[bytes, bytes | None, datetime | None], Signer] | None = None
        self.task = asyncio.create_task(self._run(), name=f"webhook {webhook_id}")

    def lease_left(self) -> float:
        """Seconds the lease surely has (the database's expiry is later than this)."""
        return self.renewed_at + self.dispatcher.lease_seconds - time.monotonic()

    async def _run(self) -> None:
        try:
            while await self._step():
                pass
        finally:
            with contextlib.suppress(Exception):
                await self.dispatcher.sender.forget(self.webhook_id)
                async with self.dispatcher.pool.connection() as conn:
                    await builds.release_lease(conn, self.lease.name, self.lease.owner)

    async def _step(self) -> bool:
        """One round: wait, or deliver a batch; False when this task is done."""
        d = self.dispatcher
        async with d.pool.connection() as conn:
            subscription = await delivery.load_subscription(conn, self.webhook_id)
            if subscription is None or not subscription.enabled:
                return False
            head = await readable_head(conn)
        WEBHOOK_LAG.labels(str(self.webhook_id)).set(max(0, head - subscription.position))
        self.lagged = True
        if subscription.next_attempt_at is not None:
            wait = (subscription.next_attempt_at - datetime.now(UTC)).total_seconds()
            if wait > 0:
                if not self.follow:
                    return False
                WEBHOOK_RETRY_QUEUE.inc()
                try:
                    await asyncio.sleep(min(wait, d.renew_every))
                finally:
                    WEBHOOK_RETRY_QUEUE.dec()
                return True
        if subscription.position >= head:
            if not self.follow:
                return False
            await d.bell.wait(d.renew_every)
            return True
        async with d.pool.connection() as conn:
            matching = await read_subscribed(
                conn,
                d.sealer,
                after=subscription.position,
                head=head,
                limit=d.batch_size,
                types=subscription.event_types,
                member_id=subscription.member_id,
                space=subscription.space,
            )
        return await self._deliver(subscription, matching)

    async def _deliver(self, subscription: Subscription, matching: Matching) -> bool:
        """Deliver the batch in order; False when the lease is gone.

        Attempts are written a few at a time (`_flush`), failed ones too: the state in the
        database is the one after the last write, and a crash repeats what came after it.
        A failed event is retried here, the batch kept, while its next delay is short; a
        longer delay, and a write that finds the subscription changed, end the batch.
        """
        signer = self._signer_for(subscription)
        if signer is None:
            # Not the receiver's fault: no attempt is recorded, and the subscription is left
            # to a dispatcher holding the current master key (this one gives up its lease).
            return False
        progress = _Progress(subscription)
        try:
            return await self._deliver_batch(subscription, matching, signer, progress)
        except asyncio.CancelledError:
            # Stopped (a shutdown, a lease lost): write what was answered, so a clean stop
            # repeats at most the delivery in flight. The lease still fences this write.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOP_FLUSH_SECONDS):
                    await self._flush(progress)
            raise

    async def _deliver_batch(
        self,
        subscription: Subscription,
        matching: Matching,
        signer: Signer,
        progress: _Progress,
    ) -> bool:
        events = matching.events
        index = 0
        while index < len(events):
            record = events[index]
            if self.lease_left() <= 0:
                return False
            outcome = await self._send(subscription, signer, record)
            row = Attempt(
                position=record.position,
                event_id=record.event_id,
                attempt=progress.failures + 1,
                status_code=outcome.status_code,
                duration_ms=outcome.duration_ms,
                error=outcome.error,
                attempted_at=datetime.now(UTC),
            )
            if outcome.delivered:
                progress.delivered(row)
                index += 1
                if progress.due() and not await self._flush(progress):
                    return self._leased
                continue
            delay = self._failed(progress, row)
            if delay is None or delay > self.dispatcher.renew_every:
                await self._flush(progress)
                return self._leased
            if progress.due() and not await self._flush(progress):
                return self._leased
            await asyncio.sleep(delay)
        if progress.failures == 0:
            progress.checkpoint = max(progress.checkpoint, matching.scanned_to)
        await self._flush(progress)
        return self._leased

    async def _send(
        self, subscription: Subscription, signer: Signer, record: RecordedEvent
    ) -> Outcome:
        body = _encoder.encode(event_out(record))
        message_id = str(record.event_id)
        now = datetime.now(UTC)
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(message_id, now, body.decode()),
        }
        outcome = await self.dispatcher.sender.send(
            self.webhook_id, subscription.url, headers, body, within=self.lease_left()
        )
        WEBHOOK_DELIVERIES.labels(outcome.outcome).inc()
        WEBHOOK_DELIVERY_SECONDS.observe(outcome.duration_ms / 1000)
        return outcome

    def _failed(self, progress: _Progress, row: Attempt) -> float | None:
        """Note a failed attempt; answer the seconds until the retry, or None when it was
        the last attempt (the next write disables the subscription)."""
        failures = progress.failures + 1
        schedule = self.dispatcher.schedule
        if failures > len(schedule):
            reason = f"{failures} attempts failed at position {row.position}; last: {row.error}"
            progress.failed(row, failures, None, disable=reason)
            return None
        delay = schedule[failures - 1] * random.uniform(1 - JITTER, 1 + JITTER)
        next_attempt_at = row.attempted_at + timedelta(seconds=delay)
        progress.failed(
            msgspec.structs.replace(row, next_attempt_at=next_attempt_at), failures, next_attempt_at
        )
        return (next_attempt_at - datetime.now(UTC)).total_seconds()

    async def _flush(self, progress: _Progress) -> bool:
        """Write what `progress` holds; False when the subscription changed, or is gone."""
        subscription = progress.subscription
        if not progress.attempts and progress.checkpoint == subscription.position:
            return True
        try:
            async with self.dispatcher.pool.connection() as conn:
                recorded = await delivery.record(
                    conn,
                    self.lease,
                    subscription,
                    progress.attempts,
                    to=progress.checkpoint,
                    failures=progress.failures,
                    next_attempt_at=progress.next_attempt_at,
                    disabled_reason=progress.disable,
                )
        except psycopg.errors.ForeignKeyViolation:
            return False  # deleted while delivering: the next round finds it gone
        self._leased = recorded.leased
        if recorded.moved and progress.disable is not None:
            log.warning(
                "webhook.disabled webhook_id=%s reason=%s", self.webhook_id, progress.disable
            )
            WEBHOOKS_DISABLED.inc()
        progress.flushed()
        return recorded.moved

    _leased = True
    """False once a write found the lease taken over: the task stops."""

    def _signer_for(self, subscription: Subscription) -> Signer | None:
        """The subscription's signer, unwrapped once per secret (a rotation makes a new one);
        it signs with the previous secret too while the rotation's grace period lasts."""
        stored = (
            subscription.secret_wrapped,
            subscription.previous_secret_wrapped,
            subscription.previous_valid_until,
        )
        if self._signer is not None and self._signer[0] == stored:
            return self._signer[1]
        master = self.dispatcher.keyring.master
        try:
            secret = unwrap_secret(master, subscription.secret_wrapped, subscription.kek_id)
            previous = (
                unwrap_secret(
                    master, subscription.previous_secret_wrapped, subscription.previous_kek_id
                )
                if subscription.previous_secret_wrapped is not None
                and subscription.previous_kek_id is not None
                else None
            )
        except WrongMasterKey:
            log.error(
                "webhook %s: its signing secret is wrapped by another master key than this "
                "process's (restart it with the current one); not delivering",
                self.webhook_id,
            )
            return None
        self._signer = (stored, Signer(secret, previous, subscription.previous_valid_until))
        return self._signer[1]


async def run_in_process(conninfo: str, keyring: Keyring, settings: Settings) -> None:
    """The dispatcher inside the server process (as the projector is), restarted on failure."""
    while True:
        try:
            await Dispatcher(conninfo, keyring, settings).run(follow=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the in-process webhook dispatcher failed; restarting it in 5 s")
            await asyncio.sleep(5)


class _Progress:
    """A batch's attempts not yet written, and the state they lead to."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        """As last written (the compare-and-set's expectation)."""
        self.attempts: list[Attempt] = []
        self.checkpoint = subscription.position
        self.failures = subscription.attempts
        self.next_attempt_at: datetime | None = subscription.next_attempt_at
        self.disable: str | None = None
        self._since = time.monotonic()

    def delivered(self, row: Attempt) -> None:
        self.attempts.append(row)
        self.checkpoint, self.failures, self.next_attempt_at = row.position, 0, None

    def failed(
        self,
        row: Attempt,
        failures: int,
        next_attempt_at: datetime | None,
        *,
        disable: str | None = None,
    ) -> None:
        self.attempts.append(row)
        self.failures, self.next_attempt_at, self.disable = failures, next_attempt_at, disable

    def due(self) -> bool:
        return len(self.attempts) >= FLUSH_EVERY or time.monotonic() - self._since >= FLUSH_SECONDS

    def flushed(self) -> None:
        self.attempts, self._since = [], time.monotonic()
