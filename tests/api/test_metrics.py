"""/metrics: what the processes count, and the projections' gauges read from the database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from services.api.metrics import CatchUpRate
from services.projector.progress import Progress
from services.projector.runner import Runner
from tests.api.scrape import count, value

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]
MEMBERS = {"method": "POST", "route": "/v1/members"}


async def scrape(client: Client) -> str:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return answer.text


async def test_a_write_counts_its_request_its_events_and_its_append_latency(
    client: Client, writer: dict[str, str]
) -> None:
    before = await scrape(client)

    written = await client.post("/v1/members", json={"display_name": "Ana"}, headers=writer)
    after = await scrape(client)

    events = len(written.json()["positions"])
    assert events >= 1

    def delta(name: str, **labels: str) -> float:
        return count(after, name, **labels) - count(before, name, **labels)

    assert delta("ledger_http_requests_total", **MEMBERS, status="201") == 1
    assert delta("ledger_http_request_seconds_count", **MEMBERS) == 1
    assert delta("ledger_http_request_seconds_bucket", **MEMBERS, le="+Inf") == 1
    assert delta("ledger_appended_events_total") == events
    assert delta("ledger_append_seconds_count") == 1
    assert delta("ledger_append_seconds_sum") > 0


async def test_a_retry_that_replays_an_append_adds_no_events(
    client: Client, writer: dict[str, str]
) -> None:
    headers = {**writer, "Idempotency-Key": "metrics-replay-1"}
    first = await client.post("/v1/members", json={"display_name": "Bo"}, headers=headers)
    before = await scrape(client)

    again = await client.post("/v1/members", json={"display_name": "Bo"}, headers=headers)
    after = await scrape(client)

    assert again.json()["positions"] == first.json()["positions"]
    assert count(after, "ledger_appended_events_total") == count(
        before, "ledger_appended_events_total"
    )


async def test_projection_gauges_show_lag_stall_and_catch_up_rate(
    client: Client, writer: dict[str, str], projector_url: str
) -> None:
    projection = {"projection": "member_profiles"}
    await client.post("/v1/members", json={"display_name": "Cy"}, headers=writer)
    first = await scrape(client)
    await asyncio.sleep(CatchUpRate.MIN_INTERVAL + 0.1)

    behind = await scrape(client)
    await Runner(projector_url, progress=Progress()).run()
    await asyncio.sleep(CatchUpRate.MIN_INTERVAL + 0.1)
    caught_up = await scrape(client)

    assert value(first, "ledger_projection_lag_events", **projection) == 1
    assert value(first, "ledger_projection_catchup_events_per_second", **projection) is None
    assert value(behind, "ledger_projection_lag_events", **projection) == 1
    assert (value(behind, "ledger_projection_stalled_seconds", **projection) or 0) >= 1.0
    assert value(behind, "ledger_projection_catchup_events_per_second", **projection) == 0
    assert value(caught_up, "ledger_projection_lag_events", **projection) == 0
    assert value(caught_up, "ledger_projection_stalled_seconds", **projection) == 0
    assert (value(caught_up, "ledger_projection_catchup_events_per_second", **projection) or 0) > 0


def test_the_catch_up_rate_waits_for_a_second_sample_and_never_goes_negative() -> None:
    now = [100.0]
    rates = CatchUpRate(clock=lambda: now[0])

    first = rates.update({"p": 10})
    now[0] += 0.5
    too_soon = rates.update({"p": 20})
    now[0] += 1.5
    moved = rates.update({"p": 50})
    now[0] += 2.0
    swapped_back = rates.update({"p": 30})

    assert first == {} and too_soon == {}
    assert moved == {"p": 20.0}  # 40 events in the 2 s since the first sample
    assert swapped_back == {"p": 0.0}
