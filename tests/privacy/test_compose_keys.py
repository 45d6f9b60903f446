"""compose.yaml refuses to start without a master key rather than run without one."""

from __future__ import annotations

import yaml

from tests.conftest import ROOT


def test_every_ledger_process_in_compose_requires_the_master_key() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]

    for name in ("migrate", "api", "projector"):
        value = services[name]["environment"]["LEDGER_MASTER_KEY"]
        assert value.startswith("${LEDGER_MASTER_KEY:?"), (name, value)
