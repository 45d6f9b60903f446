"""The README's export and erasure walk-through works as printed, after the API walk-through."""

from __future__ import annotations

import pytest

from tests.test_readme import _blocks, _json_values, run_walkthrough

pytestmark = pytest.mark.slow

SECTION = "A member's data: export and erasure"


def test_the_readme_exports_then_erases_a_member_with_an_admin_key(database_url: str) -> None:
    _, *setup = _blocks("The API in five minutes")
    export, refused, erased = _blocks(SECTION)
    # The walk-through's own output first, then a line the erasure's answers follow.
    steps = [*setup, "echo '\"--- export\"'", export, refused, erased]
    done, log = run_walkthrough(database_url, steps, access_log=True)

    assert done.returncode == 0, done.stderr
    values = _json_values(done.stdout)
    exported, problem, profile = values[values.index("--- export") + 1 :]
    assert isinstance(exported, dict) and isinstance(problem, dict) and isinstance(profile, dict)
    assert exported["profile"]["display_name"] == "Yann Ropars"
    assert [e["type"] for e in exported["events"]] == [
        "RecognitionGiven",
        "MentionRecorded",
        "ContributionRecorded",
        "MemberRegistered",
    ]
    assert problem["status"] == 403 and "scope admin" in problem["detail"]
    assert profile["forgotten"] is True and not profile["display_name"] and not profile["handles"]
    assert profile["contributions_total"] == 1 and profile["recognitions_received"] == 1
    # The server's access log (stdout) saw the by-handle lookup, but not whose handle it was.
    assert "by-handle/twitter/redacted" in log and "yannr" not in log
