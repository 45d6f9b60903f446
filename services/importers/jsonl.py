"""`import jsonl FILE`: one batch item per line, the same shapes as `POST /v1/batch` items.

Blank lines are skipped (JSON has no comments), and so is a UTF-8 byte-order mark at the
start, which editors on Windows write. A line that does not decode, or breaks
a shape's rules (a wrong type, an unknown field), is rejected with msgspec's message.
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from services import items as s
from services.importers.common import Line, Source, UnreadableSource

_decoder = msgspec.json.Decoder(s.BatchItem)


def jsonl_source(path: str) -> Source:
    """`path` is a file, or `-` for standard input."""
    if path == "-":
        return Source(kind="jsonl", label="import jsonl (stdin)", unit="lines",
                      lines=read_lines(sys.stdin.buffer))  # fmt: skip
    file = Path(path)
    if not file.is_file():
        raise UnreadableSource(f"no such file: {path}")
    return Source(kind="jsonl", label=f"import jsonl {path}", unit="lines",
                  lines=_lines_of(file), total=_count(file))  # fmt: skip


def read_lines(stream: BinaryIO) -> Iterator[Line]:
    for number, raw in enumerate(stream, 1):
        if number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        if not raw.strip():
            continue
        where = f"line {number}"
        try:
            item = _decoder.decode(raw)
        except msgspec.DecodeError as error:
            yield Line(where=where, problems=(str(error),))
        except RecursionError:  # skipping a deeply nested value: a bad line, not a crash
            yield Line(where=where, problems=("nested too deep to be an item",))
        else:
            yield Line(where=where, items=(item,))


def _lines_of(file: Path) -> Iterator[Line]:
    with file.open("rb") as stream:
        yield from read_lines(stream)


def _count(file: Path) -> int:
    with file.open("rb") as stream:
        return sum(1 for raw in stream if raw.removeprefix(codecs.BOM_UTF8).strip())
