"""The event stream through `serve --workers 2`: each worker has its own hub, and clients
on either see the same sequence; stopping the server ends open streams at once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api.sse import STREAM, EventSource
from tests.api.test_serve import _free_port, _wait_until_up

pytestmark = pytest.mark.anyio

SPREAD_WITHIN_SECONDS = 60


async def test_clients_on_both_workers_see_the_same_sequence_and_stopping_ends_them(
    database_url: str, writer: dict[str, str], reader: dict[str, str], tmp_path: Path
) -> None:
    port = _free_port()
    serve = ["serve", "--port", str(port), "--workers", "2", "--no-projector", "--no-access-log"]
    server = subprocess.Popen(
        [sys.executable, "-m", "services.cli", *serve, "--log-level", "warning"],
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "TMPDIR": str(tmp_path),
            "LEDGER_SSE_HEARTBEAT_SECONDS": "0.2",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stopped_in, output = None, ""
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
            contextlib.AsyncExitStack() as streams,
        ):
            await _wait_until_up(client, server)
            sources: dict[int, list[EventSource]] = {}
            # The kernel hands connections to either worker, and under load the second may
            # start accepting seconds after the first: open streams until both have one,
            # keeping at most two per worker.
            deadline = time.monotonic() + SPREAD_WITHIN_SECONDS
            while len(sources) < 2 and time.monotonic() < deadline:
                stream = contextlib.AsyncExitStack()
                response = await stream.enter_async_context(
                    client.stream("GET", STREAM, headers=reader)
                )
                assert response.status_code == 200
                source = EventSource(response)
                stream.push_async_callback(source.close)
                await source.block(timeout=30)
                worker = _worker_serving(server.pid, port, response)
                if len(sources.get(worker, [])) < 2:
                    sources.setdefault(worker, []).append(source)
                    await streams.enter_async_context(stream)
                else:
                    await stream.aclose()
                await asyncio.sleep(0.2)
            positions = []
            for name in ("Ana", "Bob", "Cleo"):
                answer = await client.post(
                    "/v1/members", json={"display_name": name}, headers=writer
                )
                positions += answer.json()["positions"]
            everyone = [s for group in sources.values() for s in group]
            received = await asyncio.gather(
                *(s.events(len(positions), timeout=30) for s in everyone)
            )

            started = time.monotonic()
            server.send_signal(signal.SIGINT)
            last = await asyncio.gather(
                *(s.until_comment("the server is stopping", timeout=20) for s in everyone)
            )
            output = server.communicate(timeout=30)[0]
            stopped_in = time.monotonic() - started
    finally:
        if server.poll() is None:
            server.kill()
            output = server.communicate()[0]

    assert len(sources) == 2, f"in {SPREAD_WITHIN_SECONDS} s, one worker got all: {output}"
    sequences = [[(b.position, b.event, b.data) for b in r] for r in received]
    assert [p for p, _, _ in sequences[0]] == positions
    assert all(sequence == sequences[0] for sequence in sequences)
    assert all(blocks[-1].data is None for blocks in last)
    assert stopped_in is not None and stopped_in < 20


def _worker_serving(server_pid: int, port: int, response: httpx.Response) -> int:
    """The pid of the worker holding the server's side of `response`'s connection (/proc)."""
    local = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    for _ in range(50):
        inodes = {
            f"socket:[{fields[9]}]"
            for table in ("/proc/net/tcp", "/proc/net/tcp6")
            for fields in (row.split() for row in Path(table).read_text().splitlines()[1:])
            if _port(fields[1]) == port and _port(fields[2]) == local
        }
        for pid in _children(server_pid):
            with contextlib.suppress(OSError):
                fds = Path(f"/proc/{pid}/fd")
                if any(os.readlink(fd) in inodes for fd in fds.iterdir()):
                    return pid
        time.sleep(0.05)
    raise AssertionError("no worker holds the stream's connection")


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found += [int(child), *_children(int(child))]
    return found
