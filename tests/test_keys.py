"""API keys: shown once, stored as a hash, scoped, revocable; the guard answers 401 and 403."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import psycopg
import pytest
from litestar import Litestar, Request, get
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components
from litestar.testing import AsyncTestClient
from psycopg_pool import AsyncConnectionPool

from services import keys
from services.api import auth
from services.keys import allows, authenticate, create_key, list_keys, revoke_key

pytestmark = pytest.mark.anyio

Conn = psycopg.AsyncConnection[Any]


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[Conn]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as opened:
        yield opened


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    auth.CACHE.clear()
    yield
    auth.CACHE.clear()


# --- the store of keys -------------------------------------------------------------------


async def test_create_returns_the_token_once_and_the_table_keeps_only_its_hash(conn: Conn) -> None:
    key, token = await create_key(conn, "chat-bot", "write")

    assert token.startswith("cl_") and len(token) == 46
    assert (key.name, key.scope, key.prefix) == ("chat-bot", "write", token[3:11])
    assert key.last_used_at is None and key.revoked_at is None
    rows = await (await conn.execute("SELECT * FROM api_keys")).fetchall()
    stored = " ".join(str(value) for row in rows for value in row)
    assert token.removeprefix("cl_") not in stored
    assert hashlib.sha256(token.encode()).hexdigest() in stored


async def test_list_shows_every_key_oldest_first_without_any_token(conn: Conn) -> None:
    _, first = await create_key(conn, "crm", "read")
    _, second = await create_key(conn, "importer", "admin")

    listed = await list_keys(conn)

    assert [(k.name, k.scope) for k in listed] == [("crm", "read"), ("importer", "admin")]
    encoded = msgspec.json.encode(listed).decode()
    assert first[3:] not in encoded and second[3:] not in encoded
    assert "hash" not in encoded


async def test_create_refuses_a_blank_name_and_an_unknown_scope(conn: Conn) -> None:
    with pytest.raises(ValueError, match="needs a name"):
        await create_key(conn, "  ", "read")
    with pytest.raises(
        ValueError, match="unknown scope 'owner'; the scopes are read, write, admin"
    ):
        await create_key(conn, "bot", "owner")


async def test_authenticate_finds_the_active_key_behind_a_token(conn: Conn) -> None:
    key, token = await create_key(conn, "newsletter", "read")

    found = await authenticate(conn, token)

    assert found is not None
    assert (found.key_id, found.scope) == (key.key_id, "read")


async def test_authenticate_records_use_at_most_once_a_minute(conn: Conn) -> None:
    key, token = await create_key(conn, "newsletter", "read")

    await authenticate(conn, token)
    first_use = await _last_used(conn, key.key_id)
    await authenticate(conn, token)
    unchanged = await _last_used(conn, key.key_id)
    await conn.execute("UPDATE api_keys SET last_used_at = now() - interval '2 minutes'")
    back_dated = await _last_used(conn, key.key_id)
    await authenticate(conn, token)
    refreshed = await _last_used(conn, key.key_id)

    assert first_use is not None and unchanged == first_use
    assert back_dated is not None and refreshed is not None and refreshed > back_dated


async def test_authenticate_refuses_unknown_malformed_and_revoked_tokens(conn: Conn) -> None:
    key, token = await create_key(conn, "old-bot", "admin")
    await revoke_key(conn, str(key.key_id))

    assert await authenticate(conn, token) is None
    assert await authenticate(conn, "cl_" + "x" * 43) is None
    assert await authenticate(conn, "not a token") is None
    assert await authenticate(conn, "") is None


async def test_revoke_by_prefix_id_or_token_and_again_keeps_the_first_time(conn: Conn) -> None:
    by_prefix, by_prefix_token = await create_key(conn, "a", "read")
    by_id, _ = await create_key(conn, "b", "read")
    _, leaked = await create_key(conn, "c", "read")

    revoked = await revoke_key(conn, "cl_" + by_prefix.prefix)
    again = await revoke_key(conn, by_prefix.prefix)
    await revoke_key(conn, str(by_id.key_id))
    await revoke_key(conn, leaked)

    assert revoked.key_id == by_prefix.key_id and revoked.revoked_at is not None
    assert again.revoked_at == revoked.revoked_at
    assert all(k.revoked_at is not None for k in await list_keys(conn))
    assert await authenticate(conn, by_prefix_token) is None


async def test_revoke_names_what_it_could_not_find_or_could_not_choose(conn: Conn) -> None:
    first, _ = await create_key(conn, "a", "read")
    second, _ = await create_key(conn, "b", "read")
    await conn.execute("UPDATE api_keys SET prefix = 'samepref'")

    with pytest.raises(LookupError) as missing:
        await revoke_key(conn, "nope1234")
    with pytest.raises(LookupError) as ambiguous:
        await revoke_key(conn, "samepref")

    assert str(missing.value) == (
        "no API key has the id or prefix 'nope1234'; `community-ledger keys list` shows them"
    )
    assert str(ambiguous.value) == (
        f"2 API keys have the prefix 'samepref' ({first.key_id}, {second.key_id}); "
        "revoke one by its key id"
    )
    assert all(k.revoked_at is None for k in await list_keys(conn))


def test_scopes_nest_admin_over_write_over_read() -> None:
    held_needed_allowed = [
        ("read", "read", True),
        ("read", "write", False),
        ("read", "admin", False),
        ("write", "read", True),
        ("write", "write", True),
        ("write", "admin", False),
        ("admin", "read", True),
        ("admin", "write", True),
        ("admin", "admin", True),
    ]
    assert [allows(held, needed) for held, needed, _ in held_needed_allowed] == [
        allowed for _, _, allowed in held_needed_allowed
    ]
    with pytest.raises(ValueError, match="unknown scope 'root'"):
        allows("root", "read")


async def _last_used(conn: Conn, key_id: UUID) -> datetime | None:
    cur = await conn.execute("SELECT last_used_at FROM api_keys WHERE key_id = %s", [key_id])
    row = await cur.fetchone()
    assert row is not None
    last_used: datetime | None = row[0]
    return last_used


# --- the CLI ------------------------------------------------------------------------------


def community_ledger(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_create_prints_the_token_once_then_list_and_revoke_never_show_it(
    database_url: str,
) -> None:
    created = community_ledger(
        "create", "--name", "chat bot", "--scope", "write", database_url=database_url
    )
    token = created.stdout.strip()
    as_json = community_ledger(
        "create", "--name", "crm", "--scope", "read", "--json", database_url=database_url
    )
    listed = community_ledger("list", database_url=database_url)
    listed_json = community_ledger("list", "--json", database_url=database_url)
    revoked = community_ledger("revoke", token[:11], database_url=database_url)

    assert created.returncode == 0, created.stderr
    assert token.startswith("cl_") and len(token) == 46
    assert "this token cannot be shown again" in created.stderr
    shown = json.loads(as_json.stdout)
    assert (shown["name"], shown["scope"], shown["token"][:3]) == ("crm", "read", "cl_")
    assert set(shown) == {"key_id", "name", "scope", "token"}
    assert listed.returncode == 0, listed.stderr
    assert token[:11] in listed.stdout and "chat bot" in listed.stdout
    for output in (listed.stdout, listed_json.stdout, revoked.stdout):
        assert token[11:] not in output and shown["token"][11:] not in output
    assert [k["name"] for k in json.loads(listed_json.stdout)] == ["chat bot", "crm"]
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith("revoked API key ")
    assert "revoked" in community_ledger("list", database_url=database_url).stdout


def test_cli_revokes_by_key_id_and_by_a_leaked_token_with_a_note_to_use_the_id(
    database_url: str,
) -> None:
    by_id = json.loads(
        community_ledger(
            "create", "--name", "bot", "--scope", "write", "--json", database_url=database_url
        ).stdout
    )
    leaked = community_ledger(
        "create", "--name", "crm", "--scope", "read", database_url=database_url
    ).stdout.strip()

    revoked_by_id = community_ledger("revoke", by_id["key_id"], database_url=database_url)
    revoked_by_token = community_ledger("revoke", leaked, database_url=database_url)

    assert revoked_by_id.returncode == 0, revoked_by_id.stderr
    assert revoked_by_id.stdout.startswith(f"revoked API key {by_id['key_id']} ")
    assert "note" not in revoked_by_id.stderr
    assert revoked_by_token.returncode == 0, revoked_by_token.stderr
    assert f"({leaked[:11]}, crm)" in revoked_by_token.stdout
    assert leaked not in revoked_by_token.stdout
    assert "next time revoke by the key id or prefix" in revoked_by_token.stderr
    listed = json.loads(community_ledger("list", "--json", database_url=database_url).stdout)
    assert all(key["revoked_at"] for key in listed)


def test_cli_revoke_of_an_unknown_key_fails_in_one_line(database_url: str) -> None:
    failed = community_ledger("revoke", "nope1234", database_url=database_url)

    assert failed.returncode == 2
    assert failed.stderr == (
        "error: no API key has the id or prefix 'nope1234'; `community-ledger keys list` "
        "shows them\n"
    )


def test_cli_on_an_unmigrated_database_says_to_upgrade_first(empty_database_url: str) -> None:
    failed = community_ledger("list", database_url=empty_database_url)

    assert failed.returncode == 2
    assert "run `community-ledger db upgrade` first" in failed.stderr


# --- the guard ----------------------------------------------------------------------------


@get("/read", guards=[auth.require("read")])
async def read_something(request: Request[Any, Any, Any]) -> str:
    return str(request.state.api_key.name)


@get("/write", guards=[auth.require("write")])
async def write_something() -> str:
    return "written"


@get("/admin", guards=[auth.require("admin")])
async def administer_something() -> str:
    return "administered"


def tiny_app(database_url: str) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool:
            app.state.pool = pool
            yield

    return Litestar(
        [read_something, write_something, administer_something],
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="tiny",
            version="1",
            components=Components(security_schemes={"bearerAuth": auth.BEARER_SECURITY}),
        ),
    )


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=tiny_app(database_url)) as opened:
        yield opened


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_no_authorization_header_is_401_saying_what_to_send(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/read")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="community-ledger"'
    assert "send `Authorization: Bearer <token>`" in response.json()["detail"]


async def test_another_scheme_or_an_empty_bearer_is_401(
    client: AsyncTestClient[Litestar],
) -> None:
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer   "):
        response = await client.get("/read", headers={"Authorization": header})

        assert response.status_code == 401, header
        assert "must read `Bearer <token>`" in response.json()["detail"]


async def test_an_unknown_token_is_401_invalid_token(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/read", headers=bearer("cl_" + "x" * 43))

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["detail"] == (
        "the API key is not valid: it is unknown or has been revoked"
    )


async def test_a_revoked_key_is_401(client: AsyncTestClient[Litestar], conn: Conn) -> None:
    key, token = await create_key(conn, "old-bot", "admin")
    await revoke_key(conn, str(key.key_id))

    response = await client.get("/read", headers=bearer(token))

    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


async def test_a_read_key_on_a_write_route_is_403_naming_both_scopes(
    client: AsyncTestClient[Litestar], conn: Conn
) -> None:
    key, token = await create_key(conn, "crm", "read")

    response = await client.get("/write", headers=bearer(token))

    assert response.status_code == 403
    assert response.json()["detail"] == (
        f"this operation needs an API key with scope write or admin; "
        f"the key cl_{key.prefix} has scope read"
    )
    assert "crm" not in response.text, "a key's name may be a person's"
    assert 'error="insufficient_scope", scope="write"' in response.headers["www-authenticate"]


async def test_each_scope_reaches_exactly_the_routes_it_includes(
    client: AsyncTestClient[Litestar], conn: Conn
) -> None:
    tokens = {scope: (await create_key(conn, f"{scope}-bot", scope))[1] for scope in keys.SCOPES}

    statuses = {
        (held, route): (await client.get(f"/{route}", headers=bearer(token))).status_code
        for held, token in tokens.items()
        for route in keys.SCOPES
    }

    assert statuses == {
        ("read", "read"): 200,
        ("read", "write"): 403,
        ("read", "admin"): 403,
        ("write", "read"): 200,
        ("write", "write"): 200,
        ("write", "admin"): 403,
        ("admin", "read"): 200,
        ("admin", "write"): 200,
        ("admin", "admin"): 200,
    }


async def test_the_guard_leaves_the_key_on_the_request_state(
    client: AsyncTestClient[Litestar], conn: Conn
) -> None:
    _, token = await create_key(conn, "chat-bot", "read")

    response = await client.get("/read", headers=bearer(token))

    assert (response.status_code, response.text) == (200, "chat-bot")


async def test_revocation_takes_effect_once_the_cached_authentication_expires(
    client: AsyncTestClient[Litestar], conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(auth.CACHE, "clock", lambda: now[0])
    key, token = await create_key(conn, "chat-bot", "read")
    assert (await client.get("/read", headers=bearer(token))).status_code == 200

    await revoke_key(conn, str(key.key_id))
    within_ttl = await client.get("/read", headers=bearer(token))
    now[0] += auth.CACHE_SECONDS
    after_ttl = await client.get("/read", headers=bearer(token))

    assert within_ttl.status_code == 200
    assert after_ttl.status_code == 401


async def test_the_openapi_document_declares_bearer_auth(
    client: AsyncTestClient[Litestar],
) -> None:
    schemes = (await client.get("/schema/openapi.json")).json()["components"]["securitySchemes"]

    assert schemes["bearerAuth"]["type"] == "http"
    assert schemes["bearerAuth"]["scheme"] == "bearer"


def test_an_unknown_scope_fails_when_the_route_is_declared() -> None:
    with pytest.raises(ValueError, match="unknown scope 'owner'"):
        auth.require("owner")  # type: ignore[arg-type]
