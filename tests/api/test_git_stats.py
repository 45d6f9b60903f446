"""`import git` on this very repository, then the stats endpoint counts commits as git does."""

from __future__ import annotations

import subprocess
from collections import Counter
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from services.api.app import create_app
from services.importers.common import run_import
from services.importers.git import git_source
from services.store.ledger import Ledger
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio


async def test_stats_by_member_count_commits_per_author_email_as_git_log_does(
    ledger: Ledger, api_url: str, projector_url: str, reader: dict[str, str]
) -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not running from a clone")
    await run_import(ledger, git_source(str(ROOT)))
    head = await ledger.head()
    log = subprocess.run(
        ["git", "log", "--no-merges", "--use-mailmap", "--format=%aE"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()

    async with AsyncTestClient(
        app=create_app(api_url, run_projector=True, projector_url=projector_url)
    ) as client:
        stats = await client.get(
            "/v1/stats/contributions",
            headers=reader,
            params={"group_by": "member", "kind": "commit", "min_position": head},
        )
        emails = {}
        for row in stats.json()["rows"]:
            member = await client.get(f"/v1/members/{row['member_id']}", headers=reader)
            handles: list[Any] = member.json()["handles"]
            emails[row["member_id"]] = next(
                h.split(":", 1)[1] for h in handles if h.startswith("email:")
            )

    assert stats.status_code == 200, stats.text
    counted = Counter(
        {emails[row["member_id"]].lower(): row["count"] for row in stats.json()["rows"]}
    )
    assert counted == Counter(address.lower() for address in log)
