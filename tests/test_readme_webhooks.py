"""The README's webhook walk-through works as printed, after the API walk-through."""

from __future__ import annotations

import pytest

from tests.test_readme import _blocks, _json_values, run_walkthrough

pytestmark = pytest.mark.slow

SECTION = "Webhooks: being told"


def test_the_readme_subscribes_a_webhook_and_shows_its_secret_once(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, *setup = _blocks("The API in five minutes")
    serve, subscribe, log = _blocks(SECTION)
    assert (
        serve.strip() == "LEDGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS=1 .venv/bin/community-ledger serve"
    )
    monkeypatch.setenv("LEDGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "1")
    steps = [*setup, "echo '\"--- webhook\"'", subscribe, log]

    done, _ = run_walkthrough(database_url, steps)

    assert done.returncode == 0, done.stderr
    values = _json_values(done.stdout)
    made, deliveries = values[values.index("--- webhook") + 1 :]
    assert isinstance(made, dict) and isinstance(deliveries, dict)
    assert made["secret"].startswith("whsec_")
    assert (made["url"], made["event_types"], made["position"]) == (
        "http://127.0.0.1:9000/ledger",
        ["RecognitionGiven"],
        0,
    )
    assert made["enabled"] is True and made["description"] == "thank people in the chat"
    assert set(deliveries) == {"deliveries", "next_cursor"}
    assert made["secret"] not in str(deliveries)
