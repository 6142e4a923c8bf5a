"""Faults across the running system, each service a process of its own: RabbitMQ or Postgres
restarted in the middle of a stream of checkouts, a service killed with SIGKILL mid-batch, every
message delivered twice, a malformed message on every consumer queue. Each test checks that
nothing is lost (every checkout that was answered ends confirmed, reserved, placed in the saga,
mailed) and nothing is applied twice (stock reserved exactly once per order, one mail per
template, counters moved by exactly the number of orders)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from contracts.topology import ECOMM, ORDER_EVENTS, ExchangeType
from messaging.settings import RuntimeSettings
from tests.e2e.conftest import MailSink, Shop, System, mails_to, now
from tests.support import (
    ADMIN_KEY,
    Infra,
    eventually,
    local_postgres,
    restart_postgres,
    start_broker,
    stop_broker,
    unique,
)

STOCK = 100
#: Mails every checkout of these tests leads to: order created, order received (the saga's
#: PlaceOrderCommand), order confirmed.
MAILS_PER_ORDER = 3
#: How long a client keeps retrying a request through an outage.
PATIENCE = 120.0


@dataclass(frozen=True)
class Placed:
    order_id: str
    email: str


class Stream:
    """Complete checkouts (cart → item → checkout → payment → success), a few at a time, each
    request retried through outages under its Idempotency-Key."""

    def __init__(self, shop: Shop, sku: str, bin_name: str) -> None:
        self.shop, self.sku, self.bin_name = shop, sku, bin_name
        self.placed: list[Placed] = []

    async def one(self) -> None:
        call = self.shop.call
        email = f"{unique('f')}@example.com"
        cart = await call(
            "order", "POST", "/carts", {"customer_id": unique("c")}, retry_for=PATIENCE
        )
        path = f"/carts/{cart['cart_id']}"
        item = {"variant_id": self.sku, "quantity": 1, "unit_price": 10.0}
        await call("order", "POST", f"{path}/items", item, retry_for=PATIENCE)
        checkout = {
            "email": email,
            "full_name": "Grace Hopper",
            "preferred_warehouse_id": self.bin_name,
        }
        order = await call("order", "POST", f"{path}/checkout", checkout, retry_for=PATIENCE)
        self.placed.append(Placed(order["order_id"], email))
        payment = await call(
            "order",
            "POST",
            f"/orders/{order['order_id']}/payments",
            {"payment_method": "card"},
            retry_for=PATIENCE,
        )
        await call(
            "order", "POST", f"/payments/{payment['payment_id']}/succeed", {}, retry_for=PATIENCE
        )

    async def run(self, count: int, parallel: int = 4) -> None:
        gate = asyncio.Semaphore(parallel)

        async def gated() -> None:
            async with gate:
                await self.one()

        await asyncio.gather(*(gated() for _ in range(count)))

    async def until_placed(self, count: int) -> None:
        await eventually(lambda: now(len(self.placed)), lambda n: n >= count, timeout=60)


async def stocked(shop: Shop) -> tuple[str, str]:
    sku, bin_name = unique("sku-"), unique("wh-")
    await shop.call("inventory", "POST", "/bins", {"name": bin_name}, retry_for=PATIENCE)
    item = {"skuId": sku, "atpQty": STOCK}
    await shop.call("inventory", "POST", f"/bins/{bin_name}/items", item, retry_for=PATIENCE)
    return sku, bin_name


async def placed_saga(shop: Shop, order_id: str) -> dict[str, Any]:
    saga: dict[str, Any] = await eventually(
        lambda: shop.saga(order_id), lambda s: s.get("state") == "Placed", timeout=60
    )
    return saga


async def settled(shop: Shop, sink: MailSink, sku: str, placed: list[Placed]) -> None:
    """Every order confirmed with its stock reserved once, placed in the saga once, mailed once
    per template."""

    async def statuses() -> Counter[str]:
        return Counter([await shop.order_status(p.order_id) for p in placed])

    await eventually(statuses, lambda c: c == Counter({"confirmed": len(placed)}), timeout=120)
    await eventually(
        lambda: shop.stock_of(sku),
        lambda s: s == {"onHand": STOCK, "reserved": len(placed)},
        timeout=60,
    )
    for p in placed:
        # The order is confirmed first; inventory commits its hold when order.confirmed
        # reaches it, which after a restart may take a relay retry.
        await eventually(
            partial(shop.call, "inventory", "GET", f"/reservations/{p.order_id}"),
            lambda reservation: reservation["status"] == "committed",
            timeout=60,
        )
        saga = await placed_saga(shop, p.order_id)
        ids = [t["message_id"] for t in saga["transitions"]]
        assert len(ids) == len(set(ids)), saga  # no message applied twice
        assert saga["attempts"] == 1, saga

    async def mails() -> list[list[str]]:
        return [mails_to(sink, p.email) for p in placed]

    found = await eventually(
        mails, lambda m: all(len(s) >= MAILS_PER_ORDER for s in m), timeout=120
    )
    await asyncio.sleep(1)  # a duplicate would arrive right behind
    for p, subjects in zip(placed, await mails(), strict=True):
        assert len(subjects) == MAILS_PER_ORDER, (p, subjects)
        assert len(set(subjects)) == len(subjects), (p, subjects)
    assert len(found) == len(placed)


async def checkouts_through(
    shop: Shop,
    sink: MailSink,
    fault: Callable[[Stream], Awaitable[None]],
    *,
    orders: int = 24,
    parallel: int = 4,
    before: int = 6,
) -> None:
    """A stream of `orders` checkouts; `fault` strikes once `before` of them are placed, while
    the rest keep coming; then every one must have settled (see `settled`)."""
    sku, bin_name = await stocked(shop)
    stream = Stream(shop, sku, bin_name)
    running = asyncio.create_task(stream.run(orders, parallel=parallel))
    await stream.until_placed(before)
    await fault(stream)
    await running
    await settled(shop, sink, sku, stream.placed)


@pytest.fixture
def sink(mail: tuple[MailSink, int]) -> MailSink:
    return mail[0]


@pytest.mark.broker_restart
async def test_rabbitmq_restarted_in_the_middle_of_a_stream_of_checkouts(
    shop: Shop, sink: MailSink, infra: Infra
) -> None:
    if not infra.local_broker:
        pytest.skip("needs rabbitmqctl for the broker the tests use")

    async def restart(_: Stream) -> None:
        await stop_broker()
        await asyncio.sleep(2)  # checkouts go on meanwhile: their events wait in the outboxes
        await start_broker()

    await checkouts_through(shop, sink, restart)


@pytest.mark.postgres_restart
async def test_postgres_restarted_in_the_middle_of_a_stream_of_checkouts(
    shop: Shop, sink: MailSink, infra: Infra
) -> None:
    if not local_postgres(infra):
        pytest.skip("needs pg_ctlcluster for the database the tests use")

    async def restart(_: Stream) -> None:
        await restart_postgres()

    await checkouts_through(shop, sink, restart)


async def test_a_service_killed_mid_batch_and_started_again_loses_nothing(
    shop: Shop, sink: MailSink, system: System
) -> None:

    async def kill(stream: Stream) -> None:
        system.kill("inventory")  # SIGKILL: no shutdown, whatever it held unacked is redelivered
        await stream.until_placed(16)  # orders keep coming while inventory is gone
        system.start("inventory")
        await system.wait_ready("inventory")

    await checkouts_through(shop, sink, kill, orders=30, parallel=6, before=8)


class Duplicator:
    """Publishes a second copy (same message id and properties) of every message on the
    system's exchanges, so every consumer gets each message twice."""

    COPY = "x-test-copy"

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self.copies = 0
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: AbstractChannel | None = None

    async def __aenter__(self) -> Duplicator:
        self._connection = await aio_pika.connect(self.settings.amqp_url)
        self._channel = await self._connection.channel()
        queue = await self._channel.declare_queue(exclusive=True, auto_delete=True)
        prefix = self.settings.topology_prefix
        await queue.bind(prefix + ORDER_EVENTS, "#")
        await queue.bind(prefix + ECOMM, "#")
        for exchange in self.settings.topology.exchanges:
            if exchange.type is ExchangeType.FANOUT and "BookWorm.Contracts:" in exchange.name:
                await queue.bind(exchange.name, "")
        await queue.consume(self._copy)
        return self

    async def _copy(self, message: AbstractIncomingMessage) -> None:
        assert self._channel is not None
        if not message.headers.get(self.COPY):
            exchange = await self._channel.get_exchange(message.exchange or "", ensure=False)
            await exchange.publish(
                aio_pika.Message(
                    message.body,
                    headers={**message.headers, self.COPY: "1"},
                    message_id=message.message_id,
                    type=message.type,
                    content_type=message.content_type,
                    correlation_id=message.correlation_id,
                    app_id=message.app_id,
                    timestamp=message.timestamp,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=message.routing_key or "",
            )
            self.copies += 1
        await message.ack()

    async def __aexit__(self, *_: object) -> None:
        if self._connection is not None:
            await self._connection.close()


async def test_every_message_delivered_twice_is_applied_once(
    shop: Shop, sink: MailSink, e2e_settings: RuntimeSettings
) -> None:
    sku, bin_name = await stocked(shop)
    before = await shop.summary()
    async with Duplicator(e2e_settings) as duplicator:
        stream = Stream(shop, sku, bin_name)
        await stream.run(12)
        await settled(shop, sink, sku, stream.placed)
        assert duplicator.copies >= 12 * 10  # every order's events, commands and replies
    n = len(stream.placed)
    after = await eventually(
        shop.summary, lambda t: t["orders_confirmed"] >= before["orders_confirmed"] + n
    )
    for counter in ("orders_created", "orders_confirmed", "carts_converted"):
        assert after[counter] == before[counter] + n, (counter, before, after)


OWNERS = {
    "order_service": "order",
    "inventory_service": "inventory",
    "finance_service": "finance",
    "notification_service": "notification",
}


async def test_a_malformed_message_on_every_consumer_queue_is_dead_lettered_and_replayable(
    shop: Shop, sink: MailSink, e2e_settings: RuntimeSettings
) -> None:
    queues = [q for q in e2e_settings.topology.queues if q.owner is not None]
    assert len(queues) >= 11  # SPEC §3's eleven consumer queues at least
    sent: dict[str, tuple[str, str]] = {}  # message id → (service, queue)
    connection = await aio_pika.connect(e2e_settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        for queue in queues:
            message_id = str(uuid.uuid4())
            assert queue.owner is not None
            sent[message_id] = (OWNERS[queue.owner.value], queue.name)
            await channel.default_exchange.publish(
                aio_pika.Message(
                    b'{"broken": ',
                    message_id=message_id,
                    type="test.malformed",
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=queue.name,
                mandatory=True,
            )
    finally:
        await connection.close()

    async def letters(service: str, *, replayed: bool = False) -> list[dict[str, Any]]:
        query = "?limit=1000&include_replayed=true" if replayed else "?limit=1000"
        found: list[dict[str, Any]] = await shop.call(
            service, "GET", f"/dead-letters{query}", key=ADMIN_KEY
        )
        return [d for d in found if d["message_id"] in sent]

    async def all_letters(replayed: bool = False) -> list[dict[str, Any]]:
        return [d for s in OWNERS.values() for d in await letters(s, replayed=replayed)]

    waiting = await eventually(all_letters, lambda found: len(found) == len(sent), timeout=60)
    for letter in waiting:
        assert letter["queue"] == sent[letter["message_id"]][1]
        assert "undecodable" in letter["reason"], letter
    # The consumers went on: a checkout after the poison goes through every service.
    sku, bin_name = await stocked(shop)
    stream = Stream(shop, sku, bin_name)
    await stream.run(1)
    await settled(shop, sink, sku, stream.placed)

    # Replay, per service: each message goes back to its own queue (only), is consumed again
    # and — still malformed — dead-lettered again, the first letter marked as replayed.
    for service in OWNERS.values():
        ids = [d["id"] for d in waiting if sent[d["message_id"]][0] == service]
        if not ids:
            continue
        answer = await shop.call(
            service, "POST", "/dead-letters/replay", {"ids": ids}, key=ADMIN_KEY
        )
        assert sorted(answer["replayed"]) == sorted(ids)

    async def after_replay() -> list[dict[str, Any]]:
        return await all_letters(replayed=True)

    letters_now = await eventually(
        after_replay, lambda found: len(found) == 2 * len(sent), timeout=60
    )
    for message_id, (_, queue_name) in sent.items():
        mine = [d for d in letters_now if d["message_id"] == message_id]
        assert [d["queue"] for d in mine] == [queue_name, queue_name]
        assert sorted(d["replay_count"] for d in mine) == [0, 1]
    assert len(await all_letters()) == len(sent)  # the new ones wait; the first are replayed
