"""The API fixtures (a real database, the app's lifespan, real keys) for the hostile replays."""

import pytest
from litestar import Litestar

from services.api.app import create_app
from services.settings import StreamSettings
from tests.api.conftest import (
    admin,
    admin_token,
    client,
    read_token,
    reader,
    write_token,
    writer,
)

__all__ = ["admin", "admin_token", "app", "client", "read_token", "reader", "write_token", "writer"]

REPLAYED_STREAMS = StreamSettings(max_seconds=0.05)
"""The test client reads a whole answer before it returns: an event stream the walk opens
with good parameters must end by itself, and soon."""


@pytest.fixture
def app(api_url: str) -> Litestar:
    return create_app(api_url, stream=REPLAYED_STREAMS)
