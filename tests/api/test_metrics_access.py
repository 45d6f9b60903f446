"""/metrics restricted to a bearer token, or served on an address of its own."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from services.api.app import create_app
from services.limit_settings import LimitSettings, load_limit_settings
from services.serve import metrics_served_apart

Client = AsyncTestClient[Any]
GAUGE = "ledger_projection_lag_events"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.anyio
async def test_with_a_metrics_token_a_scrape_needs_it(database_url: str) -> None:
    app = create_app(database_url, limits=LimitSettings(metrics_token="scrape-s3cret"))
    async with AsyncTestClient(app=app) as client:
        bare = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer scrape-guess"})
        right = await client.get("/metrics", headers={"Authorization": "Bearer scrape-s3cret"})

    for refused in (bare, wrong):
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "scrape-s3cret" not in refused.text
    assert right.status_code == 200 and GAUGE in right.text


@pytest.mark.anyio
async def test_by_default_metrics_stay_open(client: Client) -> None:
    answer = await client.get("/metrics")

    assert answer.status_code == 200 and GAUGE in answer.text


@pytest.mark.anyio
async def test_with_a_metrics_port_the_api_does_not_serve_them(database_url: str) -> None:
    app = create_app(database_url, limits=LimitSettings(metrics_port=free_port()))
    async with AsyncTestClient(app=app) as client:
        answer = await client.get("/metrics")

    assert answer.status_code == 404, answer.text


def test_a_metrics_port_serves_the_process_and_projection_metrics_there(
    database_url: str,
) -> None:
    port = free_port()
    limits = load_limit_settings(
        {"LEDGER_METRICS_PORT": str(port), "LEDGER_METRICS_ADDRESS": "127.0.0.1"}
    )

    with metrics_served_apart(database_url, limits):
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)

    assert scraped.status_code == 200
    assert f'{GAUGE}{{projection="member_profiles"}}' in scraped.text
    assert "ledger_append_seconds" in scraped.text
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
