"""The live event stream's fan-out: one listener and one read per append for all streams.

One LISTEN connection per process hears the appends' NOTIFY (services/store/feed.py).
On each notice the hub reads the new events once, through the pool and under the feed's
horizon (`Ledger.read_feed`, as GET /v1/events does), encodes each once as an SSE message,
and hands the messages to every subscribed stream in memory. A stream holds no database
connection while idle, and with no stream open the hub reads nothing.

The hub also keeps its last `capacity` messages: a stream that starts or resumes within
them (a consumer reconnecting with Last-Event-ID, or a new one at the head) is handed
them and joins the live tail without reading the feed. Without this, every stream of a
reconnecting crowd read and opened the same recent events itself, and the streams
already live waited behind those reads.

Each subscription has a bounded queue: a stream that falls `queue_events` behind (its
client reads too slowly) is dropped by the hub at once, so memory stays bounded whatever
the client does; the stream then tells its client where to resume (services/api/event_stream.py).
A notice can be lost (an appending process that dies between commit and NOTIFY): while
anyone listens, the hub also reads every POLL_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from typing import NamedTuple

import msgspec

from services.store.feed import listen
from services.store.ledger import Ledger
from services.store.public import event_out
from services.store.records import RecordedEvent

log = logging.getLogger("community_ledger.api")

PAGE = 500
POLL_SECONDS = 1.0
RECONNECT_SECONDS = 1.0

_HUBS: weakref.WeakSet[StreamHub] = weakref.WeakSet()


class TooManyStreams(Exception):
    """This process already serves as many streams as it allows."""


class Message(NamedTuple):
    """One event as an SSE message, encoded once for every stream that sends it."""

    position: int
    type: str
    tags: frozenset[str]
    text: bytes


def message(record: RecordedEvent) -> Message:
    # `data:` is the feed's JSON on one line: JSON escapes every newline inside strings.
    data = msgspec.json.encode(event_out(record))
    text = b"id: %d\nevent: %s\ndata: %s\n\n" % (record.position, record.type.encode(), data)
    return Message(record.position, record.type, frozenset(record.tags), text)


class Wanted(msgspec.Struct, frozen=True, kw_only=True):
    """Which events a stream sends: all of the given kinds (None: any)."""

    types: frozenset[str] | None = None
    member_tags: frozenset[str] | None = None
    """`member:<id>` of the member and of those merged into it: events naming any of them."""
    space_tag: str | None = None

    @property
    def everything(self) -> bool:
        return self.types is None and self.member_tags is None and self.space_tag is None

    def matches(self, type_: str, tags: Collection[str]) -> bool:
        return (
            (self.types is None or type_ in self.types)
            and (self.member_tags is None or not self.member_tags.isdisjoint(tags))
            and (self.space_tag is None or self.space_tag in tags)
        )


class Chunk(NamedTuple):
    """Consecutive messages of one read for one stream, joined once: what a stream writes
    per wakeup, whatever the number of events in it."""

    first: int
    last: int
    messages: Sequence[Message]
    text: bytes


def chunk(messages: Sequence[Message]) -> Chunk:
    return Chunk(
        messages[0].position, messages[-1].position, messages, b"".join(m.text for m in messages)
    )


class Subscription:
    """A stream's place in the hub: the messages it has still to send, at most `capacity`."""

    def __init__(self, wanted: Wanted, capacity: int, covered: int) -> None:
        self.wanted = wanted
        self.capacity = capacity
        self.covered = covered
        """Every position up to here has been offered (sent to the queue or filtered out)."""
        self.queue: deque[Chunk] = deque()
        self.queued = 0
        """Messages in `queue`."""
        self.overflowed = False
        self.changed = asyncio.Event()

    def offer(self, page: Chunk, covered: int, joined: dict[Wanted, Chunk | None]) -> bool:
        """Queue the matching messages of `page`; False (and the queue dropped) when it would
        overflow. `joined` keeps, for one page, the chunk of each filter already built.

        A stream that has taken everything always gets the next read whole, however
        large (at most PAGE events): only a backlog it has not taken counts against it."""
        matching = self.matching(page, joined)
        count = len(matching.messages) if matching is not None else 0
        if self.queue and self.queued + count > self.capacity:
            self.overflowed = True
            self.queue.clear()
            self.queued = 0
        else:
            if matching is not None:
                self.queue.append(matching)
                self.queued += count
            self.covered = covered
        self.changed.set()
        return not self.overflowed

    def matching(self, page: Chunk, joined: dict[Wanted, Chunk | None]) -> Chunk | None:
        if self.wanted.everything:
            return page
        if self.wanted not in joined:
            found = [m for m in page.messages if self.wanted.matches(m.type, m.tags)]
            joined[self.wanted] = chunk(found) if found else None
        return joined[self.wanted]

    def take(self) -> list[Chunk]:
        taken = list(self.queue)
        self.queue.clear()
        self.queued = 0
        self.changed.clear()
        return taken


class StreamHub:
    """One per API process, started in the lifespan beside the projections' watch."""

    def __init__(
        self,
        ledger: Ledger,
        conninfo: str,
        capacity: int,
        max_streams: int,
        gather_seconds: float = 0.01,
    ) -> None:
        self.ledger = ledger
        self.gather_seconds = gather_seconds
        self.conninfo = conninfo
        self.capacity = capacity
        self.max_streams = max_streams
        self.streams = 0
        """Streams open now (catching up or subscribed): what `max_streams` bounds."""
        self.subscriptions: set[Subscription] = set()
        self.tail = 0
        """Every event up to here has been offered to the subscriptions."""
        self.recent: deque[Message] = deque()
        """The last `capacity` messages read, oldest first."""
        self.recent_floor = 0
        """Every event after this position, up to `tail`, is in `recent`."""
        self.reads = 0
        """Feed reads so far for the live tail: the cost of all the streams together."""
        self.catch_up_reads = 0
        """Feed reads so far by streams catching up on their own (older than `recent`)."""
        self.listening = False
        self.stopping = False
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        _HUBS.add(self)
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._follow())]

    def stop(self) -> None:
        """End every stream (each tells its client where to resume); no new ones start."""
        self.stopping = True
        self._stopped.set()
        for subscription in self.subscriptions:
            subscription.changed.set()

    async def close(self, within: float = 5.0) -> None:
        """Stop, and never hold the server's shutdown longer than `within` seconds."""
        self.stop()
        _HUBS.discard(self)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=within)
            for task in pending:
                log.warning("the event stream hub did not stop: %s", task.get_stack(limit=5))
        self._tasks = []

    async def stopped(self) -> None:
        await self._stopped.wait()

    def admit(self) -> None:
        """TooManyStreams when this process serves `max_streams` already, or is stopping."""
        if self.stopping or self.streams >= self.max_streams:
            raise TooManyStreams(self.max_streams)

    def open_stream(self) -> None:
        self.streams += 1

    def close_stream(self, subscription: Subscription | None) -> None:
        self.streams -= 1
        if subscription is not None:
            self.subscriptions.discard(subscription)

    async def subscribe(self, wanted: Wanted, after: int) -> Subscription | None:
        """A subscription that will offer every event after `after`, or None when the hub
        cannot (the stream must read the feed further first).

        The hub can when its recent messages reach back to `after` (those after it are
        queued at once), or when no one listens yet and `after` is within a page of the
        head: the hub then starts reading from there."""
        async with self._lock:
            if not self.subscriptions:
                # The hub read nothing while no one listened: start where this stream is.
                head = await self.ledger.head()
                if head - after > PAGE:
                    return None
                self.tail = self.recent_floor = min(head, after)
                self.recent.clear()
                if self.tail < head:
                    self._wake.set()
            elif after < self.recent_floor:
                return None
            subscription = Subscription(wanted, self.capacity, self.tail)
            missed = [m for m in self.recent if m.position > after]
            if missed:
                subscription.offer(chunk(missed), self.tail, {})
            self.subscriptions.add(subscription)
        return subscription

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            if not self.subscriptions:
                continue
            # Appends that commit within gather_seconds share one read and one wakeup of
            # each stream: under load, a wakeup per stream per append costs more than this.
            await asyncio.sleep(self.gather_seconds)
            self._wake.clear()
            try:
                async with self._lock:
                    await self._read_new()
            except Exception as error:  # a lost connection: the next notice or poll retries
                log.warning("the event stream hub could not read (%s)", type(error).__name__)

    async def _read_new(self) -> None:
        while self.subscriptions:
            self.reads += 1
            records = await self.ledger.read_feed(after=self.tail, limit=PAGE)
            if not records:
                return
            messages = [message(record) for record in records]
            self.tail = records[-1].position
            self._remember(messages)
            self._fan_out(chunk(messages), self.subscriptions)
            if len(records) < PAGE:
                return

    def _remember(self, messages: Sequence[Message]) -> None:
        self.recent.extend(messages)
        while len(self.recent) > self.capacity:
            self.recent_floor = self.recent.popleft().position

    def _fan_out(self, page: Chunk, subscriptions: Iterable[Subscription]) -> None:
        joined: dict[Wanted, Chunk | None] = {}
        for subscription in list(subscriptions):
            if not subscription.offer(page, self.tail, joined):
                self.subscriptions.discard(subscription)

    async def _listen(self) -> None:
        while True:
            try:
                async for _ in listen(self.conninfo, on_listening=self._heard):
                    self._wake.set()
            except Exception as error:  # psycopg.Error, or a stray payload on the channel
                log.warning("lost the appends' notices (%s); reconnecting", type(error).__name__)
            finally:
                self.listening = False
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _heard(self) -> None:
        """Listening again: whatever was appended while deaf is read now."""
        self.listening = True
        self._wake.set()


def stop_all() -> None:
    """End the streams of every hub in this process: the server is shutting down, and
    would otherwise wait for their clients to go."""
    for hub in list(_HUBS):
        hub.stop()
