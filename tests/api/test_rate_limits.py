"""Rate limits per client address, per API key, and on failed authentication: 429 problems
with Retry-After; probes exempt; guessing tokens past the limit never reaches the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from services.api.app import create_app
from services.limit_settings import LimitSettings, Rate, load_limit_settings, parse_rate
from tests.api.statements import Statements, count_statements

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]
FAKE = {"Authorization": "Bearer cl_" + "x" * 43}
NO_LIMITS = LimitSettings(per_key=None, per_address=None, failed_auth=None)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Statements:
    return count_statements(monkeypatch)


@asynccontextmanager
async def limited(database_url: str, **limits: Any) -> AsyncIterator[Client]:
    """The app with only the named limits on."""
    app = create_app(database_url, limits=msgspec.structs.replace(NO_LIMITS, **limits))
    async with AsyncTestClient(app=app) as client:
        yield client


def assert_too_many(answer: httpx.Response, detail: str) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert int(answer.headers["retry-after"]) >= 1
    assert detail in answer.json()["detail"]


async def test_an_address_past_its_limit_gets_429_with_retry_after_but_probes_pass(
    database_url: str, reader: dict[str, str]
) -> None:
    async with limited(database_url, per_address=Rate(3, "minute")) as client:
        answers = [await client.get("/v1/events", headers=reader) for _ in range(4)]
        probes = [await client.get(path) for path in ("/health", "/ready", "/metrics") * 3]

    assert [answer.status_code for answer in answers[:3]] == [200, 200, 200]
    assert_too_many(answers[3], "more than 3 requests per minute from this address")
    assert answers[3].headers["ratelimit-limit"] == "3"
    assert "ratelimit-limit" not in answers[0].headers  # the limits' shape only on a 429
    assert {probe.status_code for probe in probes} == {200}


async def test_an_api_key_past_its_limit_gets_429_while_another_key_goes_on(
    database_url: str, reader: dict[str, str], writer: dict[str, str]
) -> None:
    async with limited(database_url, per_key=Rate(2, "minute")) as client:
        first_key = [await client.get("/v1/events", headers=reader) for _ in range(4)]
        other_key = await client.get("/v1/events", headers=writer)

    # The key's first request authenticates it; from then on it counts against the key.
    assert [answer.status_code for answer in first_key[:3]] == [200, 200, 200]
    assert_too_many(first_key[3], "more than 2 requests per minute with this API key")
    assert other_key.status_code == 200


async def test_failed_authentication_past_its_limit_is_429_before_the_database(
    statements: Statements, database_url: str, reader: dict[str, str]
) -> None:
    async with limited(database_url, failed_auth=Rate(3, "minute")) as client:
        guesses = [
            await client.get("/v1/events", headers={"Authorization": f"Bearer cl_{n:043d}"})
            for n in range(3)
        ]
        looked_up = statements.naming("api_keys")
        refused = await client.get("/v1/events", headers={"Authorization": f"Bearer cl_{9:043d}"})
        even_a_real_key = await client.get("/v1/events", headers=reader)

    assert [guess.status_code for guess in guesses] == [401, 401, 401]
    assert looked_up == 3
    assert_too_many(refused, "more than 3 failed authentications per minute from this address")
    assert_too_many(even_a_real_key, "failed authentications")
    assert statements.naming("api_keys") == looked_up


async def test_a_token_that_failed_lately_is_refused_without_a_query(
    statements: Statements, database_url: str
) -> None:
    async with limited(database_url, failed_auth=Rate(100, "minute")) as client:
        answers = [await client.get("/v1/events", headers=FAKE) for _ in range(5)]

    assert [answer.status_code for answer in answers] == [401] * 5
    assert statements.naming("api_keys") == 1


def test_rates_read_from_the_environment_and_bad_ones_are_refused_by_name() -> None:
    limits = load_limit_settings(
        {
            "LEDGER_RATE_LIMIT_PER_KEY": "100/minute",
            "LEDGER_RATE_LIMIT_PER_ADDRESS": "off",
            "LEDGER_MAX_WAITERS": "7",
            "LEDGER_IDEMPOTENCY_RETENTION_HOURS": "48",
        }
    )

    assert limits.per_key == Rate(100, "minute") and limits.per_address is None
    assert limits.max_waiters == 7 and limits.idempotency_retention.total_seconds() == 48 * 3600
    assert limits.failed_auth == LimitSettings().failed_auth
    for bad in ("100", "5/fortnight", "-1/second", "²/second"):
        with pytest.raises(ValueError, match="100/minute"):
            parse_rate(bad)
