"""No problem and no log line echoes a name, a handle or a text a request carried.

Each request below fails in its own way while holding personal values; the answer must
name what is wrong (the field, the platform, the member's id) and never the value.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from litestar.testing import AsyncTestClient

from services.api.app import create_app
from services.api.controllers import members

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]
NAME = "Zoë Quillfeather"
HANDLE = "twitter:@SecretZoe"
UNKNOWN = "twitter:@NoSuchZoe"
TEXT = "Zoë's private note about her neighbour"
PERSONAL = ("Zoë", "Zo\\u00eb", "Quillfeather", "SecretZoe", "NoSuchZoe", "neighbour")


def _server_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the server logged: the test client's own request lines (httpx) are not it."""
    formatter = logging.Formatter("%(name)s %(message)s")
    return "\n".join(
        formatter.format(record) for record in caplog.records if not record.name.startswith("httpx")
    )


def _assert_nothing_personal(text: str) -> None:
    for value in PERSONAL:
        assert value.lower() not in text.lower(), f"{value!r} echoed in: {text}"


@pytest.fixture
async def zoe(client: Client, writer: dict[str, str]) -> str:
    answer = await client.post(
        "/v1/members", json={"display_name": NAME, "handles": [HANDLE]}, headers=writer
    )
    assert answer.status_code == 201
    member_id: str = answer.json()["id"]
    return member_id


FAILING = [
    ("duplicate handle", "POST", "/v1/members", {"display_name": NAME, "handles": [HANDLE]}),
    ("name as a list", "POST", "/v1/members", {"display_name": [NAME]}),
    ("name as an object", "POST", "/v1/members", {"display_name": {"first": NAME}}),
    ("name too long", "POST", "/v1/members", {"display_name": NAME * 20}),
    ("blank name", "POST", "/v1/members", {"display_name": " ", "handles": ["github:zoe-q"]}),
    ("handles as a string", "POST", "/v1/members", {"display_name": NAME, "handles": HANDLE}),
    (
        "invalid handle",
        "POST",
        "/v1/members",
        {"display_name": "Z", "handles": ["twitter:Zoë Quillfeather"]},
    ),
    ("unknown field", "POST", "/v1/members", {"display_name": "Z", "nickname": NAME}),
    (
        "unknown handle",
        "POST",
        "/v1/contributions",
        {"member": UNKNOWN, "kind": "chat_answer", "space": "kaizenblog", "body": TEXT},
    ),
    (
        "reason too long",
        "POST",
        "/v1/recognitions",
        {"from": HANDLE, "to": UNKNOWN, "kind": "kudos", "reason": TEXT * 100},
    ),
    ("unlink a handle not linked", "PATCH", "/v1/members/{zoe}", {"remove_handles": [UNKNOWN]}),
    ("links as a string", "PATCH", "/v1/members/{zoe}", {"links": f"https://x.org/{NAME}"}),
    ("bio as a number list", "PATCH", "/v1/members/{zoe}", {"bio": [TEXT]}),
    (
        "batch item with a bad name",
        "POST",
        "/v1/batch",
        {"items": [{"command": "register_member", "display_name": [NAME]}]},
    ),
    (
        "batch with an unknown handle",
        "POST",
        "/v1/batch",
        {"items": [{"command": "record_mention", "member": HANDLE, "mentioned": UNKNOWN}]},
    ),
    ("unknown handle lookup", "GET", "/v1/members/by-handle/twitter/NoSuchZoe", None),
    ("invalid handle lookup", "GET", "/v1/members/by-handle/twitter/Zoë Quillfeather!", None),
    ("search too long", "GET", f"/v1/members?q={'Quillfeather' * 20}", None),
    ("search with a bad status", "GET", f"/v1/members?q={NAME}&status={NAME}", None),
    ("search with a bad sort", "GET", "/v1/members?q=Zoë&sort=Quillfeather", None),
    ("search with a bad cursor", "GET", "/v1/members?q=Zoë&cursor=Quillfeather", None),
]


@pytest.mark.parametrize(("why", "method", "path", "body"), FAILING, ids=[f[0] for f in FAILING])
async def test_a_failing_request_is_answered_without_its_personal_values(
    client: Client,
    writer: dict[str, str],
    zoe: str,
    caplog: pytest.LogCaptureFixture,
    why: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    caplog.set_level(logging.DEBUG)

    answer = await client.request(method, path.format(zoe=zoe), json=body, headers=writer)

    assert 400 <= answer.status_code < 500, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"]
    _assert_nothing_personal(answer.text)
    _assert_nothing_personal(_server_log(caplog))


async def test_a_claimed_handle_names_its_platform_and_owner(
    client: Client, writer: dict[str, str], zoe: str
) -> None:
    other = await client.post("/v1/members", json={"display_name": "Ana"}, headers=writer)

    answer = await client.patch(
        f"/v1/members/{other.json()['id']}", json={"add_handles": [HANDLE]}, headers=writer
    )

    assert answer.status_code == 409
    assert answer.json()["detail"].startswith(f"the twitter handle already belongs to member {zoe}")


async def test_an_unexpected_error_is_logged_without_its_message(
    client: Client,
    writer: dict[str, str],
    zoe: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def failing(*_: Any, **__: Any) -> None:
        raise RuntimeError(f"cannot show {NAME} ({HANDLE})") from KeyError(TEXT)

    monkeypatch.setattr(members.q, "profile", failing)

    answer = await client.get("/v1/members/by-handle/twitter/SecretZoe", headers=writer)

    assert answer.status_code == 500
    _assert_nothing_personal(answer.text)
    logged = _server_log(caplog)
    assert "RuntimeError <- KeyError" in logged and "by-handle/twitter/redacted" in logged
    assert "failing" in logged  # the frames are there
    _assert_nothing_personal(logged)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def served(database_url: str) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(database_url), host="127.0.0.1", port=port, log_config=None, access_log=True
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


async def test_the_access_log_redacts_handles_and_searches(served: str, read_token: str) -> None:
    lines = _Lines()
    access = logging.getLogger("uvicorn.access")
    access.addHandler(lines)
    access.setLevel(logging.INFO)
    headers = {"Authorization": f"Bearer {read_token}"}
    try:
        async with httpx.AsyncClient(base_url=served, headers=headers) as http:
            await http.get("/v1/members/by-handle/twitter/SecretZoe")
            await http.get("/v1/members", params={"q": NAME, "limit": 5})
    finally:
        access.removeHandler(lines)

    logged = "\n".join(lines.lines)
    assert "/v1/members/by-handle/twitter/redacted" in logged
    assert "/v1/members?q=redacted&limit=5" in logged
    _assert_nothing_personal(logged)
