"""The inventory service in-process against the live broker and database, and helpers to feed
it order events the way the order service publishes them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aio_pika
import asyncpg
import msgspec
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contracts.order_events import new_order_event
from contracts.topology import ORDER_EVENTS
from inventory_service.adapters.stock import check_ledger
from inventory_service.main import SCHEMA, create_app
from messaging import db, envelopes
from messaging.runtime import ServiceRuntime
from messaging.settings import RuntimeSettings
from tests.support import ORG, auth, eventually, unique

SWEEP_SECONDS = 0.3


@pytest.fixture(scope="session")
async def client(service_env: dict[str, str]) -> AsyncIterator[AsyncTestClient[Any]]:
    env = {**service_env, "INVENTORY_SWEEP_INTERVAL_SECONDS": str(SWEEP_SECONDS)}
    app = create_app(env)
    async with AsyncTestClient(app=app) as client:
        # Once connected, the broker has declared the topology: publishing to it is safe. (The
        # app runs on the test client's own event loop, so poll rather than await its Event.)
        await eventually(lambda: _connected(app), bool)
        yield client


async def _connected(app: Litestar) -> bool:
    runtime: ServiceRuntime = app.state.runtime
    return runtime.broker.is_connected


@pytest.fixture(scope="session")
async def conn(
    namespaced: RuntimeSettings, client: AsyncTestClient[Any]
) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the service's schema (it exists once the client started)."""
    connection = await db.connect(namespaced.database_url, namespaced.schema(SCHEMA))
    yield connection
    await connection.close()


@pytest.fixture(autouse=True)
async def ledger_balances(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """After every test that ran the service: quantities equal the ledger's sums."""
    yield
    if "client" in request.fixturenames:
        connection: asyncpg.Connection = request.getfixturevalue("conn")
        assert await check_ledger(connection) == []


@pytest.fixture(scope="session")
async def amqp(namespaced: RuntimeSettings) -> AsyncIterator[AbstractConnection]:
    connection = await aio_pika.connect(namespaced.amqp_url)
    yield connection
    await connection.close()


@pytest.fixture(scope="session")
async def channel(amqp: AbstractConnection) -> AsyncIterator[AbstractChannel]:
    channel = await amqp.channel(publisher_confirms=True)
    yield channel
    await channel.close()


class OrderEvents:
    """Publishes order events to the namespace's `order_events` exchange."""

    def __init__(self, channel: AbstractChannel, settings: RuntimeSettings) -> None:
        self.channel = channel
        self.exchange_name = settings.topology_prefix + ORDER_EVENTS

    async def publish(
        self,
        name: str,
        data: msgspec.Struct,
        *,
        organization_id: str = ORG,
        event_id: uuid.UUID | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        event = new_order_event(name, organization_id, data, event_id=event_id, timestamp=timestamp)
        message = envelopes.order_event(event, app_id="order_service")
        exchange = await self.channel.get_exchange(self.exchange_name, ensure=False)
        await exchange.publish(message.to_amqp(), routing_key=message.routing_key)
        return message.message_id


@pytest.fixture(scope="session")
async def orders(
    channel: AbstractChannel, namespaced: RuntimeSettings, client: AsyncTestClient[Any]
) -> OrderEvents:
    return OrderEvents(channel, namespaced)


async def stock_bin(
    client: AsyncTestClient[Any],
    skus: dict[str, int],
    *,
    name: str | None = None,
    low_stock_threshold: int = 0,
) -> str:
    """A new bin holding `skus` (SKU → ATP); returns its name."""
    name = name or unique("bin-")
    response = await client.post("/bins", json={"name": name}, headers=auth())
    assert response.status_code == 201, response.text
    for sku, quantity in skus.items():
        body = {"skuId": sku, "atpQty": quantity, "lowStockThreshold": low_stock_threshold}
        response = await client.post(f"/bins/{name}/items", json=body, headers=auth())
        assert response.status_code == 201, response.text
    return name


async def stock_of(client: AsyncTestClient[Any], sku: str) -> dict[str, Any]:
    response = await client.get(f"/stock/{sku}", headers=auth())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def reservation_of(client: AsyncTestClient[Any], order_id: str) -> dict[str, Any] | None:
    response = await client.get(f"/reservations/{order_id}", headers=auth())
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
