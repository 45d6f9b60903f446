"""The dispatcher delivers, signs, filters, retries and disables, against a real receiver."""

from __future__ import annotations

import msgspec
import pytest
from standardwebhooks import Webhook

from services.privacy.keyring import Keyring
from services.store.ledger import Ledger
from services.store.public import event_out
from services.webhooks.dispatcher import Dispatcher
from tests.webhooks.conftest import (
    Receiver,
    deliveries,
    dispatch_settings,
    noted,
    subscribe,
    subscription_row,
)

pytestmark = pytest.mark.anyio


async def test_every_event_is_delivered_in_order_signed_as_the_feed_shows_it(
    ledger: Ledger, keyring: Keyring, database_url: str, projector_url: str, receiver: Receiver
) -> None:
    hook = subscribe(database_url, receiver.url)
    appended = await ledger.append([noted(i) for i in range(5)])

    await Dispatcher(projector_url, keyring, dispatch_settings()).run()

    seen = receiver.seen(hook.path)
    feed = await ledger.read_feed()
    assert [r.headers["webhook-id"] for r in seen] == [str(e) for e in appended.event_ids]
    assert [r.body for r in seen] == [msgspec.json.encode(event_out(e)) for e in feed]
    for request in seen:
        Webhook(hook.secret).verify(request.body, request.headers)
        assert request.headers["content-type"] == "application/json"
    assert subscription_row(database_url, hook.webhook_id)["position"] == appended.positions[-1]
    assert [row[:3] for row in deliveries(database_url, hook.webhook_id)] == [
        (position, 1, 204) for position in appended.positions
    ]
