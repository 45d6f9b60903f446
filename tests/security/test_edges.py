"""The edges: headers on every answer, a readiness probe that tells nothing about the
database but its state, and a database URL printed without its password."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient
from psycopg_pool import AsyncConnectionPool

from services.api.app import create_app
from services.api.edges import NO_MEMBER_DATA
from services.database import masked
from tests.security.routes import Client, Operation, assert_problem, operations
from tests.test_cli import community_ledger

pytestmark = pytest.mark.anyio

PASSWORD = "hunter2-secret"
UNREACHABLE = f"postgresql://ledger:{PASSWORD}@127.0.0.1:9/nowhere"


@pytest.mark.parametrize("op", operations(), ids=lambda op: op.id)
async def test_every_answer_says_nosniff_and_member_data_is_not_stored(
    client: Client, admin: dict[str, str], op: Operation
) -> None:
    answer = await client.request(op.method, op.path(), headers=admin, json={})

    assert answer.status_code < 500, answer.text
    assert answer.headers["x-content-type-options"] == "nosniff"
    if op.template.startswith("/v1/"):
        assert answer.headers["cache-control"] == "no-store"
    else:
        assert op.template.startswith(NO_MEMBER_DATA)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nowhere"), ("DELETE", "/v1/members"), ("GET", "/v1/members"), ("GET", "/")],
    ids=["404", "405", "401", "home"],
)
async def test_refusals_and_pages_carry_the_headers_too(
    client: Client, method: str, path: str
) -> None:
    answer = await client.request(method, path)

    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"


async def test_a_nul_refusal_carries_the_headers(client: Client) -> None:
    answer = await client.get("/v1/members?q=%00")

    assert_problem(answer, 400)
    assert answer.headers["x-content-type-options"] == "nosniff"


async def test_health_and_the_schema_may_be_cached(client: Client) -> None:
    for path in ("/health", "/schema/openapi.json"):
        answer = await client.get(path)
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "no-store" not in answer.headers.get("cache-control", "")


async def test_ready_says_not_ready_without_the_databases_words(database_url: str) -> None:
    """The server starts against a database that answers (it checks the master key against
    it), then loses it: the pool now points where nothing listens."""
    async with AsyncTestClient(app=create_app(database_url)) as client:
        lost = AsyncConnectionPool(UNREACHABLE, min_size=1, open=False)
        await lost.open(wait=False)
        client.app.state.pool = lost
        try:
            answer = await client.get("/ready")
        finally:
            await lost.close()

    assert answer.status_code == 503
    assert answer.json()["detail"] == "not ready: the database does not answer"
    assert PASSWORD not in answer.text and "127.0.0.1" not in answer.text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://u:{PASSWORD}@db:5432/ledger", "postgresql://u:***@db:5432/ledger"),
        (
            f"postgresql://u:{PASSWORD}@db/ledger?sslmode=require",
            "postgresql://u:***@db/ledger?sslmode=require",
        ),
        (
            f"postgresql://db/ledger?user=u&password={PASSWORD}",
            "postgresql://db/ledger?user=u&password=***",
        ),
        (f"host=db user=u password={PASSWORD} dbname=x", "host=db user=u password=*** dbname=x"),
        (f"host=db password='{PASSWORD} x' dbname=x", "host=db password=*** dbname=x"),
        ("postgresql://u@db/ledger", "postgresql://u@db/ledger"),
    ],
)
def test_a_database_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert masked(url) == shown


def test_db_url_masks_the_password_unless_asked() -> None:
    url = f"postgresql://ledger:{PASSWORD}@127.0.0.1:5432/ledger"

    shown = community_ledger("db", "url", database_url=url)
    revealed = community_ledger("db", "url", "--show-password", database_url=url)

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "postgresql://ledger:***@127.0.0.1:5432/ledger"
    assert revealed.stdout.strip() == url
