"""Another revision's code as a peer: the same workload, run by that code, in one run.

`tree_of("main")` exports the revision (`git archive`, no worktree, no checkout) into a
temporary folder; `run_in_tree` catches a database up with that folder's runner in a
child process whose imports resolve there first (the folder is its working directory
and PYTHONPATH, ahead of this tree's editable install). The child uses only what every
revision since issue 1 has: `Runner(url, names, progress=…)`. The database must be one
both revisions' migrations agree on: a peer is for code that changed, not schemas.

`append_in_tree` is for schemas that changed too: the child migrates a fresh, empty
database with its own tree's migrations, then appends `bench.synthetic`'s batches with its
own `Ledger` (with a keyring where the revision has one: issue 12 and later).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from services.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
"""The repository: `git archive` run in a subfolder would export only that folder."""

CHILD = """
import asyncio, json, sys, time
import services
from services.projector.progress import Progress
from services.projector.runner import Runner
from services.store.feed import readable_head
import psycopg

async def head(url):
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await readable_head(conn)

url, names = sys.argv[1], sys.argv[2:]
events = asyncio.run(head(url))
started = time.perf_counter()
failures = asyncio.run(Runner(url, names, progress=Progress()).run())
seconds = time.perf_counter() - started
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
print(json.dumps({"events": events, "seconds": seconds, "peak": peak,
                  "failures": failures, "code": services.__file__}))
"""

APPEND_CHILD = """
import asyncio, contextlib, gc, json, os, sys, time
from pathlib import Path
import psycopg
import services
from psycopg_pool import AsyncConnectionPool
from bench.synthetic import synthetic_events
from services import migrate
from services.store.ledger import Ledger

url, total, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
migrate.upgrade(url)
events = list(synthetic_events(total))
batches = [events[i : i + size] for i in range(0, total, size)]

def backend_seconds(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # a server on another host
        return None
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")

async def main():
    try:
        from services.bootstrap import keyring
    except ImportError:  # before issue 12: no keyring, nothing sealed
        keyring = None
    async with contextlib.AsyncExitStack() as stack:
        extra = () if keyring is None else (await stack.enter_async_context(keyring(url)),)
        pool = AsyncConnectionPool(url, min_size=1, max_size=1, open=False)
        await stack.enter_async_context(pool)
        await pool.wait()
        async with pool.connection() as conn:
            pid = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]
        ledger = Ledger(pool, *extra)
        gc.collect()  # the batches built above: not the appends' garbage (bench.core.settle)
        backend, cpu, started = backend_seconds(pid), time.process_time(), time.perf_counter()
        for batch in batches:
            await ledger.append(batch)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        after = backend_seconds(pid)
        return seconds, cpu, None if backend is None or after is None else after - backend

seconds, cpu, backend = asyncio.run(main())
print(json.dumps({"events": total, "seconds": seconds, "cpu": cpu, "backend": backend,
                  "code": services.__file__}))
"""


@contextmanager
def tree_of(revision: str) -> Iterator[str]:
    """The code of `revision` of this repository, exported to a folder for the block."""
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as folder:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", revision],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        yield folder


def run_in_tree(tree: str, url: str, names: tuple[str, ...]) -> tuple[int, float, float]:
    """Catch `url` up with the runner of `tree`: (events, seconds, peak MiB of the child)."""
    answer = _run_child(tree, CHILD, [url, *names], "the peer's catch-up")
    if answer["failures"]:
        raise RuntimeError(f"catch-up failed: {answer['failures']}")
    return answer["events"], answer["seconds"], answer["peak"]


class TreeAppends(NamedTuple):
    events: int
    seconds: float
    """Wall-clock seconds of the appends alone."""
    cpu: float
    """The child's own CPU seconds over them."""
    backend: float | None
    """Its server backend's CPU seconds over them; None unless the server runs here."""


def append_in_tree(tree: str, url: str, total: int, size: int) -> TreeAppends:
    """Migrate the empty database `url` and append `total` synthetic events in batches of
    `size` with the code of `tree`, in a child process."""
    answer = _run_child(tree, APPEND_CHILD, [url, str(total), str(size)], f"appends in {tree}")
    return TreeAppends(answer["events"], answer["seconds"], answer["cpu"], answer["backend"])


def _run_child(tree: str, script: str, arguments: list[str], what: str) -> Any:
    """`script` run in a child process whose imports resolve in `tree` first: the JSON
    object its last line prints, checked to come from that tree's code."""
    # The master key is found where this process finds it (an embedded server's key file
    # lies in the data folder, which the child would otherwise look for in `tree`).
    data_dir = os.environ.get("LEDGER_DATA_DIR") or str(load_settings().data_dir)
    done = subprocess.run(
        [sys.executable, "-c", script, *arguments],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": tree, "LEDGER_DATA_DIR": data_dir},
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"the {what} failed:\n{done.stderr[-3000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if not answer["code"].startswith(tree):
        raise RuntimeError(f"the peer ran {answer['code']}, not the code in {tree}")
    return answer
