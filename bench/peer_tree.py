"""Another revision's code as a peer: the same workload, run by that code, in one run.

`tree_of("main")` exports the revision (`git archive`, no worktree, no checkout) into a
temporary folder; `run_in_tree` catches a database up with that folder's runner in a
child process whose imports resolve there first (the folder is its working directory
and PYTHONPATH, ahead of this tree's editable install). The child uses only what every
revision since issue 1 has: `Runner(url, names, progress=…)`. The database must be one
both revisions' migrations agree on: a peer is for code that changed, not schemas.
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
    # The master key is found where this process finds it (an embedded server's key file
    # lies in the data folder, which the child would otherwise look for in `tree`).
    data_dir = os.environ.get("LEDGER_DATA_DIR") or str(load_settings().data_dir)
    env = {**os.environ, "PYTHONPATH": tree, "LEDGER_DATA_DIR": data_dir}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, *names],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"the peer's catch-up failed:\n{done.stderr[-3000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if not answer["code"].startswith(tree):
        raise RuntimeError(f"the peer ran {answer['code']}, not the code in {tree}")
    if answer["failures"]:
        raise RuntimeError(f"catch-up failed: {answer['failures']}")
    return answer["events"], answer["seconds"], answer["peak"]
