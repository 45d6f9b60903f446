"""The dispatcher's settings: a retry schedule in units people write, refused when malformed."""

from __future__ import annotations

import pytest

from services.settings import DEFAULT_RETRY_SCHEDULE, SettingsError, load_settings


def test_the_default_schedule_is_close_to_the_standard_webhooks_recommendation() -> None:
    settings = load_settings({})

    assert settings.webhook_retry_schedule == DEFAULT_RETRY_SCHEDULE
    assert sum(DEFAULT_RETRY_SCHEDULE) == 5 + 5 * 60 + 30 * 60 + (2 + 5 + 10 + 10) * 3600
    assert settings.webhook_timeout_seconds == 10.0


def test_a_schedule_reads_milliseconds_seconds_minutes_and_hours() -> None:
    settings = load_settings(
        {
            "LEDGER_WEBHOOK_RETRY_SCHEDULE": "250ms, 5s,2m,1h,3",
            "LEDGER_WEBHOOK_TIMEOUT_SECONDS": "2.5",
        }
    )

    assert settings.webhook_retry_schedule == (0.25, 5.0, 120.0, 3600.0, 3.0)
    assert settings.webhook_timeout_seconds == 2.5


@pytest.mark.parametrize("schedule", ["5x", "soon", "5s,,5m", "-1s", "nan", "infs"])
def test_a_malformed_schedule_is_refused_naming_the_setting(schedule: str) -> None:
    with pytest.raises(SettingsError, match="LEDGER_WEBHOOK_RETRY_SCHEDULE"):
        load_settings({"LEDGER_WEBHOOK_RETRY_SCHEDULE": schedule})


@pytest.mark.parametrize("seconds", ["0", "-3", "ten", "inf"])
def test_a_timeout_that_is_not_a_positive_number_is_refused(seconds: str) -> None:
    with pytest.raises(SettingsError, match="LEDGER_WEBHOOK_TIMEOUT_SECONDS"):
        load_settings({"LEDGER_WEBHOOK_TIMEOUT_SECONDS": seconds})
