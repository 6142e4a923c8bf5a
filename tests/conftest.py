"""Test bed: the real RabbitMQ and Postgres.

`AMQP_URL` / `DATABASE_URL` win when set. Otherwise, where a Docker engine answers, testcontainers
starts both; otherwise the local defaults (the services `make test` makes sure are running).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest

from messaging.namespaces import remove_namespace
from messaging.settings import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, RuntimeSettings
from tests.support import (
    ADMIN_KEY,
    ORG,
    ORG_KEY,
    OTHER_ORG,
    OTHER_ORG_KEY,
    Infra,
    lift_a_left_over_memory_alarm,
    unique,
)


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    amqp_url, database_url = os.environ.get("AMQP_URL"), os.environ.get("DATABASE_URL")
    if amqp_url and database_url:
        yield Infra(amqp_url, database_url, local_broker=shutil.which("rabbitmqctl") is not None)
        return
    if _docker_engine():
        from testcontainers.postgres import PostgresContainer
        from testcontainers.rabbitmq import RabbitMqContainer

        with (
            RabbitMqContainer("rabbitmq:3.13-management") as rabbit,
            PostgresContainer("postgres:16", driver=None) as postgres,
        ):
            host, port = rabbit.get_container_host_ip(), rabbit.get_exposed_port(5672)
            yield Infra(
                amqp_url or f"amqp://guest:guest@{host}:{port}/",
                database_url or postgres.get_connection_url(),
                local_broker=False,
            )
        return
    local_broker = shutil.which("rabbitmqctl") is not None
    if local_broker:
        lift_a_left_over_memory_alarm()
    yield Infra(
        amqp_url or DEFAULT_AMQP_URL,
        database_url or DEFAULT_DATABASE_URL,
        local_broker=local_broker,
    )


@pytest.fixture(scope="session")
def settings(infra: Infra) -> RuntimeSettings:
    return RuntimeSettings(amqp_url=infra.amqp_url, database_url=infra.database_url)


@pytest.fixture(scope="session")
async def namespace(infra: Infra) -> AsyncIterator[str]:
    """A namespace (COMMERCE_NAMESPACE) of this test session's own: its exchanges, queues and
    schemas meet no other run and no running system; all of it is removed afterwards."""
    name = unique("t")
    yield name
    settings = RuntimeSettings(
        amqp_url=infra.amqp_url, database_url=infra.database_url, namespace=name
    )
    await remove_namespace(settings)


@pytest.fixture(scope="session")
def service_env(infra: Infra, namespace: str) -> dict[str, str]:
    """The environment a service's `create_app(environ)` gets in tests."""
    return {
        "AMQP_URL": infra.amqp_url,
        "DATABASE_URL": infra.database_url,
        "COMMERCE_NAMESPACE": namespace,
        "COMMERCE_API_KEYS": f"{ORG}={ORG_KEY},{OTHER_ORG}={OTHER_ORG_KEY}",
        "COMMERCE_ADMIN_KEY": ADMIN_KEY,
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture(scope="session")
def namespaced(infra: Infra, namespace: str) -> RuntimeSettings:
    return RuntimeSettings(
        amqp_url=infra.amqp_url, database_url=infra.database_url, namespace=namespace
    )
