"""Helpers for the runner tests: run the CLI, dump the live read models, wait for a state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from tests.appliers import APPLIERS


def cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=300,
    )


def start(*args: str, database_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", *args],
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def dump(database_url: str) -> dict[str, list[str]]:
    """Every live read-model table, each row as text, sorted: equal dumps mean equal tables."""
    tables: dict[str, list[str]] = {}
    with psycopg.connect(database_url) as conn:
        for applier in APPLIERS:
            for table in applier.tables:
                if table in getattr(applier, "job_tables", ()):
                    continue  # the graph job's: when it ran is no function of the ledger
                query = sql.SQL("SELECT t::text FROM {} AS t ORDER BY 1").format(
                    sql.Identifier("read", table)
                )
                tables[table] = [row[0] for row in conn.execute(query)]
    return tables


def status(database_url: str) -> list[dict[str, Any]]:
    done = cli("projections", "status", "--json", database_url=database_url)
    assert done.returncode == 0, done.stderr
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")
