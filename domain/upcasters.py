"""Schema evolution for stored events: pure `dict -> dict` steps between versions.

A step registered for `(type, n)` turns a version-n payload into version n+1.
Stored rows are never rewritten; they are upcast each time they are read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcaster(type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a step from `from_version` to `from_version + 1` of `type_name`."""

    def register(step: Upcaster) -> Upcaster:
        UPCASTERS[(type_name, from_version)] = step
        return step

    return register


def upcast(type_name: str, version: int, target: int, payload: Payload) -> Payload:
    while version < target:
        step = UPCASTERS.get((type_name, version))
        if step is None:
            raise LookupError(
                f"no upcaster for {type_name} from schema version {version} to {version + 1}"
            )
        payload = step(payload)
        version += 1
    return payload
