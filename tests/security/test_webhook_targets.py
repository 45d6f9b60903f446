"""SSRF: a webhook may not point the server at itself, its network or a metadata service,
however the address is spelled; the setting for tests and single machines lifts that; and
a master-key rotation re-wraps the webhooks' signing secrets with the members' keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient
from psycopg import AsyncConnection

from services import bootstrap
from services.api.app import create_app
from services.privacy.master import MasterKey, WrongMasterKey, new_master_key
from services.privacy.rotation import rotate_master
from services.settings import load_settings
from services.webhooks.secrets import unwrap_secret
from services.webhooks.targets import (
    UnresolvedTarget,
    UnsafeTarget,
    check_url,
    resolve_target,
)
from tests.security.routes import Client, assert_problem

pytestmark = pytest.mark.anyio

REFUSED = {
    "loopback": "http://127.0.0.1/hook",
    "loopback-elsewhere": "http://127.8.9.10:8080/hook",
    "ipv6-loopback": "http://[::1]/hook",
    "localhost": "http://localhost:8000/hook",
    "ten": "http://10.1.2.3/hook",
    "one-seven-two": "http://172.16.0.1/hook",
    "one-seven-two-top": "http://172.31.255.254/hook",
    "one-nine-two": "http://192.168.1.1/hook",
    "metadata": "http://169.254.169.254/latest/meta-data/",
    "mapped-loopback": "http://[::ffff:127.0.0.1]/hook",
    "mapped-metadata": "http://[::ffff:a9fe:a9fe]/hook",
    "unspecified": "http://0.0.0.0/hook",
    "ipv6-unspecified": "http://[::]/hook",
    "integer": "http://2130706433/hook",
    "hex": "http://0x7f.1/hook",
    "octal": "http://0177.0.0.1/hook",
    "short": "http://127.1/hook",
    "cgnat": "http://100.64.0.1/hook",
    "unique-local": "http://[fc00::1]/hook",
    "ipv6-link-local": "http://[fe80::1]/hook",
    "sixtofour-loopback": "http://[2002:7f00:1::]/hook",
    "nat64-private": "http://[64:ff9b::a00:1]/hook",
    "multicast": "http://224.0.0.1/hook",
    "broadcast": "http://255.255.255.255/hook",
    "uppercase-scheme": "HTTP://127.0.0.1/hook",
}
MALFORMED = {
    "ftp": ("ftp://example.org/x", "scheme"),
    "file": ("file:///etc/passwd", "scheme"),
    "gopher": ("gopher://127.0.0.1:6379/_INFO", "scheme"),
    "no-scheme": ("example.org/hook", "scheme"),
    "userinfo": ("http://user:pw@example.org/", "user name or password"),
    "userinfo-trick": ("http://example.org@127.0.0.1/", "user name or password"),
    "no-host": ("http:///hook", "no host"),
    "port-zero": ("http://example.org:0/", "port"),
    "port-too-big": ("http://example.org:70000/", "port"),
    "space": ("http://exa mple.org/", "printable ASCII"),
    "newline": ("http://example.org/\r\nX: y", "printable ASCII"),
    "non-ascii": ("http://exämple.org/", "xn--"),
    "too-long": ("https://example.org/" + "a" * 2048, "longer than"),
}


@pytest.mark.parametrize("url", REFUSED.values(), ids=REFUSED.keys())
async def test_a_url_reaching_a_non_public_address_is_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget) as refused:
        await resolve_target(url, allow_private=False)

    assert refused.value.reason.startswith("the URL resolves to ")
    assert "LEDGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS" in refused.value.reason
    assert not any(c.isdigit() for c in refused.value.reason), "no address is echoed"


@pytest.mark.parametrize(("url", "named"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_url_that_cannot_be_a_target_as_written_says_why(url: str, named: str) -> None:
    reason = check_url(url)

    assert reason is not None and named in reason
    with pytest.raises(UnsafeTarget, match="the URL"):
        await resolve_target(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    ["https://93.184.215.14/hook", "http://[2606:4700:4700::1111]:8443/x", "http://8.8.8.8"],
)
async def test_a_public_address_is_a_target(url: str) -> None:
    assert check_url(url) is None
    assert len(await resolve_target(url, allow_private=False)) == 1


async def test_the_setting_lets_loopback_and_private_targets_through() -> None:
    loopback = await resolve_target("http://localhost:8000/hook", allow_private=True)
    private = await resolve_target("http://10.1.2.3/hook", allow_private=True)

    assert all(address.is_loopback for address in loopback)
    assert [str(address) for address in private] == ["10.1.2.3"]


async def test_a_host_that_does_not_resolve_is_refused_without_echoing_it() -> None:
    with pytest.raises(UnresolvedTarget) as refused:
        await resolve_target("http://no-such-host.invalid/hook", allow_private=True)

    assert refused.value.reason == "the URL's host does not resolve"


async def test_the_api_refuses_an_unsafe_target_with_a_422_naming_the_class_only(
    client: Client, admin: dict[str, str], database_url: str
) -> None:
    for name in ("metadata", "integer", "hex", "mapped-loopback", "localhost"):
        answer = await client.post("/v1/webhooks", json={"url": REFUSED[name]}, headers=admin)

        problem = assert_problem(answer, 422)
        assert problem["detail"].startswith("url: the URL resolves to "), name
        for detail in ("127.0.0.1", "169.254", "localhost", "2130706433", "0x7f"):
            assert detail not in problem["detail"], name
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM webhooks").fetchone() == (0,)


@pytest.fixture
async def allowing(
    api_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AsyncTestClient[Any]]:
    """A server started with LEDGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS=1."""
    monkeypatch.setenv("LEDGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "1")
    async with AsyncTestClient(app=create_app(api_url)) as client:
        yield client


async def test_with_the_setting_the_api_subscribes_a_loopback_receiver(
    allowing: Client, admin: dict[str, str]
) -> None:
    answer = await allowing.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9000/hook"}, headers=admin
    )

    assert answer.status_code == 201, answer.text
    malformed = await allowing.post("/v1/webhooks", json={"url": "file:///x"}, headers=admin)
    assert "scheme" in assert_problem(malformed, 400)["detail"]


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[AsyncConnection[Any]]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as opened:
        yield opened


def webhook_rows(database_url: str) -> dict[str, tuple[bytes, str]]:
    with psycopg.connect(database_url) as sync:
        rows = sync.execute("SELECT webhook_id, secret_wrapped, kek_id FROM webhooks").fetchall()
    return {str(webhook_id): (bytes(wrapped), kek_id) for webhook_id, wrapped, kek_id in rows}


async def test_rotating_the_master_key_rewraps_every_webhook_secret(
    client: Client, admin: dict[str, str], database_url: str, conn: AsyncConnection[Any]
) -> None:
    master: MasterKey = bootstrap.master_key(load_settings())
    secrets = {}
    for _ in range(3):
        made = await client.post(
            "/v1/webhooks", json={"url": "https://93.184.215.14/hook"}, headers=admin
        )
        secrets[made.json()["id"]] = made.json()["secret"]
    new = new_master_key()

    rotated = await rotate_master(conn, master, new)

    assert rotated.webhook_secrets == 3
    rows = webhook_rows(database_url)
    assert {kek_id for _, kek_id in rows.values()} == {new.kek_id}
    assert {i: unwrap_secret(new, *row) for i, row in rows.items()} == secrets
    wrapped, _ = next(iter(rows.values()))
    with pytest.raises(WrongMasterKey):
        unwrap_secret(master, wrapped, master.kek_id)
    stale = await client.post(f"/v1/webhooks/{next(iter(secrets))}/secret", headers=admin)
    assert stale.status_code == 503, "a server holding the old key must not wrap with it"
    assert (
        unwrap_secret(new, *webhook_rows(database_url)[next(iter(secrets))])
        == (secrets[next(iter(secrets))])
    )
