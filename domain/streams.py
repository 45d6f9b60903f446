"""The names of streams and tags: the one place their stored format is spelled.

A stream (`member-<id>`) is the consistency boundary an event is versioned in; a tag
(`member:<id>`, `handle:<platform>:<handle>`) makes it findable. Both are stored with
every event, so changing a format here orphans the rows already written.
"""

from __future__ import annotations

from uuid import UUID

MEMBER_STREAM_PREFIX = "member-"


def member_stream(member_id: UUID) -> str:
    return f"{MEMBER_STREAM_PREFIX}{member_id}"


def contribution_stream(contribution_id: UUID) -> str:
    return f"contribution-{contribution_id}"


def introduction_stream(introduction_id: UUID) -> str:
    return f"introduction-{introduction_id}"


def mention_stream(mention_id: UUID) -> str:
    return f"mention-{mention_id}"


def recognition_stream(recognition_id: UUID) -> str:
    return f"recognition-{recognition_id}"


def is_member_stream(stream: str) -> bool:
    return stream.startswith(MEMBER_STREAM_PREFIX)


def member_tag(member_id: UUID) -> str:
    return f"member:{member_id}"


def contribution_tag(contribution_id: UUID) -> str:
    return f"contribution:{contribution_id}"


def space_tag(space: str) -> str:
    return f"space:{space}"


def handle_tag(key: str) -> str:
    """`key` is a normalised handle (`domain.handles.normalize_handle`), so spellings meet."""
    return f"handle:{key}"
