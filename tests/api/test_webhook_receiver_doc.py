"""The receiver docs/integrating.md prints, run as printed, verifies a real delivery: the
subscription made over HTTP, the event delivered by the dispatcher, the signature checked
by `standardwebhooks`; and it turns away a delivery signed with another secret."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient
from standardwebhooks import Webhook

from services.api.app import create_app
from services.privacy.keyring import Keyring
from services.settings import load_settings
from services.webhooks.dispatcher import Dispatcher
from services.webhooks.secrets import new_secret
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio


def receiver_code() -> str:
    text = (ROOT / "docs" / "integrating.md").read_text()
    section = text.split("\n## Webhooks\n", 1)[1].split("\n## ", 1)[0]
    [code] = [
        block
        for block in re.findall(r"```python\n(.*?)```", section, flags=re.S)
        if "standardwebhooks" in block
    ]
    return code


def test_the_documented_receiver_is_about_twenty_lines() -> None:
    lines = [line for line in receiver_code().splitlines() if line.strip()]

    assert len(lines) <= 22, len(lines)


@pytest.fixture
def port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def documented_receiver(port: int, secret: str) -> Iterator[subprocess.Popen[str]]:
    """The doc's code block, run as printed with its two environment variables."""
    env = {**os.environ, "WEBHOOK_SECRET": secret, "PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-c", receiver_code()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
async def allowing(
    api_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AsyncTestClient[Any]]:
    """The server as one machine runs it: loopback targets allowed."""
    monkeypatch.setenv("LEDGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "1")
    async with AsyncTestClient(app=create_app(api_url)) as client:
        yield client


async def test_the_documented_receiver_verifies_a_real_delivery(
    allowing: AsyncTestClient[Any],
    admin: dict[str, str],
    writer: dict[str, str],
    projector_url: str,
    keyring: Keyring,
    port: int,
) -> None:
    made = await allowing.post(
        "/v1/webhooks", json={"url": f"http://127.0.0.1:{port}/ledger"}, headers=admin
    )
    assert made.status_code == 201, made.text
    subscription = made.json()
    written = (
        await allowing.post("/v1/members", json={"display_name": "Ana"}, headers=writer)
    ).json()
    settings = msgspec.structs.replace(load_settings(), webhook_timeout_seconds=5.0)
    with documented_receiver(port, subscription["secret"]) as receiver:
        await Dispatcher(projector_url, keyring, settings).run()
        forged = _forged_delivery(port)
    out = receiver.stdout.read() if receiver.stdout else ""

    position, event_type, event_id = out.split()
    assert (int(position), event_type, event_id) == (
        written["positions"][0],
        "MemberRegistered",
        written["event_ids"][0],
    )
    assert forged == 400
    log = (
        await allowing.get(f"/v1/webhooks/{subscription['id']}/deliveries", headers=admin)
    ).json()
    assert [(d["position"], d["status_code"]) for d in log["deliveries"]] == [
        (written["positions"][0], 204)
    ]
    after = (await allowing.get(f"/v1/webhooks/{subscription['id']}", headers=admin)).json()
    assert after["position"] == written["positions"][0]


async def test_the_documented_receiver_still_holding_the_old_secret_accepts_during_the_grace_period(
    allowing: AsyncTestClient[Any],
    admin: dict[str, str],
    writer: dict[str, str],
    projector_url: str,
    keyring: Keyring,
    port: int,
) -> None:
    made = await allowing.post(
        "/v1/webhooks", json={"url": f"http://127.0.0.1:{port}/ledger"}, headers=admin
    )
    subscription = made.json()
    rotated = await allowing.post(f"/v1/webhooks/{subscription['id']}/secret", headers=admin)
    assert rotated.status_code == 200, rotated.text
    written = (
        await allowing.post("/v1/members", json={"display_name": "Ana"}, headers=writer)
    ).json()
    settings = msgspec.structs.replace(load_settings(), webhook_timeout_seconds=5.0)
    with documented_receiver(port, subscription["secret"]) as receiver:
        await Dispatcher(projector_url, keyring, settings).run()
    out = receiver.stdout.read() if receiver.stdout else ""

    assert out.split() == [
        str(written["positions"][0]),
        "MemberRegistered",
        written["event_ids"][0],
    ]
    log = (
        await allowing.get(f"/v1/webhooks/{subscription['id']}/deliveries", headers=admin)
    ).json()
    assert [d["status_code"] for d in log["deliveries"]] == [204]


def _forged_delivery(port: int) -> int:
    """A delivery as the ledger would send it, but signed with another secret."""
    body = '{"position": 1, "type": "MemberRegistered", "event_id": "x"}'
    now = datetime.now(UTC)
    signature = Webhook(new_secret()).sign("msg_forged", now, body)
    headers = {
        "webhook-id": "msg_forged",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return httpx.post(f"http://127.0.0.1:{port}/ledger", content=body, headers=headers).status_code
