"""Fixtures for the finance service: the app in-process, an order-service stand-in that publishes
integration events, and a log of the commands the saga sends."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from decimal import Decimal
from typing import Any

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractConnection
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contracts.bookworm import (
    BookWormMessage,
    OrderStatusChangedToCancelIntegrationEvent,
    OrderStatusChangedToCompleteIntegrationEvent,
    UserCheckedOutIntegrationEvent,
    exchange_for,
    new_bookworm,
)
from contracts.topology import BOOKWORM_COMMANDS
from finance_service.main import SCHEMA, create_app
from messaging import envelopes
from messaging.runtime import ServiceRuntime
from messaging.settings import RuntimeSettings
from tests.support import ADMIN_KEY, Recorder, auth, eventually

ADMIN = auth(ADMIN_KEY)
#: Long enough that no timeout fires while a test of the message flow runs.
NO_TIMEOUT = {"SAGA_PLACE_ORDER_TIMEOUT_SECONDS": "3600", "SAGA_TIMEOUT_POLL_SECONDS": "0.2"}

Client = AsyncTestClient[Litestar]


def runtime_of(client: Client) -> ServiceRuntime:
    runtime: ServiceRuntime = client.app.state.runtime
    return runtime


@contextlib.asynccontextmanager
async def running(env: Mapping[str, str]) -> AsyncIterator[Client]:
    """One finance replica in-process, connected and consuming when the block starts."""
    async with AsyncTestClient(app=create_app(dict(env))) as client:
        # The app runs on the test client's own loop in another thread: an asyncio.Event of
        # the runtime cannot wake this loop, so poll the flag instead of `wait_connected`.
        broker = runtime_of(client).broker

        async def connected() -> bool:
            return broker.is_connected

        await eventually(connected, bool)
        yield client


@pytest.fixture
def finance_env(service_env: dict[str, str]) -> dict[str, str]:
    return {**service_env, **NO_TIMEOUT}


@pytest.fixture
async def client(finance_env: dict[str, str]) -> AsyncIterator[Client]:
    async with running(finance_env) as client:
        yield client


@pytest.fixture
async def database(namespaced: RuntimeSettings) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the finance schema of the test namespace, to look behind the API."""
    conn = await asyncpg.connect(namespaced.database_url)
    await conn.execute(f"SET search_path TO {namespaced.schema(SCHEMA)}")
    yield conn
    await conn.close()


def checkout_event(
    order_id: uuid.UUID | None = None, **fields: Any
) -> UserCheckedOutIntegrationEvent:
    values: dict[str, Any] = {
        "order_id": order_id or uuid.uuid4(),
        "basket_id": uuid.uuid4(),
        "full_name": "Ada Lovelace",
        "email": "ada@example.com",
        "total_money": Decimal("42.50"),
        **fields,
    }
    return new_bookworm(UserCheckedOutIntegrationEvent, **values)


class OrderService:
    """Stands in for order_service: publishes integration events like it does (SPEC §2.4)."""

    def __init__(self, settings: RuntimeSettings, connection: AbstractConnection) -> None:
        self.settings = settings
        self.connection = connection

    async def publish(self, event: BookWormMessage, *, with_type: bool = True) -> str:
        channel = await self.connection.channel()
        try:
            exchange = await channel.get_exchange(
                self.settings.topology_prefix + exchange_for(type(event))
            )
            message = envelopes.bookworm(event, app_id="order_service").to_amqp()
            if not with_type:
                message.type = None
            await exchange.publish(message, routing_key="")
        finally:
            await channel.close()
        return str(event.id)

    async def checkout(
        self, order_id: uuid.UUID | None = None, **fields: Any
    ) -> UserCheckedOutIntegrationEvent:
        event = checkout_event(order_id, **fields)
        await self.publish(event)
        return event

    async def status(
        self,
        checkout: UserCheckedOutIntegrationEvent,
        kind: type[OrderStatusChangedToCompleteIntegrationEvent]
        | type[OrderStatusChangedToCancelIntegrationEvent],
        **fields: Any,
    ) -> BookWormMessage:
        values: dict[str, Any] = {
            "order_id": checkout.order_id,
            "basket_id": checkout.basket_id,
            "full_name": checkout.full_name,
            "email": checkout.email,
            "total_money": checkout.total_money,
            **fields,
        }
        event = new_bookworm(kind, **values)
        await self.publish(event)
        return event


@pytest.fixture
async def orders(namespaced: RuntimeSettings) -> AsyncIterator[OrderService]:
    connection = await aio_pika.connect(namespaced.amqp_url)
    yield OrderService(namespaced, connection)
    await connection.close()


class Commands:
    """What the saga sends: one recorder per command exchange."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self.recorders = {
            name: Recorder(settings, exchange_for(name), "") for name in BOOKWORM_COMMANDS
        }

    def of(self, name: str, order_id: uuid.UUID) -> list[Any]:
        return [b for b in self.recorders[name].bodies() if b["orderId"] == str(order_id)]

    def all_of(self, order_id: uuid.UUID) -> dict[str, int]:
        counts = {name: len(self.of(name, order_id)) for name in BOOKWORM_COMMANDS}
        return {name: n for name, n in counts.items() if n}

    async def wait(
        self, name: str, order_id: uuid.UUID, count: int = 1, *, timeout: float = 15.0
    ) -> list[Any]:
        async def probe() -> list[Any]:
            return self.of(name, order_id)

        return await eventually(probe, lambda found: len(found) >= count, timeout=timeout)


@pytest.fixture
async def commands(namespaced: RuntimeSettings) -> AsyncIterator[Commands]:
    log = Commands(namespaced)
    async with contextlib.AsyncExitStack() as stack:
        for recorder in log.recorders.values():
            await stack.enter_async_context(recorder)
        yield log


async def saga_of(client: Client, order_id: uuid.UUID) -> dict[str, Any]:
    response = await client.get(f"/sagas/{order_id}", headers=ADMIN)
    if response.status_code == 404:
        return {}
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_saga(
    client: Client,
    order_id: uuid.UUID,
    check: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 15.0,
) -> dict[str, Any]:
    return await eventually(lambda: saga_of(client, order_id), check, timeout=timeout)


def in_state(state: str, transitions: int | None = None) -> Callable[[dict[str, Any]], bool]:
    def check(saga: dict[str, Any]) -> bool:
        return saga.get("state") == state and (
            transitions is None or len(saga["transitions"]) == transitions
        )

    return check
