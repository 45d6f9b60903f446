"""compose.yaml stays a real deployment: valid, complete, and running real commands.

Docker is not available on our machines, so this is as close as the suite gets.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from services.cli import build_parser
from tests.conftest import ROOT


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return document


def test_compose_has_postgres_a_migration_the_api_and_a_projector() -> None:
    services = _compose()["services"]

    assert {"postgres", "migrate", "api", "projector"} <= set(services)
    assert "healthcheck" in services["postgres"] and services["postgres"]["volumes"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "projector"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"
        assert "DATABASE_URL" in services[name]["environment"]


@pytest.mark.parametrize("service", ["migrate", "api", "projector"])
def test_every_command_in_compose_is_a_real_community_ledger_command(service: str) -> None:
    command = _compose()["services"][service]["command"]

    assert command[0] == "community-ledger"
    args = build_parser().parse_args(command[1:])
    assert callable(args.handler)


def test_the_image_compose_builds_installs_the_command() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert "pip install" in dockerfile and "community-ledger" in dockerfile
    for folder in ("domain", "services", "migrations"):
        assert f"COPY {folder} " in dockerfile
