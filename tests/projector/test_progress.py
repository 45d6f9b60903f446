"""Plain progress lines: one per interval while a projection moves, none while it idles."""

from __future__ import annotations

import logging

import pytest

from services.projector.progress import Progress


def test_log_lines_report_movement_and_stay_quiet_at_the_head(
    caplog: pytest.LogCaptureFixture,
) -> None:
    progress = Progress(every=0.0)
    with caplog.at_level(logging.INFO, logger="community_ledger.projector"):
        progress.update({"member_profiles (live)": (100, 500)})
        progress.update({"member_profiles (live)": (300, 500)})
        moving = len(caplog.records)
        progress.update({"member_profiles (live)": (300, 500)})
        progress.update({"member_profiles (live)": (300, 500)})

    assert moving == 1 and "position 300 of 500" in caplog.records[0].getMessage()
    assert len(caplog.records) == moving, "an idle follower kept logging"
