"""The append guarantees: optimistic concurrency, conditions, idempotency, atomic batches."""

from __future__ import annotations

import asyncio

import pytest

from domain.errors import (
    AppendConditionFailed,
    DuplicateEventIds,
    IdempotencyKeyReused,
    WrongExpectedVersion,
)
from services.store.ledger import Ledger
from services.store.records import AppendCondition, Query
from tests.store.conftest import count_rows, new_event

pytestmark = pytest.mark.anyio


async def test_append_answers_consecutive_positions_and_stream_versions(ledger: Ledger) -> None:
    first = await ledger.append([new_event("a"), new_event("b"), new_event("a")])
    second = await ledger.append([new_event("a")])

    assert first.positions == (1, 2, 3)
    assert second.positions == (4,)
    assert [e.stream_version for e in await ledger.read_stream("a")] == [1, 2, 3]


async def test_wrong_expected_version_names_both_versions_and_writes_nothing(
    ledger: Ledger, database_url: str
) -> None:
    await ledger.append([new_event("member-1"), new_event("member-1")])

    with pytest.raises(WrongExpectedVersion) as conflict:
        await ledger.append(
            [new_event("member-1"), new_event("other")], expected_versions={"member-1": 1}
        )

    assert (conflict.value.stream, conflict.value.expected, conflict.value.actual) == (
        "member-1",
        1,
        2,
    )
    assert "at version 2" in str(conflict.value) and "expected version 1" in str(conflict.value)
    assert count_rows(database_url) == 2


async def test_expected_version_zero_means_the_stream_must_be_new(ledger: Ledger) -> None:
    await ledger.append([new_event("member-2")], expected_versions={"member-2": 0})

    with pytest.raises(WrongExpectedVersion):
        await ledger.append([new_event("member-2")], expected_versions={"member-2": 0})


async def test_concurrent_appends_with_the_same_expected_version_let_exactly_one_win(
    ledger: Ledger, database_url: str
) -> None:
    async def attempt() -> str:
        try:
            await ledger.append([new_event("race")], expected_versions={"race": 0})
        except WrongExpectedVersion:
            return "conflict"
        return "written"

    outcomes = await asyncio.gather(*(attempt() for _ in range(8)))

    assert sorted(outcomes) == ["conflict"] * 7 + ["written"]
    assert count_rows(database_url) == 1


async def test_a_handle_can_be_claimed_by_one_member_only(
    ledger: Ledger, database_url: str
) -> None:
    """Cross-stream condition: two members race for one handle; the loser sees where it lost."""
    seen = await ledger.head()
    claim = AppendCondition(
        fail_if_events_match=(Query(tags=("handle:twitter:yannr",)),), after=seen
    )

    async def claim_for(member: str) -> str:
        try:
            await ledger.append(
                [new_event(f"member-{member}", tags=("handle:twitter:yannr",))], condition=claim
            )
        except AppendConditionFailed as failed:
            assert failed.after == seen and failed.conflicting_positions == (seen + 1,)
            return "refused"
        return "claimed"

    outcomes = await asyncio.gather(*(claim_for(m) for m in ("ana", "bob", "cy", "dee")))

    assert sorted(outcomes) == ["claimed", "refused", "refused", "refused"]
    assert count_rows(database_url) == 1


async def test_condition_on_types_ignores_other_types_with_the_same_tag(ledger: Ledger) -> None:
    await ledger.append([new_event("s", tags=("contribution:c1",), type="ContributionRecorded")])
    condition = AppendCondition(
        fail_if_events_match=(Query(tags=("contribution:c1",), types=("ContributionRetracted",)),),
        after=0,
    )

    appended = await ledger.append(
        [new_event("s", tags=("contribution:c1",), type="ContributionRetracted")],
        condition=condition,
    )

    assert appended.positions == (2,)
    with pytest.raises(AppendConditionFailed) as failed:
        await ledger.append([new_event("s", type="ContributionRetracted")], condition=condition)
    assert failed.value.conflicting_positions == (2,)


async def test_a_condition_without_tags_matches_by_type_or_any_event(ledger: Ledger) -> None:
    await ledger.append([new_event("a", type="Noted"), new_event("b", type="Other")])
    by_type = AppendCondition(fail_if_events_match=(Query(types=("Other",)),), after=0)
    anything = AppendCondition(fail_if_events_match=(Query(),), after=1)
    nothing_after = AppendCondition(fail_if_events_match=(Query(),), after=2)

    with pytest.raises(AppendConditionFailed) as typed:
        await ledger.append([new_event("c")], condition=by_type)
    with pytest.raises(AppendConditionFailed) as any_event:
        await ledger.append([new_event("c")], condition=anything)
    appended = await ledger.append([new_event("c")], condition=nothing_after)

    assert typed.value.conflicting_positions == (2,)
    assert any_event.value.conflicting_positions == (2,)
    assert appended.positions == (3,)


async def test_retry_with_same_idempotency_key_returns_first_positions(
    ledger: Ledger, database_url: str
) -> None:
    first = await ledger.append([new_event()], idempotency_key="k-1", fingerprint="body-1")

    retry = await ledger.append([new_event()], idempotency_key="k-1", fingerprint="body-1")

    assert retry.positions == first.positions and retry.event_ids == first.event_ids
    assert retry.replayed and not first.replayed
    assert count_rows(database_url) == 1
    recalled = await ledger.recall("k-1")
    assert recalled is not None and recalled.answer.positions == first.positions


async def test_same_idempotency_key_with_another_request_is_refused(
    ledger: Ledger, database_url: str
) -> None:
    await ledger.append([new_event()], idempotency_key="k-2", fingerprint="body-1")

    with pytest.raises(IdempotencyKeyReused, match="'k-2'"):
        await ledger.append([new_event()], idempotency_key="k-2", fingerprint="body-2")

    assert count_rows(database_url) == 1


async def test_concurrent_retries_with_one_key_write_once(
    ledger: Ledger, database_url: str
) -> None:
    answers = await asyncio.gather(
        *(ledger.append([new_event()], idempotency_key="k-3", fingerprint="f") for _ in range(6))
    )

    assert len({a.positions for a in answers}) == 1
    assert count_rows(database_url) == 1


async def test_resending_the_same_events_writes_nothing_and_answers_their_positions(
    ledger: Ledger, database_url: str
) -> None:
    events = [new_event("x"), new_event("y")]
    first = await ledger.append(events, expected_versions={"x": 0})

    retry = await ledger.append(events, expected_versions={"x": 0})

    assert retry.positions == first.positions and retry.replayed
    assert count_rows(database_url) == 2


async def test_a_batch_that_repeats_some_recorded_event_ids_is_refused_whole(
    ledger: Ledger, database_url: str
) -> None:
    recorded = new_event()
    await ledger.append([recorded])

    with pytest.raises(DuplicateEventIds) as refused:
        await ledger.append([new_event(), recorded, new_event()])

    assert refused.value.event_ids == (recorded.event_id,)
    assert count_rows(database_url) == 1


async def test_a_batch_across_streams_is_all_or_nothing(ledger: Ledger, database_url: str) -> None:
    await ledger.append([new_event("b")])
    batch = [new_event("a", tags=("t:1",)), new_event("b", tags=("t:2",)), new_event("c")]

    with pytest.raises(WrongExpectedVersion):
        await ledger.append(batch, expected_versions={"a": 0, "b": 0, "c": 0})
    assert count_rows(database_url) == 1 and count_rows(database_url, "event_tags") == 0

    appended = await ledger.append(batch, expected_versions={"a": 0, "b": 1, "c": 0})
    assert appended.positions == (2, 3, 4)
    assert count_rows(database_url, "event_tags") == 2


async def test_a_batch_that_repeats_an_event_id_within_itself_writes_nothing(
    ledger: Ledger, database_url: str
) -> None:
    repeated = new_event("a")

    with pytest.raises(DuplicateEventIds, match="repeat an event id"):
        await ledger.append([repeated, new_event("c"), repeated])

    assert count_rows(database_url) == 0
