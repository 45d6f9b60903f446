"""The live stream's settings: read from the environment, refused when malformed."""

from __future__ import annotations

import pytest

from services.settings import SettingsError, StreamSettings, load_stream_settings


def test_the_stream_settings_have_defaults_and_read_the_environment() -> None:
    assert load_stream_settings({}) == StreamSettings()
    read = load_stream_settings(
        {
            "LEDGER_SSE_HEARTBEAT_SECONDS": "5",
            "LEDGER_SSE_QUEUE_EVENTS": "200",
            "LEDGER_SSE_MAX_SECONDS": "60",
            "LEDGER_SSE_MAX_STREAMS": "10",
            "LEDGER_SSE_GATHER_SECONDS": "0.025",
        }
    )

    assert read == StreamSettings(
        heartbeat_seconds=5, queue_events=200, max_seconds=60, max_streams=10, gather_seconds=0.025
    )


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("LEDGER_SSE_GATHER_SECONDS", "0"),
        ("LEDGER_SSE_GATHER_SECONDS", "soon"),
        ("LEDGER_SSE_HEARTBEAT_SECONDS", "inf"),
        ("LEDGER_SSE_QUEUE_EVENTS", "1.5"),
        ("LEDGER_SSE_MAX_STREAMS", "0"),
    ],
)
def test_a_malformed_stream_setting_is_refused_naming_it(name: str, text: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_stream_settings({name: text})
