"""Immutability against the app's own credentials: what the API's and the projector's
database roles may do, and every way around `ledger_append` they are refused."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from bench.synthetic import fill
from services import bootstrap, keys, migrate
from services.database import with_database
from services.projector import builds
from services.projector.appliers import make_appliers
from services.projector.runner import Runner
from services.settings import Roles, SettingsError, load_settings
from services.store import privileges
from services.store.ledger import Ledger
from services.webhooks import delivery, subscriptions
from services.webhooks.secrets import new_secret, wrap_secret
from tests.conftest import TEST_ROLES, as_role
from tests.store.conftest import count_rows, new_event

pytestmark = pytest.mark.anyio

KEY_ID = "00000000-0000-7000-8000-000000000001"

REFUSED = {
    "insert an event": (
        "INSERT INTO events (position, event_id, type, data, stream, stream_version, occurred_at) "
        "VALUES (999, gen_random_uuid(), 'Forged', '{}', 'forged', 1, now())"
    ),
    "update an event": "UPDATE events SET type = 'Tampered'",
    "delete an event": "DELETE FROM events",
    "truncate the ledger": "TRUNCATE events, event_tags",
    "insert a tag": "INSERT INTO event_tags (tag, position) VALUES ('member:forged', 1)",
    "update a tag": "UPDATE event_tags SET tag = 'x'",
    "delete a tag": "DELETE FROM event_tags",
    "disable the append-only trigger": "ALTER TABLE events DISABLE TRIGGER events_append_only",
    "disable the tags' triggers": "ALTER TABLE event_tags DISABLE TRIGGER USER",
    "skip triggers for the session": "SET session_replication_role = replica",
    "create an admin key": (
        "INSERT INTO api_keys (key_id, name, scope, prefix, secret_hash) "
        "VALUES (gen_random_uuid(), 'forged', 'admin', 'forged', 'forged')"
    ),
    "revive a revoked key": f"UPDATE api_keys SET revoked_at = NULL WHERE key_id = '{KEY_ID}'",
    "raise a key's scope": f"UPDATE api_keys SET scope = 'admin' WHERE key_id = '{KEY_ID}'",
    "delete a key": "DELETE FROM api_keys",
    "forge an idempotency answer": (
        "INSERT INTO idempotency_keys (key, fingerprint, response) VALUES ('k', 'f', '{}')"
    ),
    "create an object beside the ledger's": "CREATE TABLE events_shadow (x int)",
    "replace ledger_append": (
        "CREATE OR REPLACE FUNCTION ledger_append(jsonb, jsonb, jsonb, text, text) "
        "RETURNS TABLE (a bigint, b uuid, c boolean) "
        "LANGUAGE sql AS 'SELECT 1::bigint, NULL::uuid, false'"
    ),
}


@pytest.fixture
def granted(database_url: str) -> str:
    """A database as `db upgrade` leaves it with roles configured, whatever the suite's mode."""
    upgrade(database_url, TEST_ROLES)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO api_keys (key_id, name, scope, prefix, secret_hash, revoked_at) "
            "VALUES (%s, 'revoked', 'read', 'revoked', 'revoked-hash', now())",
            [KEY_ID],
        )
    return database_url


def upgrade(url: str, roles: Roles) -> None:
    """As `community-ledger db upgrade` does: migrate and grant, then make the ledger's
    handle secret as the owner (the restricted roles may only read it)."""
    bootstrap.upgrade(url, bootstrap.master_key(load_settings()), roles=roles)


def connect_as(url: str, role: str) -> psycopg.Connection[Any]:
    password = TEST_ROLES.api_password if role == TEST_ROLES.api else TEST_ROLES.projector_password
    return psycopg.connect(as_role(url, role, password), autocommit=True)


def key_row(url: str) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT scope, revoked_at IS NOT NULL, (SELECT count(*) FROM api_keys) "
            "FROM api_keys WHERE key_id = %s",
            [KEY_ID],
        ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize("role", [TEST_ROLES.api, TEST_ROLES.projector])
@pytest.mark.parametrize("what", list(REFUSED))
async def test_neither_role_can_get_around_ledger_append(
    granted: str, ledger: Ledger, role: str, what: str
) -> None:
    await ledger.append([new_event(tags=("member:a",))])
    before = key_row(granted)

    with connect_as(granted, role) as conn, pytest.raises(psycopg.Error) as refused:
        conn.execute(REFUSED[what])

    assert isinstance(refused.value, psycopg.errors.InsufficientPrivilege), refused.value
    message = str(refused.value)
    # The role's rights refuse it: not the trigger, which a superuser could switch off.
    assert "append-only" not in message, message
    assert any(m in message for m in ("permission denied", "must be owner")), message
    assert count_rows(granted) == 1 and count_rows(granted, "event_tags") == 1
    assert key_row(granted) == before == ("read", True, 1)


async def test_the_projector_cannot_append(granted: str) -> None:
    event = {
        "event_id": str(uuid.uuid4()),
        "type": "Forged",
        "data": {},
        "stream": "s",
        "occurred_at": "2026-01-01T00:00:00Z",
    }

    with (
        connect_as(granted, TEST_ROLES.projector) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege) as refused,
    ):
        conn.execute("SELECT * FROM ledger_append(%s::jsonb)", [json.dumps([event])])

    assert "permission denied for function ledger_append" in str(refused.value)
    assert count_rows(granted) == 0


async def test_the_api_appends_through_ledger_append_and_reads_what_it_serves(
    granted: str,
) -> None:
    api_url = as_role(granted, TEST_ROLES.api, TEST_ROLES.api_password)
    async with (
        AsyncConnectionPool(api_url, min_size=1, max_size=2, open=False) as pool,
        bootstrap.keyring(api_url) as keyring,
    ):
        ledger = Ledger(pool, keyring)
        once = {"idempotency_key": "once", "fingerprint": "f"}
        appended = await ledger.append([new_event(tags=("member:a",))], **once)
        again = await ledger.append([new_event(tags=("member:a",))], **once)
    async with await psycopg.AsyncConnection.connect(granted, autocommit=True) as owner:
        _, token = await keys.create_key(owner, "tool", "write")

    async with await psycopg.AsyncConnection.connect(api_url, autocommit=True) as conn:
        key = await keys.authenticate(conn, token)  # stamps last_used_at
        profiles = await (
            await conn.execute("SELECT count(*) FROM read.member_profiles")
        ).fetchone()
        assert key is not None
        cur = await conn.execute(
            "SELECT last_used_at IS NOT NULL FROM api_keys WHERE key_id = %s", [key.key_id]
        )
        stamped = await cur.fetchone()

    assert tuple(appended.positions) == tuple(again.positions) == (1,)
    assert key is not None and key.scope == "write" and stamped == (True,)
    assert profiles == (0,)
    assert count_rows(granted) == 1


async def test_the_projector_builds_swaps_and_rebuilds_what_the_api_reads(
    granted: str, ledger: Ledger
) -> None:
    head = await fill(ledger, 200, members=10)
    api_url = as_role(granted, TEST_ROLES.api, TEST_ROLES.api_password)
    projector_url = as_role(granted, TEST_ROLES.projector, TEST_ROLES.projector_password)
    applier = make_appliers()[0]

    assert await Runner(projector_url).run() == []
    async with await psycopg.AsyncConnection.connect(api_url, autocommit=True) as api:
        # What `POST /v1/projections/{name}/rebuild` does: a row, no schema.
        requested = await builds.request_build(api, applier.name, applier.version)
    assert await Runner(projector_url, [applier.name]).run() == []

    with psycopg.connect(api_url) as conn:
        live = conn.execute(
            "SELECT schema_name FROM projection_builds WHERE name = %s AND state = 'live'",
            [applier.name],
        ).fetchone()
        for table in applier.tables:
            conn.execute(f"SELECT count(*) FROM read.{table}").fetchone()
    assert live == (requested.schema_name,)
    with psycopg.connect(api_url) as conn:
        row = conn.execute("SELECT min(position) FROM projection_builds WHERE state = 'live'")
        assert row.fetchone() == (head,)


def test_ledger_append_runs_as_its_owner_with_a_fixed_search_path(granted: str) -> None:
    with psycopg.connect(granted) as conn:
        row = conn.execute(
            "SELECT prosecdef, proconfig, pg_get_userbyid(proowner) = current_user "
            "FROM pg_proc WHERE proname = 'ledger_append'"
        ).fetchone()

    assert row == (True, ["search_path=public, pg_temp"], True)


def test_the_api_role_only_checks_the_schema_and_never_migrates(granted: str) -> None:
    api_url = as_role(granted, TEST_ROLES.api, TEST_ROLES.api_password)

    migrate.upgrade_if_owner(api_url)  # at head: nothing to do, nothing refused

    assert migrate.owns_ledger(granted) and not migrate.owns_ledger(api_url)
    with psycopg.connect(granted, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0004_parallel_appends'")
    with pytest.raises(LookupError, match="run `community-ledger db upgrade` as the database's"):
        migrate.upgrade_if_owner(api_url)


def test_a_superuser_is_refused_as_the_api_role(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT rolname FROM pg_roles WHERE rolsuper LIMIT 1").fetchone()
    assert row is not None
    roles = Roles(api=row[0], projector=TEST_ROLES.projector)

    with pytest.raises(privileges.RolesError, match="has SUPERUSER"):
        migrate.upgrade(database_url, roles=roles)


def test_the_old_single_app_role_is_a_clear_error_not_a_silent_downgrade() -> None:
    with pytest.raises(SettingsError, match="LEDGER_API_ROLE and LEDGER_PROJECTOR_ROLE"):
        load_settings({"LEDGER_APP_ROLE": "ledger_app"})
    with pytest.raises(SettingsError, match="together"):
        load_settings({"LEDGER_API_ROLE": "ledger_api"})
    settings = load_settings(
        {"LEDGER_API_ROLE": "a", "LEDGER_PROJECTOR_ROLE": "p", "LEDGER_API_PASSWORD": "secret"}
    )
    assert settings.roles == Roles(api="a", projector="p", api_password="secret")
    assert "secret" not in repr(settings)


def test_an_owner_that_is_no_superuser_creates_the_roles_and_the_system_works(
    server_url: str,
) -> None:
    """A managed PostgreSQL: the owner may CREATEROLE but is no superuser."""
    suffix = uuid.uuid4().hex[:8]
    owner, database = f"ledger_owner_{suffix}", f"ledger_test_owned_{suffix}"
    roles = Roles(api=f"ledger_api_{suffix}", projector=f"ledger_projector_{suffix}")
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {owner} LOGIN CREATEROLE")
        admin.execute(f"CREATE DATABASE {database} OWNER {owner}")
    # A URL, not a conninfo string: Alembic parses it.
    scheme, _, rest = with_database(server_url, database).partition("://")
    owner_url = f"{scheme}://{owner}@{rest.rpartition('@')[2]}"
    try:
        upgrade(owner_url, roles)
        upgrade(owner_url, roles)  # again: idempotent
        api_url = as_role(owner_url, roles.api, None)
        projector_url = as_role(owner_url, roles.projector, None)
        head = asyncio.run(append_as(api_url, 100))
        assert asyncio.run(Runner(projector_url).run()) == []
        with psycopg.connect(api_url) as conn:
            profiles = conn.execute("SELECT count(*) FROM read.member_profiles").fetchone()
            owners = conn.execute(
                "SELECT DISTINCT pg_get_userbyid(nspowner) FROM pg_namespace n "
                "JOIN projection_builds b ON b.schema_name = n.nspname"
            ).fetchall()
            refused = pytest.raises(psycopg.errors.InsufficientPrivilege)
            with refused:
                conn.execute("DELETE FROM events")
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            for role in (roles.api, roles.projector, owner):
                admin.execute(f"DROP ROLE IF EXISTS {role}")

    assert profiles == (5,) and head == 100
    assert owners == [(roles.projector,)]


async def append_as(url: str, count: int) -> int:
    async with (
        AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool,
        bootstrap.keyring(url) as keyring,
    ):
        return await fill(Ledger(pool, keyring), count, members=5)


async def test_the_api_rotates_a_webhook_secret_and_the_dispatcher_reads_both_but_changes_neither(
    granted: str,
) -> None:
    master = bootstrap.master_key(load_settings())
    webhook_id = uuid.uuid4()
    wrapped, kek_id = wrap_secret(master, new_secret())
    with psycopg.connect(granted, autocommit=True) as owner:
        owner.execute(
            "INSERT INTO webhooks (webhook_id, url, secret_wrapped, kek_id) "
            "VALUES (%s, 'https://93.184.215.14/hook', %s, %s)",
            [webhook_id, wrapped, kek_id],
        )
    api_url = as_role(granted, TEST_ROLES.api, TEST_ROLES.api_password)
    projector_url = as_role(granted, TEST_ROLES.projector, TEST_ROLES.projector_password)
    newer, newer_kek = wrap_secret(master, new_secret())

    async with await psycopg.AsyncConnection.connect(api_url, autocommit=True) as api:
        rotated = await subscriptions.rotate_secret(
            api, webhook_id, newer, newer_kek, timedelta(hours=1)
        )
    async with await psycopg.AsyncConnection.connect(projector_url, autocommit=True) as projector:
        loaded = await delivery.load_subscription(projector, webhook_id)

    assert rotated is not None and rotated.previous_valid_until is not None
    assert loaded is not None
    assert (loaded.secret_wrapped, loaded.previous_secret_wrapped) == (newer, wrapped)
    assert loaded.previous_valid_until == rotated.previous_valid_until
    for column in ("secret_wrapped", "previous_secret_wrapped", "previous_valid_until"):
        with (
            connect_as(granted, TEST_ROLES.projector) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute(f"UPDATE webhooks SET {column} = {column}")
