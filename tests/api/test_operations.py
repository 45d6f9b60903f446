"""Health, readiness, and the projections' status and rebuilds over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]


async def test_health_and_ready_need_no_key(client: Client) -> None:
    health = await client.get("/health")
    ready = await client.get("/ready")

    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_a_rebuild_needs_an_admin_key_and_starts_a_build(
    client: Client, writer: dict[str, str], admin: dict[str, str]
) -> None:
    refused = await client.post("/v1/projections/member_profiles/rebuild", headers=writer)
    started = await client.post("/v1/projections/member_profiles/rebuild", headers=admin)
    unknown = await client.post("/v1/projections/karma/rebuild", headers=admin)
    listed = await client.get("/v1/projections", headers=writer)

    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert started.status_code == 202 and started.json()["state"] == "rebuilding"
    assert unknown.status_code == 404 and "member_profiles" in unknown.json()["detail"]
    assert {p["name"] for p in listed.json()} == {
        "member_profiles",
        "contribution_counts",
        "connections",
        "interaction_counts",
        "introductions",
        "score_connector_v1",
    }
