"""`community-ledger serve` turns Nagle's algorithm off even where uvicorn leaves it on."""

from __future__ import annotations

import socket
from typing import Any

import uvicorn

from services.serve import NoDelayH11Protocol, no_delay


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
