"""The API against a real database: the app's own lifespan, real keys, a real pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from services import keys
from services.api.app import create_app


@pytest.fixture
def app(api_url: str) -> Litestar:
    """The app as it runs in production: as the API's role when the suite runs with roles."""
    return create_app(api_url)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def _token(database_url: str, scope: str) -> str:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        _, token = await keys.create_key(conn, f"test {scope}", scope)
    return token


@pytest.fixture
async def read_token(database_url: str) -> str:
    return await _token(database_url, "read")


@pytest.fixture
async def write_token(database_url: str) -> str:
    return await _token(database_url, "write")


@pytest.fixture
async def admin_token(database_url: str) -> str:
    return await _token(database_url, "admin")


@pytest.fixture
def writer(write_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {write_token}"}


@pytest.fixture
def reader(read_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {read_token}"}


@pytest.fixture
def admin(admin_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token}"}
