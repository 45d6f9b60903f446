"""`import csv FILE`: contributions from a spreadsheet, one row each.

Columns (headers match ignoring case, spaces and dashes): occurred_at, handle,
display_name, kind, space, title, url, text (the body). `--column NAME=HEADER` maps
one of these to a header of the file. Every other non-empty cell becomes an attribute
named after its header. A handle nobody holds registers a member on the fly, named
after the display_name cell.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from services import items as s
from services.importers.common import Line, Source, UnreadableSource

FIELDS = ("occurred_at", "handle", "display_name", "kind", "space", "title", "url", "text")


@dataclass(frozen=True)
class CsvOptions:
    columns: Mapping[str, str] = field(default_factory=dict)
    """Our field name -> the file's header."""
    kind: str | None = None
    space: str | None = None
    platform: str | None = None
    """Prefix for handles written without one (`@yannr` -> `twitter:@yannr`)."""
    delimiter: str = ","


def csv_source(path: str, options: CsvOptions) -> Source:
    file = Path(path)
    if not file.is_file():
        raise UnreadableSource(f"no such file: {path}")
    with file.open(newline="", encoding="utf-8-sig") as stream:
        headers = next(csv.reader(stream, delimiter=options.delimiter), [])
    columns = map_columns(headers, options.columns)
    return Source(kind="csv", label=f"import csv {path}", unit="rows",
                  lines=_rows(file, columns, options))  # fmt: skip


def map_columns(headers: list[str], mapping: Mapping[str, str]) -> dict[str, str]:
    """Our field name -> the header that holds it; raises if a mapping or `handle` is missing."""
    if unknown := sorted(set(mapping) - set(FIELDS)):
        raise UnreadableSource(f"--column names {', '.join(unknown)}; "
                               f"the fields are {', '.join(FIELDS)}")  # fmt: skip
    by_key = {_key(header): header for header in headers}
    columns: dict[str, str] = {}
    for name in FIELDS:
        wanted = mapping.get(name)
        if wanted is not None and wanted not in headers:
            raise UnreadableSource(f"--column {name}={wanted}: the file has no header {wanted!r} "
                                   f"(its headers: {', '.join(headers)})")  # fmt: skip
        header = wanted if wanted is not None else by_key.get(_key(name))
        if header is not None:
            columns[name] = header
    if "handle" not in columns:
        raise UnreadableSource(f"no handle column among {', '.join(headers) or 'no headers'}; "
                               "map one with --column handle=HEADER")  # fmt: skip
    return columns


def _rows(file: Path, columns: dict[str, str], options: CsvOptions) -> Iterator[Line]:
    used = set(columns.values())
    with file.open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream, delimiter=options.delimiter)
        start = 2
        for row in reader:
            where = f"line {start}"
            start = reader.line_num + 1
            if not any(_cells(row)):
                continue  # a row of empty cells (spreadsheets export them) asks for nothing
            try:
                item = row_item(row, columns, used, options)
            except ValueError as error:
                yield Line(where=where, problems=(str(error),))
            else:
                yield Line(where=where, items=(item,))


def row_item(row: dict[str | Any, Any], columns: dict[str, str], used: set[str],
             options: CsvOptions) -> s.RecordContributionItem:  # fmt: skip
    if any(cell.strip() for cell in row.get(None) or ()):
        raise ValueError(f"{len(row[None])} more cells than the header has columns")

    def cell(name: str) -> str:
        return (row.get(columns.get(name, "")) or "").strip()

    handle = cell("handle")
    if not handle:
        raise ValueError(f"no handle in column {columns['handle']!r}")
    if ":" not in handle and options.platform:
        handle = f"{options.platform}:{handle}"
    kind, space = cell("kind") or options.kind, cell("space") or options.space
    if not kind or not space:
        missing = "kind" if not kind else "space"
        raise ValueError(f"no {missing}: give a {missing} column or --{missing}")
    attributes = {h: v.strip() for h, v in row.items()
                  if h is not None and h not in used and (v or "").strip()}  # fmt: skip
    fields = {"member": handle, "display_name": cell("display_name") or None, "kind": kind,
              "space": space, "title": cell("title"), "url": cell("url"), "body": cell("text"),
              "attributes": attributes, "occurred_at": _when(cell("occurred_at")),
              "register_unknown": True}  # fmt: skip
    try:
        return msgspec.convert(fields, s.RecordContributionItem)
    except msgspec.ValidationError as error:
        raise ValueError(str(error)) from None


def _when(value: str) -> datetime | None:
    """ISO 8601 (a date alone means midnight); without an offset, UTC."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"occurred_at {value!r} is not an ISO 8601 date or time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _cells(row: dict[str | Any, Any]) -> Iterator[str]:
    """Every cell's text, those past the last header included."""
    for value in row.values():
        for cell in value if isinstance(value, list) else [value]:
            yield (cell or "").strip()


def _key(header: str) -> str:
    return re.sub(r"[\s-]+", "_", header.strip().lower())
