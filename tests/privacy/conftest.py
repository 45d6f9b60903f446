"""The API's key fixtures, for the privacy tests that read and erase over HTTP."""

from tests.api.conftest import (  # noqa: F401 (fixtures)
    admin,
    admin_token,
    read_token,
    reader,
    write_token,
    writer,
)
