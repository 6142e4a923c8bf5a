"""The order service in-process against the live broker and database, a stand-in for the
inventory service (reservation CloudEvents) and the checkout saga (BookWorm commands), and a
`Shop` that drives orders over HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contracts import cloudevents as ce
from contracts.bookworm import BookWormMessage, exchange_for
from contracts.topology import ECOMM
from messaging import db, envelopes
from messaging.namespaces import remove_namespace
from messaging.runtime import ServiceRuntime
from messaging.settings import RuntimeSettings
from order_service.main import SCHEMA, create_app
from tests.contracts._shared import EXAMPLES_DIR, json_shape
from tests.support import Infra, auth, eventually, unique

SWEEP_SECONDS = 0.3
EXAMPLES = EXAMPLES_DIR / "order_events"


@pytest.fixture(scope="session")
async def namespaced(infra: Infra) -> AsyncIterator[RuntimeSettings]:
    """A namespace of these tests alone (overrides the session's). When the whole suite runs in
    one session, the other services' apps started by their tests stay up; in the shared
    namespace inventory would answer our `order.placed` (no stock: the order is cancelled) and
    the saga our `UserCheckedOut`, racing the inputs these tests publish themselves."""
    settings = RuntimeSettings(
        amqp_url=infra.amqp_url, database_url=infra.database_url, namespace=unique("o")
    )
    yield settings
    await remove_namespace(settings)


@pytest.fixture(scope="session")
def order_env(service_env: dict[str, str], namespaced: RuntimeSettings) -> dict[str, str]:
    return {
        **service_env,
        "COMMERCE_NAMESPACE": namespaced.namespace,
        "CART_SWEEP_INTERVAL_SECONDS": str(SWEEP_SECONDS),
        "CART_ABANDON_AFTER_SECONDS": "3600",
        "ORDER_PUBLIC_URL": "http://orders.test",
    }


@pytest.fixture(scope="session")
async def client(order_env: dict[str, str]) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(order_env)
    async with AsyncTestClient(app=app) as client:
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


class Inventory:
    """Publishes what inventory_service would: reservation CloudEvents on `ecomm`."""

    def __init__(self, channel: AbstractChannel, settings: RuntimeSettings) -> None:
        self.channel = channel
        self.exchange = settings.topology_prefix + ECOMM

    async def publish(self, type_: str, order_id: str, data: Any) -> str:
        event = ce.new_cloud_event(type_, "/inventory_service", order_id, data)
        message = envelopes.cloud_event(event, app_id="inventory_service", order_id=order_id)
        exchange = await self.channel.get_exchange(self.exchange, ensure=False)
        await exchange.publish(message.to_amqp(), routing_key=message.routing_key)
        return message.message_id

    async def reserved(
        self, order: dict[str, Any], warehouse: str = "wh_101", reservation_id: str | None = None
    ) -> str:
        reservation_id = reservation_id or unique("res_")
        items = [
            ce.StockItem(variant_id=i["variant_id"], warehouse_id=warehouse, quantity=i["quantity"])
            for i in order["items"]
        ]
        data = ce.ReservationCreatedData(
            reservation_id=reservation_id,
            order_id=order["order_id"],
            items=items,
            expires_at=datetime.now(UTC),
        )
        await self.publish("inventory.reservation.created", order["order_id"], data)
        return reservation_id

    async def failed(self, order: dict[str, Any]) -> None:
        items = [
            ce.UnavailableItem(variant_id=i["variant_id"], requested=i["quantity"], available=0)
            for i in order["items"]
        ]
        data = ce.ReservationFailedData(
            order_id=order["order_id"], reason="insufficient_stock", items=items
        )
        await self.publish("inventory.reservation.failed", order["order_id"], data)


@pytest.fixture(scope="session")
async def inventory(
    channel: AbstractChannel, namespaced: RuntimeSettings, client: AsyncTestClient[Any]
) -> Inventory:
    return Inventory(channel, namespaced)


class Saga:
    """Publishes the checkout saga's commands to their `BookWorm.Contracts:` exchanges."""

    def __init__(self, channel: AbstractChannel, settings: RuntimeSettings) -> None:
        self.channel = channel
        self.prefix = settings.topology_prefix

    async def send(self, message: BookWormMessage) -> None:
        outgoing = envelopes.bookworm(message, app_id="finance_service")
        exchange = await self.channel.get_exchange(
            self.prefix + exchange_for(type(message)), ensure=False
        )
        await exchange.publish(outgoing.to_amqp(), routing_key="")


@pytest.fixture(scope="session")
async def saga(
    channel: AbstractChannel, namespaced: RuntimeSettings, client: AsyncTestClient[Any]
) -> Saga:
    return Saga(channel, namespaced)


class Shop:
    """Drives carts and orders over HTTP, asserting each step succeeded."""

    def __init__(self, client: AsyncTestClient[Any], conn: asyncpg.Connection) -> None:
        self.client = client
        self.conn = conn

    async def post(
        self, path: str, body: dict[str, Any], status: int = 200, **headers: str
    ) -> dict[str, Any]:
        response = await self.client.post(path, json=body, headers={**auth(), **headers})
        assert response.status_code == status, response.text
        result: dict[str, Any] = response.json()
        return result

    async def get(self, path: str) -> dict[str, Any]:
        response = await self.client.get(path, headers=auth())
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def cart(self, *items: tuple[str, int, str]) -> dict[str, Any]:
        cart = await self.post(
            "/carts", {"customer_id": "cust_789", "session_id": unique("sess_")}, 201
        )
        for variant, quantity, price in items:
            body = {"variant_id": variant, "quantity": quantity, "unit_price": Decimal(price)}
            cart = await self.post(f"/carts/{cart['cart_id']}/items", _json(body), 201)
        return cart

    async def order(self, *items: tuple[str, int, str], **checkout: Any) -> dict[str, Any]:
        """A checked-out order of a new cart (default: two lines); `checkout`: more fields of
        the checkout body (addresses)."""
        cart = await self.cart(*(items or (("var_789", 2, "25.00"), ("var_790", 1, "75.50"))))
        return await self.post(
            f"/carts/{cart['cart_id']}/checkout",
            {
                "email": "customer@example.com",
                "full_name": "Juan Pérez",
                "local_id": "local_101",
                "preferred_warehouse_id": "wh_101",
                **checkout,
            },
            201,
        )

    async def pay(self, order: dict[str, Any]) -> dict[str, Any]:
        payment = await self.post(
            f"/orders/{order['order_id']}/payments",
            {"payment_method": "stripe", "card_last4": "4242"},
            201,
        )
        return await self.post(
            f"/payments/{payment['payment_id']}/succeed", {"gateway_payment_id": "pi_123"}
        )

    async def order_status(self, order_id: str) -> str:
        status: str = (await self.get(f"/orders/{order_id}"))["status"]
        return status

    async def wait_status(self, order_id: str, status: str) -> dict[str, Any]:
        await eventually(lambda: self.order_status(order_id), lambda s: s == status)
        return await self.get(f"/orders/{order_id}")

    async def outbox_count(self, order_id: str) -> int:
        """Messages this order's changes wrote (all events go through the outbox)."""
        count: int = await self.conn.fetchval(
            "SELECT count(*) FROM outbox WHERE correlation_id = $1", order_id
        )
        return count


def _json(body: dict[str, Any]) -> dict[str, Any]:
    """Decimals as JSON numbers (httpx would refuse them)."""
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in body.items()}


@pytest.fixture
async def shop(client: AsyncTestClient[Any], conn: asyncpg.Connection) -> Shop:
    return Shop(client, conn)


def example(name: str) -> Any:
    return json.loads((EXAMPLES / f"{name}.json").read_bytes())


def same_shape(actual: Any, expected: Any, path: str = "data") -> list[str]:
    """Where `actual` differs from the seed example: keys (recursively) and JSON types; every
    element of a list is compared with the example's first element."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: object expected, got {actual!r}"]
        if set(actual) != set(expected):
            return [f"{path}: keys {sorted(actual)} != {sorted(expected)}"]
        return [p for k in expected for p in same_shape(actual[k], expected[k], f"{path}.{k}")]
    if isinstance(expected, list):
        if not isinstance(actual, list) or (expected and not actual):
            return [f"{path}: non-empty list expected, got {actual!r}"]
        return [p for i, a in enumerate(actual) for p in same_shape(a, expected[0], f"{path}[{i}]")]
    if json_shape(actual) != json_shape(expected):
        return [f"{path}: {json_shape(actual)} {actual!r} != {json_shape(expected)}"]
    return []


def new_id() -> str:
    return str(uuid.uuid4())
