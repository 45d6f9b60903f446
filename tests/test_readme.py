"""The README's API walk-through works as printed, against `community-ledger serve`."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _blocks(section: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", body, flags=re.S)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_walkthrough(
    database_url: str, steps: list[str], *, access_log: bool = False
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the README's shell steps as printed against a `community-ledger serve` of their
    own (its port and this interpreter swapped in); answer the run and the server's output."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    serve = [sys.executable, "-m", "services.cli", "serve", "--port", str(port), "--projector"]
    server = subprocess.Popen(
        serve if access_log else [*serve, "--no-access-log"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_ready(port, server)
        script = "\n".join(steps).replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
        script = script.replace(".venv/bin/community-ledger", f"{sys.executable} -m services.cli")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.terminate()
        log, _ = server.communicate(timeout=30)
    return done, log


def test_the_readme_walkthrough_registers_records_and_reads_back(database_url: str) -> None:
    serve, *steps = _blocks("The API in five minutes")
    assert serve.strip() == ".venv/bin/community-ledger serve"
    done, _ = run_walkthrough(database_url, steps)

    assert done.returncode == 0, done.stderr
    profile = _json_values(done.stdout)[-1]
    assert profile["display_name"] == "Yann Ropars"
    assert profile["contributions_total"] == 1
    assert profile["mentions_received"] == 1 and profile["recognitions_received"] == 1


def _json_values(text: str) -> list[dict[str, object]]:
    """curl prints each answer without a newline: read the JSON values one after another."""
    decoder, values, index = json.JSONDecoder(), [], 0
    while index < len(text.rstrip()):
        while text[index].isspace():
            index += 1
        value, index = decoder.raw_decode(text, index)
        values.append(value)
    return values


def _wait_ready(port: int, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"serve exited: {server.stdout.read() if server.stdout else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("serve did not become ready")
