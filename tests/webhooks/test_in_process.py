"""`serve` with the embedded database runs the dispatcher in its process, beside the projector."""

from __future__ import annotations

import asyncio
import time

import pytest
from litestar.testing import AsyncTestClient
from standardwebhooks import Webhook

from services.api.app import create_app
from services.store.ledger import Ledger
from tests.webhooks.conftest import Receiver, noted, subscribe

pytestmark = pytest.mark.anyio


async def test_the_server_with_its_projector_delivers_webhooks_too(
    ledger: Ledger,
    api_url: str,
    projector_url: str,
    database_url: str,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEDGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "1")
    hook = subscribe(database_url, receiver.url)
    app = create_app(api_url, run_projector=True, projector_url=projector_url)

    async with AsyncTestClient(app=app):
        appended = await ledger.append([noted(0)])
        deadline = time.monotonic() + 15
        while not receiver.seen(hook.path) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    [request] = receiver.seen(hook.path)
    assert request.headers["webhook-id"] == str(appended.event_ids[0])
    Webhook(hook.secret).verify(request.body, request.headers)
