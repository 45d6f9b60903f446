"""Where the database is: an external one named by DATABASE_URL, or the embedded one."""

from __future__ import annotations

import contextlib
import re

import psycopg
from psycopg import sql

from services.embedded_db import embedded_server_url
from services.settings import Settings

EMBEDDED_DATABASE_NAME = "ledger"


def database_url(settings: Settings) -> str:
    """The URL everything connects to, starting the embedded server when none is configured."""
    if settings.database_url:
        return settings.database_url
    admin_url = embedded_server_url(settings.data_dir)
    ensure_database(admin_url, EMBEDDED_DATABASE_NAME)
    return with_database(admin_url, EMBEDDED_DATABASE_NAME)


def with_database(url: str, database: str) -> str:
    """The same server and options, another database (URLs only, not key=value strings)."""
    before, _, query = url.partition("?")
    scheme, _, rest = before.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/{database}" + (f"?{query}" if query else "")


def ensure_database(admin_url: str, database: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if exists:
            return
        # Another process may create it between our look and our create.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


_URL_PASSWORD = re.compile(r"^(?P<head>[a-z][a-z0-9+.-]*://[^:@/?#]*:)[^@/?#]*(?=@)", re.IGNORECASE)
_PARAM_PASSWORD = re.compile(r"(?P<head>(?:^|[?&\s])password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^&\s]*)")


def masked(url: str) -> str:
    """`url` with any password shown as `***`: a URL printed or logged must not hand it out.

    Covers `scheme://user:secret@host`, `?password=secret` and `password=secret` conninfo.
    """
    url = _URL_PASSWORD.sub(r"\g<head>***", url)
    return _PARAM_PASSWORD.sub(r"\g<head>***", url)
