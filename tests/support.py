"""Helpers shared by the tests: bounded waiting, unique names, broker control."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from messaging.settings import RuntimeSettings
from messaging.topology import declare

T = TypeVar("T")


@dataclass(frozen=True)
class Infra:
    amqp_url: str
    database_url: str
    #: rabbitmqctl can reach the broker the tests use (needed to restart or cut it).
    local_broker: bool


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


async def eventually(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
) -> T:
    """Poll `probe` until `check` accepts its value; fail with the last value at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if check(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)


async def rabbitmqctl(*args: str, timeout: float = 120) -> str:
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {out.decode()}")
    return out.decode()


#: What the publisher's alarm test sets (every publisher blocked), and RabbitMQ's default.
BLOCKING_WATERMARK, DEFAULT_WATERMARK = "0", "0.4"
_GET_WATERMARK = "vm_memory_monitor:get_vm_memory_high_watermark()."


def lift_a_left_over_memory_alarm() -> None:
    """A test run killed inside the alarm test leaves the local broker blocking every
    publisher: give it back RabbitMQ's default before anything else runs."""
    out = subprocess.run(
        ["rabbitmqctl", "eval", _GET_WATERMARK], capture_output=True, text=True, timeout=60
    )
    if out.returncode == 0 and float(out.stdout.strip() or "1") == 0:
        subprocess.run(
            ["rabbitmqctl", "set_vm_memory_high_watermark", DEFAULT_WATERMARK],
            capture_output=True,
            timeout=60,
            check=True,
        )


async def memory_watermark() -> str:
    return (await rabbitmqctl("eval", _GET_WATERMARK)).strip()


async def close_broker_connections() -> None:
    """What a broker restart looks like to clients: every connection closed from the server."""
    await rabbitmqctl("close_all_connections", "test: closed from the broker side")


async def stop_broker() -> None:
    await rabbitmqctl("stop_app")


async def start_broker() -> None:
    await rabbitmqctl("start_app")
    await rabbitmqctl("await_startup")


# -- services under test ------------------------------------------------------------------------

ORG, ORG_KEY = "org_test", "key-test-org"
OTHER_ORG, OTHER_ORG_KEY = "org_other", "key-other-org"
ADMIN_KEY = "key-test-admin"


def auth(key: str = ORG_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Recorder:
    """A queue of the test's own bound to an exchange: records what is published there.

    async with Recorder(namespaced, "order_events", "#") as events:
        ...
        placed = await events.wait_for("order.placed", lambda body: ...)
    """

    def __init__(self, settings: RuntimeSettings, exchange: str, *routing_keys: str) -> None:
        self.settings = settings
        self.exchange = settings.topology_prefix + exchange
        self.routing_keys = routing_keys or ("#",)
        self.messages: list[AbstractIncomingMessage] = []
        self._connection: AbstractConnection | None = None

    async def __aenter__(self) -> Recorder:
        self._connection = await aio_pika.connect(self.settings.amqp_url)
        channel = await self._connection.channel()
        # The exchanges of the namespace exist once a service of it has started; declaring the
        # topology here as well lets the recorder start first.
        await declare(channel, self.settings.topology)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in self.routing_keys:
            await queue.bind(self.exchange, key)
        await queue.consume(self._record, no_ack=True)
        return self

    async def _record(self, message: AbstractIncomingMessage) -> None:
        self.messages.append(message)

    async def __aexit__(self, *_: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    def bodies(self, routing_key: str | None = None) -> list[Any]:
        return [
            json.loads(m.body)
            for m in self.messages
            if routing_key is None or m.routing_key == routing_key
        ]

    async def wait_for(
        self,
        routing_key: str,
        match: Callable[[Any], bool] = lambda _: True,
        *,
        timeout: float = 15.0,
    ) -> Any:
        """The first message with this routing key whose JSON body satisfies `match`."""

        async def found() -> list[Any]:
            return [b for b in self.bodies(routing_key) if match(b)]

        hits = await eventually(found, bool, timeout=timeout)
        return hits[0]


async def restart_postgres() -> None:
    """Restart the local PostgreSQL cluster: every connection is cut, then it comes back."""
    await _pg_ctlcluster("restart")


async def stop_postgres() -> None:
    """Stop the local PostgreSQL cluster (fast mode: every connection is cut at once)."""
    await _pg_ctlcluster("stop")


async def start_postgres() -> None:
    await _pg_ctlcluster("start")


async def stop_postgres_for(seconds: float) -> asyncio.Task[None]:
    """Stop the local PostgreSQL cluster now and start it `seconds` later; returns the task
    that brings it back, for the test to await before it ends."""
    await stop_postgres()

    async def back() -> None:
        await asyncio.sleep(seconds)
        await start_postgres()

    return asyncio.create_task(back())


async def _pg_ctlcluster(action: str) -> None:
    versions = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])
    proc = await asyncio.create_subprocess_exec(
        "pg_ctlcluster",
        "--skip-systemctl-redirect",
        versions[-1],
        "main",
        action,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        raise RuntimeError(f"pg_ctlcluster {action} failed: {out.decode()}")


def local_postgres(infra: Infra) -> bool:
    """pg_ctlcluster can restart the database the tests use."""
    return (
        shutil.which("pg_ctlcluster") is not None
        and os.path.isdir("/etc/postgresql")
        and ("@localhost" in infra.database_url or "@127.0.0.1" in infra.database_url)
    )
