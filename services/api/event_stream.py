"""One client's event stream: catch up through the pool, then the hub's live tail.

A stream starting at or near the head, or resuming within the hub's recent messages,
subscribes at once and reads nothing from the database. One resumed from an older
position reads the feed a page at a time (as GET /v1/events does) and asks the hub again
after each short page: the hub takes it once its recent messages reach back to the
stream's position, so the live messages join the read without a gap, and any the read
already sent are skipped by position. A stream that never falls behind thus costs one
subscription, no connection.

Filtered events are not sent, but the client's Last-Event-ID still moves over them: a
message with only an `id:` field sets it without dispatching anything (WHATWG HTML, "Server-
sent events"). One goes out with each heartbeat, after SKIP_RUN positions without a match,
and before the stream ends, so a reconnecting client does not rescan what it skipped.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

from services.api.stream_hub import PAGE, Chunk, StreamHub, Subscription, Wanted, message
from services.settings import StreamSettings

SKIP_RUN = 1000
RETRY_MILLISECONDS = 2000
CLOCK_SLACK = 0.002
"""A loop may run a timer this early (uvloop counts in milliseconds)."""


def comment(text: str, covered: int, sent: int) -> bytes:
    """An SSE comment, with the position reached when it moves the client's last id."""
    moved = b"id: %d\n" % covered if covered > sent else b""
    return b": %s\n%s\n" % (text.encode(), moved)


class Alarm:
    """Sets `event` once the time `ring_at` last named comes, with one timer however often
    that time moves later: a stream then arms no timer per wakeup (under load, a timeout
    per wait cost a twentieth of a worker's time)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        self.loop = loop
        self.event = event
        self.due = math.inf
        self._ringing = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def ring_at(self, due: float) -> None:
        self.due = due
        if due < self._timer_at:
            self.cancel()
            self._timer_at = due
            self._timer = self.loop.call_at(due, self._ring)

    def rang(self) -> bool:
        """Whether it rang since the last call."""
        rang, self._ringing = self._ringing, False
        return rang

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, math.inf

    def _ring(self) -> None:
        self._timer, self._timer_at = None, math.inf
        if self.loop.time() < self.due - CLOCK_SLACK:
            self.ring_at(self.due)  # moved later since the timer was set
            return
        self._ringing = True
        self.event.set()


def unsent(chunk: Chunk, after: int) -> bytes:
    """The chunk's messages after position `after` (only the first chunk after a catch-up
    can hold some already sent)."""
    if chunk.first > after:
        return chunk.text
    return b"".join(m.text for m in chunk.messages if m.position > after)


async def event_stream(
    hub: StreamHub, wanted: Wanted, after: int, settings: StreamSettings
) -> AsyncIterator[bytes]:
    """The SSE body: every wanted event after `after`, in order, once; then the live ones."""
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + settings.max_seconds
    sent = covered = after
    subscription: Subscription | None = None
    alarm: Alarm | None = None
    types = sorted(wanted.types) if wanted.types is not None else None
    hub.open_stream()
    try:
        yield b"retry: %d\n: events after position %d\n\n" % (RETRY_MILLISECONDS, after)
        short_page = True
        while not hub.stopping:
            if short_page:
                subscription = await hub.subscribe(wanted, after=covered)
                if subscription is not None:
                    break
            # A read filtered by type in SQL says nothing of the events it passed over after
            # its last match: the head read before it does (every position up to it was read).
            head = await hub.ledger.head() if types is not None else 0
            hub.catch_up_reads += 1
            records = await hub.ledger.read_feed(after=covered, limit=PAGE, types=types)
            found = [message(r) for r in records if wanted.matches(r.type, r.tags)]
            if records:
                covered = records[-1].position
            if len(records) < PAGE:
                covered = max(covered, head)
            if found:
                yield b"".join(m.text for m in found)
                sent = found[-1].position
            elif covered - sent >= SKIP_RUN:
                yield b"id: %d\n\n" % covered
                sent = covered
            short_page = len(records) < PAGE

        if subscription is not None:
            alarm = Alarm(loop, subscription.changed)
        wrote_at = loop.time()
        while subscription is not None and not hub.stopping and not subscription.overflowed:
            # One write per wakeup, of chunks joined once in the hub for every stream.
            taken = [c for c in subscription.take() if c.last > covered]
            texts = [unsent(c, covered) for c in taken]
            covered = max(covered, subscription.covered)
            if taken:
                yield b"".join(texts)
                sent = taken[-1].last
                wrote_at = loop.time()
            elif covered - sent >= SKIP_RUN:
                yield b"id: %d\n\n" % covered
                sent = covered
                wrote_at = loop.time()
            if subscription.overflowed or hub.stopping:
                continue
            if ends_at <= loop.time():
                yield comment(
                    f"this stream ends after {settings.max_seconds:g} s; "
                    "reconnect with Last-Event-ID",
                    covered,
                    sent,
                )
                return
            if subscription.queue:
                continue
            assert alarm is not None
            alarm.ring_at(min(wrote_at + settings.heartbeat_seconds, ends_at))
            await subscription.changed.wait()
            if alarm.rang() and not subscription.queue and loop.time() < ends_at:
                yield comment("heartbeat", covered, sent)
                sent = max(sent, covered)
                wrote_at = loop.time()

        if subscription is not None and subscription.overflowed:
            yield comment(
                f"slow consumer: more than {hub.capacity} events behind, so this stream is "
                f"closed; resume from position {sent} (send Last-Event-ID: {sent})",
                sent,
                sent,
            )
        elif hub.stopping:
            yield comment("the server is stopping; reconnect with Last-Event-ID", covered, sent)
    finally:
        if alarm is not None:
            alarm.cancel()
        hub.close_stream(subscription)
