"""`community-ledger serve`: the API under uvicorn, migrated first, projector optional."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services import bootstrap
from services.limit_settings import LimitSettings, load_limit_settings
from services.settings import Settings

UVLOOP = importlib.util.find_spec("uvloop") is not None
"""uvloop is a dependency where it builds (not on Windows); asyncio's own loop elsewhere."""
WORKER_HEALTHCHECK_SECONDS = 30
"""How long uvicorn waits for a worker's answer to its ping before it kills the worker
(its default, 5 s, killed busy workers on a loaded 2-core machine, and each kill ends
every event stream that worker served)."""


def serve(args: argparse.Namespace, settings: Settings) -> int:
    return serve_api(
        settings,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=args.access_log,
        projector=args.projector,
    )


def serve_api(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    log_level: str = "info",
    access_log: bool = True,
    projector: bool | None = None,
) -> int:
    """Migrate, then serve until stopped; `projector` None means on with the embedded database
    (the webhook dispatcher runs wherever the projector does)."""
    import uvicorn

    master = bootstrap.master_key(settings)
    url = bootstrap.database(settings)
    # A wrong master key stops us here, in one line, not in a half-started server.
    bootstrap.upgrade(url, master, roles=settings.roles, only_as_owner=True)
    if projector is None:
        projector = settings.uses_embedded_database
    # Worker processes build the app from these variables; the embedded server is shared.
    os.environ["LEDGER_RESOLVED_DATABASE_URL"] = url
    os.environ["LEDGER_RUN_PROJECTOR"] = "1" if projector else "0"
    print(
        f"Community Ledger API on http://{host}:{port} "
        f"(projector and webhook dispatcher "
        f"{'in this process' if projector else 'not running here'})",
        flush=True,
    )
    limits = load_limit_settings()
    with metrics_shared_by(workers), metrics_served_apart(url, limits):
        uvicorn.run(
            "services.serve:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=access_log,
            http="services.serve:NoDelayHttpToolsProtocol",
            loop="uvloop" if UVLOOP else "asyncio",
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        )
    return 0


@contextmanager
def metrics_shared_by(workers: int) -> Iterator[None]:
    """With several workers, a private directory where each keeps its metrics, so that a
    scrape answered by any of them sums them all (prometheus-client's multiprocess mode).

    A fresh directory per start (mkdtemp: mode 0700), removed at exit: counters left by an
    earlier run would be summed into this one's. The workers are spawned, so they import
    prometheus-client with the variable already set, as it requires.
    """
    for name in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"):
        os.environ.pop(name, None)
    if workers <= 1:
        yield
        return
    directory = tempfile.mkdtemp(prefix="community-ledger-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        yield
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def metrics_served_apart(url: str, limits: LimitSettings) -> Iterator[None]:
    """With LEDGER_METRICS_PORT, /metrics on that address (loopback unless
    LEDGER_METRICS_ADDRESS says otherwise), from this process, for the block; with several
    workers it sums theirs, as the API's /metrics would."""
    if limits.metrics_port is None:
        yield
        return
    from services.api.metrics import start_separate_server

    stop = start_separate_server(url, limits.metrics_address, limits.metrics_port)
    print(f"metrics on http://{limits.metrics_address}:{limits.metrics_port}/metrics", flush=True)
    try:
        yield
    finally:
        stop()


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Send each write at once (TCP_NODELAY) on a TCP connection.

    With `--workers N` uvicorn binds the listening socket itself without naming the
    protocol, so asyncio does not see a TCP socket and leaves Nagle's algorithm on: the
    body that follows the headers then waits for the client's delayed ACK, about 40 ms
    per keep-alive request on Linux (uvicorn issue #3149).
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with TCP_NODELAY on every connection, event streams
    ended at shutdown, and unparseable requests answered with a problem.

    httptools (and the uvloop event loop) rather than the pure-Python h11: with 200 event
    streams the server's processor time per message delivered fell from 7.5 to about 5 µs
    (docs/performance.md, "Issue #14: the event stream")."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        no_delay(transport)
        super().connection_made(transport)

    def send_400_response(self, msg: str) -> None:
        """A request httptools cannot parse gets a 400 problem like every other refusal,
        not uvicorn's plain text (`msg`, uvicorn's own words, is already in its log)."""
        from services.api.edges import unreadable_request

        self.transport.write(unreadable_request(self.server_state.default_headers))
        self.transport.close()

    def shutdown(self) -> None:
        """Also end the app's event streams: they never end by themselves, and uvicorn
        waits for every open response before it stops (each tells its client to resume)."""
        from services.api.stream_hub import stop_all

        stop_all()
        super().shutdown()


def app_from_environment() -> Any:
    from services.api.app import create_app

    url = os.environ.get("LEDGER_RESOLVED_DATABASE_URL") or bootstrap.database(bootstrap.settings())
    return create_app(url, run_projector=os.environ.get("LEDGER_RUN_PROJECTOR") == "1")


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("serve", help="serve the HTTP API (migrates first)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--projector",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run the projections and the webhook dispatcher in this process "
        "(default: on with the embedded database)",
    )
    parser.set_defaults(handler=serve)
