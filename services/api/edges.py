"""What every answer carries, and what no request may carry, checked once at the edge.

- `X-Content-Type-Options: nosniff` on every answer, so a browser never runs a JSON
  answer holding someone's words as HTML or script.
- `Cache-Control: no-store` on every answer that may hold member data (all but the
  operational and documentation paths), so no shared cache keeps a name after erasure.
- A NUL in the path, the query or a header is refused with a 400 problem before any
  handler runs: PostgreSQL cannot store it, and no handle, id or filter holds one.
- A request the HTTP parser cannot read (a malformed request line or header) is refused
  by the server itself (services/serve.py) with the problem `unreadable_request` spells.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

from services.api.docs import SCHEMA_PATH
from services.api.problems import MEDIA_TYPE, TYPE_BASE
from services.api.schemas import Problem

NO_MEMBER_DATA = ("/health", "/ready", "/metrics", SCHEMA_PATH)
"""Path prefixes whose answers never hold member data: caches may keep them."""
_NUL_IN_QUERY = re.compile(rb"%00|\x00")


def refuse_nul(app: ASGIApp) -> ASGIApp:
    """Middleware: a 400 problem for a NUL in the path, the query or a header."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and (where := _nul_in(scope)) is not None:
            await _refuse(send, where)
            return
        await app(scope, receive, send)

    return middleware


async def edge_headers(message: Message, scope: Scope) -> None:
    """`before_send` hook: on every answer, 404s and 413s included."""
    if message["type"] == "http.response.start":
        private = not scope.get("path", "").startswith(NO_MEMBER_DATA)
        message["headers"] = _with_edge_headers(message.get("headers", []), private)


def _nul_in(scope: Scope) -> str | None:
    """Where the request carries a NUL character, if anywhere."""
    if "\x00" in scope["path"]:
        return "path"
    if _NUL_IN_QUERY.search(scope.get("query_string", b"")):
        return "query"
    if any(b"\x00" in name or b"\x00" in value for name, value in scope.get("headers", [])):
        return "header"
    return None


async def _refuse(send: Send, where: str) -> None:
    problem = Problem(
        type=TYPE_BASE + "validation",
        title="Bad request",
        status=400,
        detail=f"the request's {where} holds a NUL character, which nothing here accepts",
        errors=[{"field": "", "source": where, "message": "must not contain NUL (\\u0000)"}],
    )
    body = msgspec.json.encode(problem)
    headers = [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", b"%d" % len(body))]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 400,
        "headers": headers,
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


def unreadable_request(server_headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    """The whole HTTP/1.1 answer to a request that is not valid HTTP, as the edge answers
    any refusal: a problem, nosniff, no-store, and the connection closed (where one
    request ends and the next begins is unknown). `server_headers` go first (the
    server's date)."""
    body = msgspec.json.encode(
        Problem(
            type=TYPE_BASE + "unreadable-request",
            title="Bad request",
            status=400,
            detail="the request is not valid HTTP/1.1 (a malformed request line or header); "
            "nothing was read",
        )
    )
    headers = _with_edge_headers(
        [
            *server_headers,
            (b"content-type", MEDIA_TYPE.encode()),
            (b"content-length", b"%d" % len(body)),
            (b"connection", b"close"),
        ],
        private=True,
    )
    head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return b"HTTP/1.1 400 Bad Request\r\n" + head + b"\r\n" + body


def _with_edge_headers(
    headers: Iterable[tuple[bytes, bytes]], private: bool
) -> list[tuple[bytes, bytes]]:
    added = list(headers)
    present = {name.lower() for name, _ in added}
    if b"x-content-type-options" not in present:
        added.append((b"x-content-type-options", b"nosniff"))
    if private and b"cache-control" not in present:
        added.append((b"cache-control", b"no-store"))
    return added
