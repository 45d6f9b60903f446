"""`community-ledger serve`: Nagle's algorithm off even where uvicorn leaves it on, and one
set of metrics over all its workers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client.multiprocess import MultiProcessCollector

from services.serve import NoDelayH11Protocol, no_delay
from tests.api.scrape import count


class Transport:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.sock if name == "socket" else default


def test_a_connection_accepted_from_a_listener_bound_without_protocol_gets_tcp_nodelay() -> None:
    # As uvicorn's `--workers N` binds it: socket.socket(family=AF_INET), proto 0.
    with socket.socket(family=socket.AF_INET) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as _client:
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0

                no_delay(Transport(accepted))  # type: ignore[arg-type]

                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_a_unix_socket_is_left_alone() -> None:
    left, right = socket.socketpair()
    with left, right:
        no_delay(Transport(left))  # type: ignore[arg-type]


def test_uvicorn_loads_the_protocol_by_the_name_serve_gives_it() -> None:
    config = uvicorn.Config(app=lambda *_: None, http="services.serve:NoDelayH11Protocol")

    config.load()

    assert config.http_protocol_class is NoDelayH11Protocol


@pytest.mark.anyio
async def test_metrics_scraped_from_any_of_two_workers_sum_both(
    database_url: str, writer: dict[str, str], tmp_path: Path
) -> None:
    writes = 16
    port = _free_port()
    serve = ["serve", "--port", str(port), "--workers", "2", "--no-projector", "--no-access-log"]
    server = subprocess.Popen(
        [sys.executable, "-m", "services.cli", *serve, "--log-level", "warning"],
        env={**os.environ, "DATABASE_URL": database_url, "TMPDIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    # No keep-alive: each request is a new connection, which either worker may accept.
    limits = httpx.Limits(max_keepalive_connections=0)
    try:
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:
            await _wait_until_up(client, server)
            appended = 0
            for i in range(writes):
                answer = await client.post(
                    "/v1/members", json={"display_name": f"Worker test {i}"}, headers=writer
                )
                assert answer.status_code == 201, answer.text
                appended += len(answer.json()["positions"])
            scrapes = [(await client.get("/metrics")).text for _ in range(8)]
        files = list(tmp_path.glob("community-ledger-metrics-*/counter_*.db"))
        writers = [f for f in files if _posts_counted(f) > 0]
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)

    assert len(writers) == 2, f"one worker took every write; the sum is not shown: {files}"
    members = {"method": "POST", "route": "/v1/members", "status": "201"}
    for scraped in scrapes:
        assert count(scraped, "ledger_appended_events_total") == appended
        assert count(scraped, "ledger_http_requests_total", **members) == writes
        assert count(scraped, "ledger_append_seconds_count") == writes
    assert not list(tmp_path.glob("community-ledger-metrics-*")), output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _wait_until_up(client: httpx.AsyncClient, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[0]
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/health")).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise AssertionError("the server did not answer /health within 60 s")


def _posts_counted(path: Path) -> float:
    """What one worker's own file holds for the POSTs to /v1/members."""
    for family in MultiProcessCollector.merge([str(path)]):
        for sample in family.samples:
            if (
                sample.name == "ledger_http_requests_total"
                and sample.labels.get("method") == "POST"
            ):
                return float(sample.value)
    return 0.0
