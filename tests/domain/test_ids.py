"""UUIDv7 for new things, UUIDv5 for re-derivable ones."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from uuid import UUID

import pytest

from domain.ids import deterministic_id, id_time, new_id


def test_new_ids_are_version_7_with_the_rfc_variant() -> None:
    value = new_id()
    assert value.version == 7
    assert value.variant == "specified in RFC 4122"


def test_a_new_id_carries_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    value = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= value.int >> 80 <= after
    assert abs(id_time(value) - datetime.now(UTC)) < timedelta(seconds=5)


def test_ids_made_in_a_row_sort_in_the_order_they_were_made() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_ids_made_a_millisecond_apart_sort_by_time() -> None:
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    assert first.int >> 80 < second.int >> 80


def test_id_time_refuses_other_uuid_versions() -> None:
    with pytest.raises(ValueError, match="version 4"):
        id_time(UUID("9b2f8f0c-3f7e-4a8e-9a3e-0c1d2e3f4a5b"))


def test_deterministic_ids_repeat_for_the_same_parts() -> None:
    assert deterministic_id("kaizenblog", "tweet", "42") == deterministic_id(
        "kaizenblog", "tweet", "42"
    )
    assert deterministic_id("kaizenblog", "tweet", "42").version == 5


def test_deterministic_ids_differ_when_parts_are_split_differently() -> None:
    assert deterministic_id("ns", "a:b", "c") != deterministic_id("ns", "a", "b:c")
    assert deterministic_id("ns", "a") != deterministic_id("other", "a")


def test_ids_made_within_one_millisecond_are_not_consecutive_numbers() -> None:
    ids = [new_id() for _ in range(1_000)]
    steps = [later.int - earlier.int for earlier, later in pairwise(ids)]
    assert 1 not in steps
