"""An event-stream client for the tests: parses messages as the WHATWG spec does, and the
app served by a real uvicorn in the test's event loop (the test client cannot stream)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import httpx
import msgspec
import uvicorn
from litestar import Litestar

from services.serve import NoDelayHttpToolsProtocol

STREAM = "/v1/events/stream"


class Block(NamedTuple):
    """One SSE message: the fields up to a blank line, comments apart."""

    id: str | None
    event: str | None
    data: str | None
    comments: tuple[str, ...]

    @property
    def position(self) -> int:
        assert self.id is not None, self
        return int(self.id)

    def json(self) -> Any:
        assert self.data is not None, self
        return msgspec.json.decode(self.data)


class EventSource:
    """Reads an open stream; `last_event_id` moves as a browser's would, id-only messages too.

    A task of its own reads the lines, so a read that times out loses nothing."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.last_event_id: str | None = None
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for line in self.response.aiter_lines():
                self._lines.put_nowait(line)
        finally:
            self._lines.put_nowait(None)

    async def close(self) -> None:
        self._reading.cancel()
        with contextlib.suppress(BaseException):
            await self._reading

    async def block(self, timeout: float = 10.0) -> Block:
        fields: dict[str, str] = {}
        comments: list[str] = []
        async with asyncio.timeout(timeout):
            while True:
                line = await self._lines.get()
                if line is None:
                    self._lines.put_nowait(None)
                    raise EOFError("the stream ended")
                if not line:
                    if fields or comments:
                        break
                    continue
                if line.startswith(":"):
                    comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data" and "data" in fields:
                    value = fields["data"] + "\n" + value
                fields[name] = value
        if "id" in fields:
            self.last_event_id = fields["id"]
        return Block(fields.get("id"), fields.get("event"), fields.get("data"), tuple(comments))

    async def events(self, count: int, timeout: float = 10.0) -> list[Block]:
        """The next `count` messages that carry data (events), skipping comments and ids."""
        found: list[Block] = []
        async with asyncio.timeout(timeout):
            while len(found) < count:
                block = await self.block()
                if block.data is not None:
                    found.append(block)
        return found

    async def until_comment(self, part: str, timeout: float = 10.0) -> list[Block]:
        """Every message up to and including the first comment containing `part`."""
        seen: list[Block] = []
        async with asyncio.timeout(timeout):
            while True:
                block = await self.block()
                seen.append(block)
                if any(part in text for text in block.comments):
                    return seen


class Served(NamedTuple):
    url: str
    server: uvicorn.Server


@asynccontextmanager
async def served(app: Litestar) -> AsyncIterator[Served]:
    """The app under uvicorn in this event loop, with `serve`'s protocol."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", http=NoDelayHttpToolsProtocol
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}", server)
    finally:
        server.should_exit = True
        async with asyncio.timeout(15):
            await task


@asynccontextmanager
async def opened(
    client: httpx.AsyncClient, query: str = "", headers: dict[str, str] | None = None
) -> AsyncIterator[EventSource]:
    async with client.stream("GET", f"{STREAM}{query}", headers=headers) as response:
        assert response.status_code == 200, (await response.aread())[:500]
        assert response.headers["content-type"].startswith("text/event-stream")
        source = EventSource(response)
        try:
            yield source
        finally:
            await source.close()
