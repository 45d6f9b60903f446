"""A rotated-away signing secret keeps signing for its grace period, beside the new one,
then stops; a master-key rotation re-wraps both. Checked by a real receiver on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import AsyncConnection
from standardwebhooks import Webhook, WebhookVerificationError

from services import bootstrap
from services.privacy.keyring import Keyring
from services.privacy.master import new_master_key
from services.privacy.rotation import rotate_master
from services.settings import load_settings
from services.store.ledger import Ledger
from services.webhooks import subscriptions as subs
from services.webhooks.dispatcher import Dispatcher
from services.webhooks.secrets import Signer, new_secret, wrap_secret
from tests.webhooks.conftest import Received, Receiver, dispatch_settings, noted, subscribe

pytestmark = pytest.mark.anyio


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[AsyncConnection[Any]]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as opened:
        yield opened


async def rotate(
    conn: AsyncConnection[Any], webhook_id: UUID, grace: timedelta
) -> tuple[str, subs.Rotated]:
    """What `POST /v1/webhooks/{id}/secret` does: a new secret, wrapped, stored."""
    secret = new_secret()
    wrapped, kek_id = wrap_secret(bootstrap.master_key(load_settings()), secret)
    rotated = await subs.rotate_secret(conn, webhook_id, wrapped, kek_id, grace)
    assert rotated is not None
    return secret, rotated


def verifies(secret: str, request: Received) -> bool:
    try:
        Webhook(secret).verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    return True


def signed_first_by(secret: str, request: Received) -> bool:
    headers = request.headers
    at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(headers["webhook-id"], at, request.body.decode())
    return headers["webhook-signature"].split(" ")[0] == expected


async def test_during_the_grace_period_every_delivery_verifies_with_the_old_and_the_new_secret(
    ledger: Ledger,
    keyring: Keyring,
    conn: AsyncConnection[Any],
    database_url: str,
    projector_url: str,
    receiver: Receiver,
) -> None:
    hook = subscribe(database_url, receiver.url)
    new, rotated = await rotate(conn, hook.webhook_id, timedelta(hours=24))
    await ledger.append([noted(i) for i in range(3)])

    await Dispatcher(projector_url, keyring, dispatch_settings()).run()

    seen = receiver.seen(hook.path)
    assert len(seen) == 3
    for request in seen:
        assert verifies(hook.secret, request) and verifies(new, request)
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        assert signed_first_by(new, request)
    assert rotated.previous_valid_until is not None
    assert rotated.previous_valid_until > datetime.now(UTC) + timedelta(hours=23)


@pytest.mark.parametrize("ended", ["grace period over", "grace of zero"])
async def test_after_the_grace_period_only_the_new_secret_verifies(
    ledger: Ledger,
    keyring: Keyring,
    conn: AsyncConnection[Any],
    database_url: str,
    projector_url: str,
    receiver: Receiver,
    ended: str,
) -> None:
    hook = subscribe(database_url, receiver.url)
    if ended == "grace of zero":
        new, rotated = await rotate(conn, hook.webhook_id, timedelta(0))
        assert rotated.previous_valid_until is None
    else:
        new, _ = await rotate(conn, hook.webhook_id, timedelta(hours=1))
        await conn.execute(
            "UPDATE webhooks SET previous_valid_until = now() - interval '1 second' "
            "WHERE webhook_id = %s",
            [hook.webhook_id],
        )
    await ledger.append([noted(i) for i in range(2)])

    await Dispatcher(projector_url, keyring, dispatch_settings()).run()

    seen = receiver.seen(hook.path)
    assert len(seen) == 2
    for request in seen:
        assert verifies(new, request) and not verifies(hook.secret, request)
        assert " " not in request.headers["webhook-signature"]


async def test_a_second_rotation_in_the_grace_period_keeps_only_the_secret_it_replaced(
    ledger: Ledger,
    keyring: Keyring,
    conn: AsyncConnection[Any],
    database_url: str,
    projector_url: str,
    receiver: Receiver,
) -> None:
    hook = subscribe(database_url, receiver.url)
    middle, first = await rotate(conn, hook.webhook_id, timedelta(hours=24))
    newest, second = await rotate(conn, hook.webhook_id, timedelta(hours=2))
    await ledger.append([noted(0)])

    await Dispatcher(projector_url, keyring, dispatch_settings()).run()

    [request] = receiver.seen(hook.path)
    assert verifies(newest, request) and verifies(middle, request)
    assert not verifies(hook.secret, request)
    assert signed_first_by(newest, request)
    assert first.previous_valid_until and second.previous_valid_until
    assert second.previous_valid_until < first.previous_valid_until


async def test_a_master_key_rotation_rewraps_both_secrets_and_both_keep_signing(
    ledger: Ledger,
    conn: AsyncConnection[Any],
    database_url: str,
    projector_url: str,
    receiver: Receiver,
) -> None:
    hook = subscribe(database_url, receiver.url)
    new, _ = await rotate(conn, hook.webhook_id, timedelta(hours=24))
    expired = subscribe(database_url, receiver.url)
    await rotate(conn, expired.webhook_id, timedelta(hours=1))
    await conn.execute(
        "UPDATE webhooks SET previous_valid_until = now() - interval '1 second' "
        "WHERE webhook_id = %s",
        [expired.webhook_id],
    )
    await ledger.append([noted(0)])
    old_master, new_master = bootstrap.master_key(load_settings()), new_master_key()

    rotated = await rotate_master(conn, old_master, new_master)

    assert rotated.webhook_secrets == 3  # two current, one previous in its grace period
    with psycopg.connect(database_url) as sync:
        rows = dict(
            (row[0], row[1:])
            for row in sync.execute(
                "SELECT webhook_id, kek_id, previous_kek_id, previous_secret_wrapped IS NULL, "
                "previous_valid_until IS NULL FROM webhooks"
            ).fetchall()
        )
    assert rows[hook.webhook_id] == (new_master.kek_id, new_master.kek_id, False, False)
    assert rows[expired.webhook_id] == (new_master.kek_id, None, True, True)
    keyring = await Keyring.open(conn, new_master)

    await Dispatcher(projector_url, keyring, dispatch_settings()).run()

    [request] = receiver.seen(hook.path)
    assert verifies(hook.secret, request) and verifies(new, request)


def test_the_signer_drops_the_old_signature_at_the_end_of_the_grace_period() -> None:
    old, new = new_secret(), new_secret()
    until = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    signer = Signer(new, old, until)

    before = signer.sign("msg", until - timedelta(seconds=1), "{}")
    at_end = signer.sign("msg", until, "{}")

    assert before.split(" ") == [
        Webhook(new).sign("msg", until - timedelta(seconds=1), "{}"),
        Webhook(old).sign("msg", until - timedelta(seconds=1), "{}"),
    ]
    assert at_end == Webhook(new).sign("msg", until, "{}")
