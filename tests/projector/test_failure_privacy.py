"""A projection that fails says where and why without quoting what the event held."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bench.synthetic import fill
from services.projector.appliers.member_profiles import MemberProfilesApplier
from services.projector.runner import Runner
from services.store.ledger import Ledger
from tests.projector.runner_helpers import status

pytestmark = pytest.mark.anyio

NAME = "Zoë Quillfeather"


async def test_a_failure_is_logged_and_recorded_by_type_and_position_not_by_message(
    ledger: Ledger,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await fill(ledger, 20, members=5)

    async def failing(*_: Any, **__: Any) -> None:
        raise RuntimeError(f"cannot fold the profile of {NAME}")

    monkeypatch.setattr(MemberProfilesApplier, "apply", failing)
    caplog.set_level(logging.INFO)

    failures = await Runner(database_url, ["member_profiles"]).run()

    assert failures and "RuntimeError" in failures[0] and "position 1 " in failures[0]
    recorded = next(p for p in status(database_url) if p["name"] == "member_profiles")
    assert recorded["state"] == "failed" and "RuntimeError" in recorded["error"]
    assert "in failing" in caplog.text  # the frames are logged
    for said in (caplog.text, recorded["error"], *failures):
        assert NAME not in said
