"""The API fixtures (a real database, the app's lifespan, real keys) for the hostile replays."""

from tests.api.conftest import (
    admin,
    admin_token,
    app,
    client,
    read_token,
    reader,
    write_token,
    writer,
)

__all__ = ["admin", "admin_token", "app", "client", "read_token", "reader", "write_token", "writer"]
