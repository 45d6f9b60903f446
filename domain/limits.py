"""Every size and form the ledger accepts, in one place.

The rules enforce these and the API's request schemas are built from them, so a request
valid by the published schema is never refused for its size by a rule (a test compares
the OpenAPI document with this module). Limits keep one careless import from filling the
ledger, which never forgets.
"""

from __future__ import annotations

MAX_DISPLAY_NAME = 200
MAX_HANDLE = 200
"""A handle as written (`platform:name`); a member reference, id or handle, fits it too."""
MAX_HANDLES = 20
"""Handles one member may hold: enough for every platform, and one registration stays cheap."""
MAX_BIO = 5_000
MAX_LINKS = 20
MAX_URL = 2_000
"""A link, and a webhook's URL."""
MAX_TITLE = 500
MAX_BODY = 20_000
MAX_NOTE = 2_000
"""Reasons and notes."""
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_VALUE = 2_000
MIN_INTRODUCED = 2
MAX_INTRODUCED = 50

MAX_POSITION = 2**63 - 1
"""Positions, versions and counts are PostgreSQL bigints: a larger number names nothing."""

MAX_KIND = 64
MAX_SPACE = 100
# Anchored, as JSON Schema and msgspec read a pattern (they search; the rules full-match).
KIND_PATTERN = rf"^[a-z][a-z0-9_]{{0,{MAX_KIND - 1}}}$"
SPACE_PATTERN = rf"^[a-z0-9][a-z0-9_.-]{{0,{MAX_SPACE - 1}}}$"
OPTIONAL_SPACE_PATTERN = rf"^([a-z0-9][a-z0-9_.-]{{0,{MAX_SPACE - 1}}})?$"
"""Where a space may be left out: empty, or a space slug."""
MAX_EVENT_TYPE = 64
"""An event type a request names (a webhook's filter); the longest known is far shorter."""
