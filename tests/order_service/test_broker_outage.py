"""With RabbitMQ unreachable, checkout still answers 201 (the events wait in the outbox) and
the events arrive once the broker is back. The outage is a TCP gate in front of the shared
broker, seen by this one service instance only: the broker itself is never touched."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from litestar.testing import AsyncTestClient

from messaging import db
from messaging.namespaces import remove_namespace
from messaging.settings import RuntimeSettings
from order_service.main import SCHEMA, create_app
from tests.support import Infra, Recorder, auth, eventually, unique


class Gate:
    """Forwards TCP connections on `port` to the broker once opened; refuses them before."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        with socket.socket() as probe:  # a free port, nobody listening on it yet
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pipe in self._pipes:
            pipe.cancel()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        pipes = [
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def own_namespace(infra: Infra) -> AsyncIterator[RuntimeSettings]:
    """A namespace of this test alone, so no other replica's relay publishes our outbox."""
    settings = RuntimeSettings(
        amqp_url=infra.amqp_url, database_url=infra.database_url, namespace=unique("g")
    )
    try:
        yield settings
    finally:
        await remove_namespace(settings)


async def unsent(settings: RuntimeSettings) -> int:
    conn = await db.connect(settings.database_url, settings.schema(SCHEMA))
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        return count
    finally:
        await conn.close()


async def test_checkout_succeeds_while_the_broker_is_away_and_events_follow(
    infra: Infra, order_env: dict[str, str]
) -> None:
    broker = urlsplit(infra.amqp_url)
    gate = Gate(broker.hostname or "localhost", broker.port or 5672)
    gated_url = urlunsplit(
        broker._replace(netloc=f"{broker.netloc.rpartition('@')[0]}@127.0.0.1:{gate.port}")
    )
    async with (
        own_namespace(infra) as settings,
        Recorder(settings, "order_events", "order.*") as events,
    ):
        env = {**order_env, "AMQP_URL": gated_url, "COMMERCE_NAMESPACE": settings.namespace}
        async with AsyncTestClient(app=create_app(env)) as client:
            order = await checkout(client)
            assert order["status"] == "pending"
            assert await unsent(settings) >= 5  # cart.created, item_added, created, placed, …
            assert events.bodies() == []
            await gate.open()
            try:
                for name in ("order.created", "order.placed"):
                    body = await events.wait_for(
                        name, lambda b: b["data"]["order_id"] == order["order_id"], timeout=60
                    )
                    assert body["organization_id"] == "org_test"
                await eventually(lambda: unsent(settings), lambda n: n == 0, timeout=60)
            finally:
                await gate.close()


async def checkout(client: AsyncTestClient[Any]) -> dict[str, Any]:
    cart = await client.post("/carts", json={"customer_id": "c_gate"}, headers=auth())
    assert cart.status_code == 201, cart.text
    path = f"/carts/{cart.json()['cart_id']}"
    item = {"variant_id": "var_gate", "quantity": 1, "unit_price": 9.99}
    assert (await client.post(f"{path}/items", json=item, headers=auth())).status_code == 201
    body = {"email": "gate@example.com", "full_name": "Gate Keeper"}
    response = await client.post(f"{path}/checkout", json=body, headers=auth())
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result
