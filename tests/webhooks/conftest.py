"""A real receiver on loopback, and subscriptions made the way the API stores them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from uuid import UUID

import msgspec
import psycopg
import pytest

from services import bootstrap
from services.settings import Settings, load_settings
from services.store.records import NewEvent
from services.webhooks.dispatcher import Dispatcher
from services.webhooks.secrets import new_secret, wrap_secret


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    started: float
    ended: float


@dataclass
class Receiver:
    """An HTTP/1.1 server in a thread: records every request and answers as told."""

    fail_ratio: float = 0.0
    """Answer 500 to this share of requests."""
    drop_ratio: float = 0.0
    """Close the connection without an answer for this share of requests."""
    fail_first: int = 0
    """Answer 500 to the first this many requests."""
    delay: float = 0.0
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    seed: int = 14
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        receiver = self
        chance = random.Random(self.seed)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                started = time.monotonic()
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    roll = chance.random()
                    early = len(receiver.requests) < receiver.fail_first
                if roll < receiver.drop_ratio:
                    receiver._record(self, body, 0, started)
                    self.close_connection = True
                    self.connection.close()
                    return
                if receiver.delay:
                    time.sleep(receiver.delay)
                failing = early or roll < receiver.drop_ratio + receiver.fail_ratio
                status = 500 if failing else receiver.status
                receiver._record(self, body, status, started)
                self.send_response(status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _record(
        self, handler: BaseHTTPRequestHandler, body: bytes, status: int, started: float
    ) -> None:
        with self.lock:
            self.requests.append(
                Received(
                    path=handler.path,
                    headers={k.lower(): v for k, v in handler.headers.items()},
                    body=body,
                    status=status,
                    started=started,
                    ended=time.monotonic(),
                )
            )

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def seen(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]


class ReceiverProcess:
    """`bench.webhook_receiver` in a process of its own (see there), its requests read back
    from the file it records them in."""

    def __init__(self, record: Path, *, fail: float = 0.0, drop: float = 0.0) -> None:
        self.record = record
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.webhook_receiver",
                "--record",
                str(record),
                "--fail",
                str(fail),
                "--drop",
                str(drop),
            ],
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"
        self._read = 0
        self._requests: list[Received] = []

    def seen(self, path: str | None = None) -> list[Received]:
        with self.record.open("rb") as file:
            file.seek(self._read)
            chunk = file.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._read += len(complete)
        for line in complete.splitlines():
            entry = json.loads(line)
            entry["body"] = entry["body"].encode()
            self._requests.append(Received(**entry))
        return [r for r in self._requests if path is None or r.path == path]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    started.start()
    yield started
    started.stop()


async def run_until(
    dispatcher: Dispatcher, done: Callable[[], bool], *, within: float = 20.0
) -> None:
    """Run `dispatcher --follow` until `done()` holds (checked every 20 ms), then stop it."""
    task = asyncio.create_task(dispatcher.run(follow=True))
    try:
        deadline = time.monotonic() + within
        while not done():
            if task.done():
                task.result()
                raise AssertionError("the dispatcher stopped before the condition held")
            assert time.monotonic() < deadline, "the condition did not hold in time"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # what follows the write that made it hold (a log line)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def dispatch_settings(**changes: object) -> Settings:
    """Loopback allowed, and a retry schedule in fractions of a second."""
    base = msgspec.structs.replace(
        load_settings(),
        webhooks_allow_private_targets=True,
        webhook_retry_schedule=(0.01, 0.02, 0.04),
        webhook_timeout_seconds=2.0,
        webhook_lease_seconds=1.0,
    )
    return msgspec.structs.replace(base, **changes)


@dataclass(frozen=True)
class Subscribed:
    webhook_id: UUID
    secret: str
    path: str


def subscribe(
    database_url: str,
    url: str,
    *,
    event_types: list[str] | None = None,
    member_id: UUID | None = None,
    space: str | None = None,
    position: int = 0,
) -> Subscribed:
    """A subscription as the API stores one (its secret wrapped by the master key)."""
    webhook_id = uuid.uuid4()
    secret = new_secret()
    wrapped, kek_id = wrap_secret(bootstrap.master_key(load_settings()), secret)
    path = f"/hooks/{webhook_id}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO webhooks (webhook_id, url, event_types, member_id, space, "
            "secret_wrapped, kek_id, position) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [webhook_id, url + path, event_types, member_id, space, wrapped, kek_id, position],
        )
    return Subscribed(webhook_id=webhook_id, secret=secret, path=path)


def subscription_row(database_url: str, webhook_id: UUID) -> dict[str, object]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        cur = conn.execute(
            "SELECT position, attempts, next_attempt_at, enabled, disabled_reason "
            "FROM webhooks WHERE webhook_id = %s",
            [webhook_id],
        )
        row = cur.fetchone()
    assert row is not None
    return dict(
        zip(("position", "attempts", "next_attempt_at", "enabled", "reason"), row, strict=True)
    )


def deliveries(database_url: str, webhook_id: UUID) -> list[tuple[object, ...]]:
    """(position, attempt, status_code, error, next_attempt_at) in the order attempted."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        cur = conn.execute(
            "SELECT position, attempt, status_code, error, next_attempt_at "
            "FROM webhook_deliveries WHERE webhook_id = %s ORDER BY delivery_id",
            [webhook_id],
        )
        return cur.fetchall()


def noted(index: int, *, tags: tuple[str, ...] = (), type: str = "Noted") -> NewEvent:
    return NewEvent(
        event_id=uuid.uuid4(),
        type=type,
        data=msgspec.Raw(msgspec.json.encode({"index": index})),
        stream=f"noted-{index % 7}",
        tags=tags,
        occurred_at=datetime.now(UTC),
    )
