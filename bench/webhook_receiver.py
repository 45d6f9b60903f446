"""A webhook receiver on loopback, run as a process of its own: for the bench and the tests.

`python -m bench.webhook_receiver --record FILE [--fail 0.3] [--drop 0.03] [--delay 0.2]`
prints its port on the first line, then answers every POST over HTTP/1.1 keep-alive:
500 to a random share (`--fail`), no answer at all to another (`--drop`: the connection is
closed), 200 to the rest, each after `--delay` seconds. With `--record`, every request is
a JSON line in FILE (path, headers, body, status, and when it started and ended on the
machine's monotonic clock, so a test can set them beside its own events). In a process
of its own, it does not take turns with the dispatcher or the test for one interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from typing import IO

MAX_BODY = 1024 * 1024


class Receiver:
    def __init__(
        self, fail: float, drop: float, delay: float, record: IO[str] | None, seed: int
    ) -> None:
        self.fail, self.drop, self.delay = fail, drop, delay
        self.record = record
        self.chance = random.Random(seed)
        self.answered = 0

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        request_line = await reader.readline()
        if not request_line:
            return False
        started = time.monotonic()
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = min(int(headers.get("content-length") or 0), MAX_BODY)
        body = await reader.readexactly(length)
        roll = self.chance.random()
        if roll < self.drop:
            self._write(request_line, headers, body, 0, started)
            writer.transport.abort()
            return False
        if self.delay:
            await asyncio.sleep(self.delay)
        status = 500 if roll < self.drop + self.fail else 200
        self._write(request_line, headers, body, status, started)
        reason = b"OK" if status == 200 else b"Internal Server Error"
        writer.write(b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\n\r\n" % (status, reason))
        await writer.drain()
        self.answered += 1
        return True

    def _write(
        self, request_line: bytes, headers: dict[str, str], body: bytes, status: int, started: float
    ) -> None:
        if self.record is None:
            return
        path = request_line.split(b" ")[1].decode("latin-1")
        entry = {
            "path": path,
            "headers": headers,
            "body": body.decode(),
            "status": status,
            "started": started,
            "ended": time.monotonic(),
        }
        self.record.write(json.dumps(entry) + "\n")
        self.record.flush()


async def serve(args: argparse.Namespace) -> None:
    record = open(args.record, "a", encoding="utf-8") if args.record else None  # noqa: SIM115
    receiver = Receiver(args.fail, args.drop, args.delay, record, args.seed)
    server = await asyncio.start_server(receiver.connection, "127.0.0.1", args.port, backlog=512)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fail", type=float, default=0.0)
    parser.add_argument("--drop", type=float, default=0.0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--record", default=None)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
