"""`community-ledger serve`: Nagle's algorithm off even where uvicorn leaves it on, and one
set of metrics over all its workers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client.multiprocess import MultiProcessCollector

from services.serve import NoDelayHttpToolsProtocol, metrics_shared_by, no_delay
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
    config = uvicorn.Config(app=lambda *_: None, http="services.serve:NoDelayHttpToolsProtocol")

    config.load()

    assert config.http_protocol_class is NoDelayHttpToolsProtocol


@pytest.mark.anyio
async def test_metrics_scraped_from_any_of_two_workers_sum_both(
    database_url: str, writer: dict[str, str], tmp_path: Path
) -> None:
    port = _free_port()
    serve = ["serve", "--port", str(port), "--workers", "2", "--no-projector", "--no-access-log"]
    server = subprocess.Popen(
        [sys.executable, "-m", "services.cli", *serve, "--log-level", "warning"],
        env={**os.environ, "DATABASE_URL": database_url, "TMPDIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # No keep-alive: each request is a new connection, which either worker may accept.
    limits = httpx.Limits(max_keepalive_connections=0)
    writes, appended, writers = 0, 0, 0
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=10
        ) as client:
            await _wait_until_up(client, server)
            # The kernel may hand one worker a run of connections: write until both wrote.
            while (writes < 16 or writers < 2) and writes < 400:
                answers = await asyncio.gather(
                    *(
                        client.post("/v1/members", json={"display_name": "W"}, headers=writer)
                        for _ in range(4)
                    )
                )
                assert all(a.status_code == 201 for a in answers), answers[0].text
                writes += len(answers)
                appended += sum(len(a.json()["positions"]) for a in answers)
                writers = len(_workers_that_wrote(tmp_path))
            scrapes = [(await client.get("/metrics")).text for _ in range(8)]
        modes = [stat.S_IMODE(d.stat().st_mode) for d in tmp_path.glob("community-ledger-*")]
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)

    assert modes == [0o700]
    assert writers == 2, f"one worker took all {writes} writes; no sum to see"
    members = {"method": "POST", "route": "/v1/members", "status": "201"}
    for scraped in scrapes:
        assert count(scraped, "ledger_appended_events_total") == appended
        assert count(scraped, "ledger_http_requests_total", **members) == writes
        assert count(scraped, "ledger_append_seconds_count") == writes
    assert not list(tmp_path.glob("community-ledger-metrics-*")), output


def test_one_worker_keeps_its_metrics_in_memory_whatever_the_environment_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    with metrics_shared_by(1):
        inside = os.environ.get("PROMETHEUS_MULTIPROC_DIR")

    assert inside is None


def test_several_workers_share_a_fresh_private_directory_removed_at_exit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() caches the first answer
    (tmp_path / "community-ledger-metrics-old").mkdir()  # an earlier run's: not reused

    with metrics_shared_by(2):
        shared = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        mode = stat.S_IMODE(shared.stat().st_mode)
        contents = list(shared.iterdir())

    assert shared.parent == tmp_path and shared.name != "community-ledger-metrics-old"
    assert mode == 0o700 and contents == []
    assert not shared.exists() and "PROMETHEUS_MULTIPROC_DIR" not in os.environ


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


def _workers_that_wrote(tmp_path: Path) -> list[Path]:
    """The workers' own files (one per process) that count a POST to /v1/members."""
    return [
        path
        for path in tmp_path.glob("community-ledger-metrics-*/counter_*.db")
        if any(
            sample.name == "ledger_http_requests_total" and sample.labels.get("method") == "POST"
            for family in MultiProcessCollector.merge([str(path)])
            for sample in family.samples
        )
    ]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\ncontent-length:\r\n\r\n",  # curl -H 'content-length;'
        b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ],
)
def test_a_request_that_is_not_http_gets_a_400_problem_from_the_server_itself(
    request_bytes: bytes,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("no app runs for a request the parser refuses")

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, http=NoDelayHttpToolsProtocol, log_level="error"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(request_bytes)
            answer = b""
            while chunk := client.recv(65536):  # the server closes the connection
                answer += chunk
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
    assert status == "HTTP/1.1 400 Bad Request"
    assert headers["content-type"] == "application/problem+json"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert problem["status"] == 400 and problem["type"].endswith("/unreadable-request")
