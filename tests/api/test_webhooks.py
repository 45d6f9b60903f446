"""Webhook subscriptions over HTTP: admin only, the secret shown once, filters checked,
the checkpoint moved by replay, and the delivery log paged as the dispatcher writes it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from litestar.testing import AsyncTestClient
from standardwebhooks import Webhook

from domain.events import EVENT_TYPES
from services import bootstrap
from services.settings import load_settings
from services.webhooks.secrets import unwrap_secret
from tests.security.routes import assert_problem

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]
PUBLIC_URL = "https://93.184.215.14/ledger"
"""A public address written as one, so no test needs DNS."""


async def subscribe(client: Client, admin: dict[str, str], **body: Any) -> dict[str, Any]:
    answer = await client.post("/v1/webhooks", json={"url": PUBLIC_URL, **body}, headers=admin)
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


async def register(client: Client, writer: dict[str, str], handle: str) -> dict[str, Any]:
    answer = await client.post(
        "/v1/members", json={"display_name": "Ana", "handles": [handle]}, headers=writer
    )
    assert answer.status_code == 201, answer.text
    written: dict[str, Any] = answer.json()
    return written


def stored_secret(database_url: str, webhook_id: str) -> tuple[bytes, str]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT secret_wrapped, kek_id FROM webhooks WHERE webhook_id = %s", (webhook_id,)
        ).fetchone()
    assert row is not None
    return bytes(row[0]), row[1]


async def test_the_secret_is_shown_at_creation_and_never_again(
    client: Client, admin: dict[str, str], database_url: str
) -> None:
    made = await subscribe(client, admin, description="chat bot")

    secret = made["secret"]
    assert secret.startswith("whsec_")
    Webhook(secret)  # the format standardwebhooks reads
    one = (await client.get(f"/v1/webhooks/{made['id']}", headers=admin)).text
    listed = (await client.get("/v1/webhooks", headers=admin)).text
    for answer in (one, listed):
        assert secret not in answer and secret.removeprefix("whsec_") not in answer
        assert '"secret"' not in answer
    wrapped, kek_id = stored_secret(database_url, made["id"])
    assert secret.encode() not in wrapped
    assert unwrap_secret(bootstrap.master_key(load_settings()), wrapped, kek_id) == secret


async def test_a_subscription_holds_what_was_asked_and_starts_at_the_head(
    client: Client, admin: dict[str, str], writer: dict[str, str]
) -> None:
    written = await register(client, writer, "github:ana")

    made = await subscribe(
        client,
        admin,
        event_types=["ContributionRecorded", "RecognitionGiven", "ContributionRecorded"],
        member="github:ana",
        space="kaizenblog",
        description="thank people",
        enabled=False,
    )

    assert made["event_types"] == ["ContributionRecorded", "RecognitionGiven"]
    assert made["member_id"] == written["id"]
    assert (made["space"], made["description"], made["enabled"]) == (
        "kaizenblog",
        "thank people",
        False,
    )
    assert made["position"] == written["positions"][-1]
    assert (made["attempts"], made["next_attempt_at"], made["disabled_reason"]) == (0, None, None)
    every = await subscribe(client, admin)
    assert (every["event_types"], every["member_id"], every["space"]) == (None, None, None)


async def test_after_starts_a_subscription_at_a_position_but_not_past_the_head(
    client: Client, admin: dict[str, str], writer: dict[str, str]
) -> None:
    head = (await register(client, writer, "github:ana"))["positions"][-1]

    assert (await subscribe(client, admin, after=0))["position"] == 0
    answer = await client.post(
        "/v1/webhooks", json={"url": PUBLIC_URL, "after": head + 1}, headers=admin
    )

    problem = assert_problem(answer, 400)
    assert "after" in problem["detail"] and f"head ({head})" in problem["detail"]


@pytest.mark.parametrize("scope", ["read", "write"])
async def test_every_webhook_operation_needs_an_admin_key(
    client: Client,
    admin: dict[str, str],
    reader: dict[str, str],
    writer: dict[str, str],
    scope: str,
) -> None:
    made = await subscribe(client, admin)
    path = f"/v1/webhooks/{made['id']}"
    headers = reader if scope == "read" else writer
    calls = [
        ("POST", "/v1/webhooks", {"url": PUBLIC_URL}),
        ("GET", "/v1/webhooks", None),
        ("GET", path, None),
        ("PATCH", path, {"enabled": False}),
        ("DELETE", path, None),
        ("POST", f"{path}/secret", None),
        ("GET", f"{path}/deliveries", None),
        ("POST", f"{path}/replay?after=0", None),
    ]
    for (method, url, body), headers in itertools.product(calls, (reader, writer)):
        answer = await client.request(method, url, json=body, headers=headers)

        problem = assert_problem(answer, 403)
        assert "scope admin" in problem["detail"], (method, url)
        assert (await client.request(method, url, json=body)).status_code == 401
    assert (await client.get(path, headers=admin)).json() == {
        k: v for k, v in made.items() if k != "secret"
    }


async def test_the_listing_pages_through_every_subscription_once_in_creation_order(
    client: Client, admin: dict[str, str]
) -> None:
    made = [(await subscribe(client, admin, description=f"n{i}"))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None

    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(f"/v1/webhooks{query}", headers=admin)).json()
        seen += [w["id"] for w in page["webhooks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == made
    forged = await client.get("/v1/webhooks?cursor=WzEsMl0", headers=admin)
    assert "cursor" in assert_problem(forged, 400)["detail"]


BAD_SUBSCRIPTIONS: list[tuple[dict[str, Any], int, str]] = [
    ({"event_types": ["ContributionRecorded", "Nope"]}, 400, "the types are MemberRegistered"),
    ({"event_types": []}, 400, "event_types"),
    ({"url": "ftp://example.org/x"}, 400, "scheme must be http or https"),
    ({"url": "file:///etc/passwd"}, 400, "scheme must be http or https"),
    ({"url": "https://user:pw@example.org/"}, 400, "user name or password"),
    ({"url": "http://127.0.0.1:8080/x"}, 422, "the URL resolves to a loopback address"),
    ({"url": "http://10.0.0.7/x"}, 422, "the URL resolves to a private address"),
    ({"space": "Not A Slug"}, 400, "space"),
    ({"member": str(UUID(int=7))}, 422, "no member with id"),
    ({"member": "github:nobody"}, 422, "no member holds this handle"),
    ({"member": "no-colon"}, 400, "member"),
    ({"description": "x" * 2001}, 400, "description"),
    ({"secret": "whsec_mine"}, 400, "secret"),
]


async def test_a_bad_subscription_is_a_problem_naming_what_to_fix_and_stores_nothing(
    client: Client, admin: dict[str, str], database_url: str
) -> None:
    for body, status, named in BAD_SUBSCRIPTIONS:
        answer = await client.post("/v1/webhooks", json={"url": PUBLIC_URL, **body}, headers=admin)

        problem = assert_problem(answer, status)
        assert named in problem["detail"], body
        assert "127.0.0.1" not in problem["detail"] and "10.0.0.7" not in problem["detail"]
        assert "nobody" not in answer.text  # a handle is personal data
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM webhooks").fetchone() == (0,)


async def test_every_event_type_is_accepted(client: Client, admin: dict[str, str]) -> None:
    made = await subscribe(client, admin, event_types=list(EVENT_TYPES))

    assert made["event_types"] == list(EVENT_TYPES)


async def test_a_patch_changes_only_what_it_names_and_null_clears_a_filter(
    client: Client, admin: dict[str, str]
) -> None:
    made = await subscribe(client, admin, event_types=["RecognitionGiven"], space="kaizenblog")
    path = f"/v1/webhooks/{made['id']}"

    answer = await client.patch(
        path, json={"event_types": None, "description": "all of it"}, headers=admin
    )

    assert answer.status_code == 200, answer.text
    changed = answer.json()
    assert (changed["event_types"], changed["space"]) == (None, "kaizenblog")
    assert changed["description"] == "all of it"
    assert changed["updated_at"] > made["updated_at"]
    refused = await client.patch(path, json={"url": "http://192.168.1.1/"}, headers=admin)
    assert "private address" in assert_problem(refused, 422)["detail"]
    assert (await client.get(path, headers=admin)).json()["url"] == PUBLIC_URL
    missing = await client.patch(f"/v1/webhooks/{uuid4()}", json={}, headers=admin)
    assert_problem(missing, 404)


async def test_enabling_a_disabled_subscription_clears_its_reason_and_retries(
    client: Client, admin: dict[str, str], projector_url: str
) -> None:
    made = await subscribe(client, admin)
    with psycopg.connect(projector_url) as conn:  # what the dispatcher does when it gives up
        conn.execute(
            "UPDATE webhooks SET enabled = false, disabled_reason = '7 attempts failed', "
            "attempts = 7, next_attempt_at = now() + interval '10 hours' "
            "WHERE webhook_id = %s",
            (made["id"],),
        )

    enabled = (
        await client.patch(f"/v1/webhooks/{made['id']}", json={"enabled": True}, headers=admin)
    ).json()

    assert enabled["enabled"] is True
    assert (enabled["disabled_reason"], enabled["attempts"], enabled["next_attempt_at"]) == (
        None,
        0,
        None,
    )
    assert enabled["position"] == made["position"]


def stored_previous_secret(database_url: str, webhook_id: str) -> tuple[Any, ...]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT previous_secret_wrapped, previous_kek_id, previous_valid_until "
            "FROM webhooks WHERE webhook_id = %s",
            (webhook_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


async def test_rotating_the_secret_shows_a_new_one_once_and_keeps_the_old_one_for_a_day(
    client: Client, admin: dict[str, str], database_url: str
) -> None:
    made = await subscribe(client, admin)
    master = bootstrap.master_key(load_settings())

    answer = await client.post(f"/v1/webhooks/{made['id']}/secret", headers=admin)

    assert answer.status_code == 200, answer.text
    rotated = answer.json()
    assert set(rotated) == {"id", "secret", "previous_secret_valid_until"}
    assert rotated["id"] == made["id"] and rotated["secret"] != made["secret"]
    assert made["secret"] not in answer.text
    assert unwrap_secret(master, *stored_secret(database_url, made["id"])) == rotated["secret"]
    wrapped, kek_id, until = stored_previous_secret(database_url, made["id"])
    assert unwrap_secret(master, bytes(wrapped), kek_id) == made["secret"]
    assert made["secret"].encode() not in bytes(wrapped)
    assert datetime.fromisoformat(rotated["previous_secret_valid_until"]) == until
    assert timedelta(hours=23, minutes=59) < until - datetime.fromisoformat(made["created_at"])
    shown = (await client.get(f"/v1/webhooks/{made['id']}", headers=admin)).json()
    assert shown["previous_secret_valid_until"] == rotated["previous_secret_valid_until"]
    assert '"secret"' not in str(shown)
    missing = await client.post(f"/v1/webhooks/{uuid4()}/secret", headers=admin)
    assert_problem(missing, 404)


async def test_a_rotation_sets_the_grace_period_and_zero_revokes_the_old_secret_at_once(
    client: Client, admin: dict[str, str], database_url: str
) -> None:
    made = await subscribe(client, admin)
    path = f"/v1/webhooks/{made['id']}/secret"

    hour = (await client.post(f"{path}?grace_seconds=3600", headers=admin)).json()
    revoked = (await client.post(f"{path}?grace_seconds=0", headers=admin)).json()

    until = datetime.fromisoformat(hour["previous_secret_valid_until"])
    assert timedelta(minutes=59) < until - datetime.now(UTC) <= timedelta(hours=1)
    assert revoked["previous_secret_valid_until"] is None
    assert stored_previous_secret(database_url, made["id"]) == (None, None, None)
    shown = (await client.get(f"/v1/webhooks/{made['id']}", headers=admin)).json()
    assert shown["previous_secret_valid_until"] is None


async def test_a_second_rotation_in_the_grace_period_keeps_the_secret_it_replaced(
    client: Client, admin: dict[str, str], database_url: str
) -> None:
    made = await subscribe(client, admin)
    path = f"/v1/webhooks/{made['id']}/secret"

    first = (await client.post(path, headers=admin)).json()
    await client.post(path, headers=admin)

    wrapped, kek_id, _ = stored_previous_secret(database_url, made["id"])
    master = bootstrap.master_key(load_settings())
    assert unwrap_secret(master, bytes(wrapped), kek_id) == first["secret"]


@pytest.mark.parametrize("grace", ["-1", "604801", "a day", "1.5", "99999999999999999999"])
async def test_a_bad_grace_period_is_a_problem_naming_it_and_keeps_the_secret(
    client: Client, admin: dict[str, str], database_url: str, grace: str
) -> None:
    made = await subscribe(client, admin)
    before = stored_secret(database_url, made["id"])

    answer = await client.post(
        f"/v1/webhooks/{made['id']}/secret", params={"grace_seconds": grace}, headers=admin
    )

    problem = assert_problem(answer, 400)
    assert "grace_seconds" in problem["detail"]
    assert stored_secret(database_url, made["id"]) == before
    assert stored_previous_secret(database_url, made["id"]) == (None, None, None)


async def test_deleting_a_subscription_drops_its_delivery_log(
    client: Client, admin: dict[str, str], projector_url: str, database_url: str
) -> None:
    made = await subscribe(client, admin)
    insert_deliveries(projector_url, made["id"], 3)

    answer = await client.delete(f"/v1/webhooks/{made['id']}", headers=admin)

    assert answer.status_code == 204
    assert_problem(await client.get(f"/v1/webhooks/{made['id']}", headers=admin), 404)
    assert_problem(await client.delete(f"/v1/webhooks/{made['id']}", headers=admin), 404)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM webhook_deliveries").fetchone() == (0,)


async def test_replay_moves_the_checkpoint_so_a_dispatchers_stale_advance_touches_nothing(
    client: Client, admin: dict[str, str], writer: dict[str, str], projector_url: str
) -> None:
    await register(client, writer, "github:ana")
    made = await subscribe(client, admin)
    read_by_dispatcher = made["position"]

    answer = await client.post(f"/v1/webhooks/{made['id']}/replay?after=0", headers=admin)

    assert answer.status_code == 200, answer.text
    assert (answer.json()["position"], answer.json()["attempts"]) == (0, 0)
    with psycopg.connect(projector_url) as conn:
        stale = conn.execute(
            "UPDATE webhooks SET position = %s + 1, attempts = 0 "
            "WHERE webhook_id = %s AND position = %s",
            (read_by_dispatcher, made["id"], read_by_dispatcher),
        )
        assert stale.rowcount == 0
    past = await client.post(f"/v1/webhooks/{made['id']}/replay?after=999999", headers=admin)
    assert "past the ledger's head" in assert_problem(past, 400)["detail"]
    assert_problem(await client.post(f"/v1/webhooks/{uuid4()}/replay?after=0", headers=admin), 404)


def insert_deliveries(projector_url: str, webhook_id: str, count: int) -> None:
    """Attempts as the dispatcher logs them (as its database role): a failure, then a success."""
    with psycopg.connect(projector_url) as conn:
        for position in range(1, count + 1):
            conn.execute(
                "INSERT INTO webhook_deliveries (webhook_id, position, event_id, attempt, "
                "status_code, duration_ms, error, next_attempt_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (webhook_id, position, uuid4(), 1, None, 10000.0, "timeout after 10 s", None)
                if position % 2
                else (webhook_id, position, uuid4(), 2, 204, 12.5, None, None),
            )


async def test_the_delivery_log_pages_every_attempt_newest_first(
    client: Client, admin: dict[str, str], projector_url: str
) -> None:
    made = await subscribe(client, admin)
    other = await subscribe(client, admin)
    insert_deliveries(projector_url, made["id"], 5)
    insert_deliveries(projector_url, other["id"], 2)
    seen: list[dict[str, Any]] = []
    cursor = None

    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await client.get(f"/v1/webhooks/{made['id']}/deliveries{query}", headers=admin)
        assert page.status_code == 200, page.text
        seen += page.json()["deliveries"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break

    assert [d["position"] for d in seen] == [5, 4, 3, 2, 1]
    failed, succeeded = seen[0], seen[1]
    assert (failed["status_code"], failed["error"], failed["attempt"]) == (
        None,
        "timeout after 10 s",
        1,
    )
    assert (succeeded["status_code"], succeeded["error"], succeeded["duration_ms"]) == (
        204,
        None,
        12.5,
    )
    assert set(seen[0]) == {
        "delivery_id",
        "position",
        "event_id",
        "attempt",
        "status_code",
        "duration_ms",
        "error",
        "next_attempt_at",
        "attempted_at",
    }


async def test_the_delivery_log_of_an_unknown_subscription_is_a_404_and_a_forged_cursor_a_400(
    client: Client, admin: dict[str, str]
) -> None:
    made = await subscribe(client, admin)

    empty = await client.get(f"/v1/webhooks/{made['id']}/deliveries", headers=admin)
    missing = await client.get(f"/v1/webhooks/{uuid4()}/deliveries", headers=admin)
    forged = await client.get(f"/v1/webhooks/{made['id']}/deliveries?cursor=WyJ4Il0", headers=admin)

    assert empty.json() == {"deliveries": [], "next_cursor": None}
    assert_problem(missing, 404)
    assert "cursor" in assert_problem(forged, 400)["detail"]
