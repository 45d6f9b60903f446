"""`import jsonl` of 100,000 and 1,000,000 lines: lines/s, events/s and the importer's peak memory.

    .venv/bin/python -m bench imports [--quick]        # 10k and 100k lines with --quick
    .venv/bin/python -m bench.imports --lines 100000   # one file, one import, the figures

The file is generated once per size from a seed (batch-item shapes, members named by
their handles the way a chat or forum export names them), then each repetition imports
it into a fresh migrated database with the real command, `community-ledger import jsonl`,
in a child process, which reports its own peak memory (VmHWM) as it exits. Memory must stay flat:
the ratio of the peaks at 1M and 100k lines has a target of at most 1.5.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from bench.core import Bench, Ratio, Result

KINDS = ("chat_answer", "article", "recap", "mentoring", "answer", "review", "commit")
SPACES = ("kaizenblog", "forum", "community-ledger", "meetup", "newsletter")
RECOGNITION_KINDS = ("kudos", "thanks", "highlight", "award")
START = datetime(2024, 1, 1, tzinfo=UTC)
MEMBERS = 20_000
RECENT = 50_000
"""Mentions, recognitions and retractions refer to one of the last RECENT contributions."""

_encoder = msgspec.json.Encoder()


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def batch_items(lines: int, members: int = MEMBERS, seed: int = 11) -> Iterator[dict[str, Any]]:
    """`lines` rule-abiding batch items; a shorter file is a prefix of a longer one (same seed).

    A fifth of the early lines bring in a new member until `members` are in: a third by
    `register_member` with their handle, the rest by a first contribution with
    `register_unknown`. Then: contributions 55 %, mentions 15 %, recognitions 15 %,
    introductions 8 %, retractions 3 %, withdrawals 2 %, profile updates 2 %.
    """
    rng = random.Random(seed)
    known: list[str] = []  # handles of the members brought in so far
    recent: list[tuple[str, str]] = []  # (contribution id, author handle), a ring of RECENT
    retracted: set[str] = set()
    recognitions: list[str] = []  # a ring of RECENT too
    withdrawn: set[str] = set()
    when = START
    for _ in range(lines):
        when += timedelta(seconds=rng.randrange(1, 60))
        at = when.isoformat()
        if len(known) < 3 or (len(known) < members and rng.random() < 0.2):
            handle = f"github:member-{len(known)}"
            known.append(handle)
            if rng.random() < 1 / 3:
                yield {
                    "command": "register_member",
                    "display_name": f"Member {len(known) - 1}",
                    "handles": [handle],
                    "joined_at": at,
                }
                continue
            yield _contribution(rng, handle, at, recent, register=True)
            continue
        roll = rng.random()
        actor, other = rng.sample(known, 2)
        if roll < 0.55 or not recent:
            yield _contribution(rng, actor, at, recent)
        elif roll < 0.70:
            cid, author = rng.choice(recent)
            mentioned = other if other != author else actor
            yield {
                "command": "record_mention",
                "member": author,
                "mentioned": mentioned,
                "contribution_id": cid,
                "space": rng.choice(SPACES),
                "occurred_at": at,
            }
        elif roll < 0.85:
            rid = _uuid(rng)
            _ring(recognitions, rid, rng)
            item = {
                "command": "give_recognition",
                "id": rid,
                "from": actor,
                "to": other,
                "kind": rng.choice(RECOGNITION_KINDS),
                "reason": "thanks for the help",
                "occurred_at": at,
            }
            if rng.random() < 0.5:
                item["contribution_id"] = rng.choice(recent)[0]
            yield item
        elif roll < 0.93:
            introduced = [m for m in rng.sample(known, 3) if m != actor][:2]
            yield {
                "command": "make_introduction",
                "introducer": actor,
                "introduced": introduced,
                "note": "you two should talk",
                "space": rng.choice(SPACES),
                "occurred_at": at,
            }
        elif roll < 0.96:
            cid, _author = rng.choice(recent)
            if cid in retracted:
                yield _contribution(rng, actor, at, recent)
                continue
            retracted.add(cid)
            yield {
                "command": "retract_contribution",
                "contribution_id": cid,
                "reason": "duplicate",
                "occurred_at": at,
            }
        elif roll < 0.98 and recognitions:
            rid = rng.choice(recognitions)
            if rid in withdrawn:
                yield _contribution(rng, actor, at, recent)
                continue
            withdrawn.add(rid)
            yield {
                "command": "withdraw_recognition",
                "recognition_id": rid,
                "reason": "given by mistake",
                "occurred_at": at,
            }
        else:
            yield {
                "command": "update_member",
                "member": actor,
                "bio": f"bio written at {at}",
                "occurred_at": at,
            }


def _contribution(
    rng: random.Random, handle: str, at: str, recent: list[tuple[str, str]], register: bool = False
) -> dict[str, Any]:
    cid = _uuid(rng)
    _ring(recent, (cid, handle), rng)
    item: dict[str, Any] = {
        "command": "record_contribution",
        "id": cid,
        "member": handle,
        "kind": rng.choice(KINDS),
        "space": rng.choice(SPACES),
        "title": f"A contribution about topic {rng.randrange(1000)}",
        "body": "Some text of a realistic length, " * rng.randrange(1, 6),
        "occurred_at": at,
    }
    if register:
        item |= {"register_unknown": True, "display_name": f"Member {handle.rsplit('-', 1)[1]}"}
    return item


def _ring(ring: list[Any], value: Any, rng: random.Random) -> None:
    if len(ring) < RECENT:
        ring.append(value)
    else:
        ring[rng.randrange(RECENT)] = value


def write_file(path: Path, lines: int, members: int = MEMBERS, seed: int = 11) -> Path:
    with path.open("wb") as out:
        for item in batch_items(lines, members, seed):
            out.write(_encoder.encode(item) + b"\n")
    return path


# The CLI as users run it, reporting its own peak memory (VmHWM) on the way out: a
# child's ru_maxrss starts at its parent's, so the harness's size would hide the import's.
_REPORTING_PEAK = """
import atexit, sys
from bench.core import peak_memory_mib
from services.cli import main
atexit.register(lambda: print(f"peak MiB: {peak_memory_mib():.1f}", file=sys.stderr))
sys.argv[0] = "community-ledger"
sys.exit(main())
"""


class Measured(msgspec.Struct, frozen=True):
    seconds: float
    events: int
    peak_mib: float


def import_file(database_url: str, path: Path) -> Measured:
    """`community-ledger import jsonl PATH` in a child process; its time, events and peak RSS."""
    env = {**os.environ, "DATABASE_URL": database_url}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", _REPORTING_PEAK, "import", "jsonl", str(path)],
            stdout=out,
            stderr=err,
            env=env,
        )
        child.wait()
        seconds = time.perf_counter() - started
        out.seek(0)
        summary = out.read().decode()
        err.seek(0)
        errors = err.read().decode()
        if child.returncode != 0:
            raise RuntimeError(f"import failed ({child.returncode}):\n{summary}\n{errors}")
    peak = re.search(r"peak MiB: ([\d.]+)", errors)
    if peak is None:
        raise RuntimeError(f"the import did not report its peak memory:\n{errors}")
    found = re.search(r"events written: ([\d,]+)", summary)
    events = int(found.group(1).replace(",", "")) if found else 0
    return Measured(seconds=seconds, events=events, peak_mib=float(peak.group(1)))


def run(bench: Bench) -> list[Result | Ratio]:
    sizes = (bench.size(100_000), bench.size(1_000_000))
    members = bench.size(MEMBERS)
    results: list[Result | Ratio] = []
    by_size: dict[int, tuple[Result, Result, Result]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-imports-") as folder:
        for lines in sizes:
            path = write_file(Path(folder) / f"items-{lines}.jsonl", lines, members)
            runs: list[Measured] = []

            def measure(
                index: int, path: Path = path, lines: int = lines, runs: list[Measured] = runs
            ) -> float:
                with bench.database(prefix="bench_imports") as url:
                    measured = import_file(url, path)
                runs.append(measured)
                bench.log(
                    f"import jsonl {lines:,} lines #{index + 1}: {measured.seconds:.1f} s, "
                    f"{lines / measured.seconds:,.0f} lines/s, "
                    f"{measured.events / measured.seconds:,.0f} events/s, "
                    f"peak {measured.peak_mib:,.0f} MiB"
                )
                return lines / measured.seconds

            rate = bench.repeat(measure)
            label = f"{lines:,} lines"
            by_size[lines] = (
                Result("imports", label, "lines/s", rate),
                Result("imports", label, "events/s", [m.events / m.seconds for m in runs]),
                Result(
                    "imports", label, "peak MiB", [m.peak_mib for m in runs], higher_is_better=False
                ),
            )
            results += by_size[lines]
    small, large = (by_size[lines] for lines in sizes)
    results += [
        Ratio(
            f"import memory {sizes[1]:,} / {sizes[0]:,} lines (flat)",
            large[2],
            small[2],
            target=1.5,
            at_most=True,
        ),
        Ratio(f"import lines/s at {sizes[1]:,} lines (aim: 10,000)", large[0], target=10_000),
    ]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=MEMBERS)
    parser.add_argument("--write", type=Path, help="only write the file here, do not import it")
    args = parser.parse_args()
    if args.write:
        write_file(args.write, args.lines, args.members)
        return
    bench = Bench.standalone(repetitions=1)
    with tempfile.TemporaryDirectory(prefix="bench-imports-") as folder:
        path = write_file(Path(folder) / "items.jsonl", args.lines, args.members)
        with bench.database(prefix="bench_imports") as url:
            measured = import_file(url, path)
    print(
        f"import jsonl {args.lines:,} lines: {measured.seconds:.1f} s, "
        f"{args.lines / measured.seconds:,.0f} lines/s, "
        f"{measured.events / measured.seconds:,.0f} events/s, peak {measured.peak_mib:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
