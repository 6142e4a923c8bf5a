"""docker/: the compose file is valid where Docker Compose is installed, and names every
service of the system with the image built from the project."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from messaging.cli import SERVICES

COMPOSE = Path(__file__).resolve().parents[1] / "docker" / "compose.yaml"


def _compose_available() -> bool:
    try:
        return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.mark.skipif(not _compose_available(), reason="needs the docker compose plugin")
def test_docker_compose_config_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_compose_file_runs_every_service_and_its_backing_services() -> None:
    text = COMPOSE.read_text()
    for name in ("rabbitmq:", "postgres:", "smtp:"):
        assert f"\n  {name}" in text, name
    for name in SERVICES:
        assert f'command: ["commerce", "serve", "{name}"]' in text, name
