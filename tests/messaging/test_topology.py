"""The topology data matches SPEC §3 table for table, and declares on the live broker."""

from __future__ import annotations

import json

import aio_pika
import pytest

from contracts.topology import (
    BOOKWORM_COMMANDS,
    BOOKWORM_INTEGRATION_EVENTS,
    ORDER_EVENT_NAMES,
    TOPOLOGY,
    ExchangeType,
    Service,
)
from messaging.broker import Broker
from tests.support import Infra, rabbitmqctl

BW = "BookWorm.Contracts:"

#: SPEC §3, second table, transcribed: queue → (bindings, consumer).
SPEC_QUEUES = {
    "inventory_order_consumer": (
        {
            ("order_events", k)
            for k in (
                "order.placed",
                "order.confirmed",
                "order.cancelled",
                "order.shipped",
                "return.received",
            )
        },
        Service.INVENTORY,
    ),
    "notification_order_consumer": (
        {
            ("order_events", k)
            for k in (
                "order.created",
                "order.confirmed",
                "order.shipped",
                "order.delivered",
                "return.approved",
            )
        },
        Service.NOTIFICATION,
    ),
    "analytics_order_consumer": (
        {
            ("order_events", k)
            for k in ("order.created", "order.confirmed", "cart.abandoned", "cart.converted")
        },
        Service.NOTIFICATION,
    ),
    "order_inventory_consumer": ({("ecomm", "inventory.reservation.*")}, Service.ORDER),
    "inventory.bulktransactions": (set(), Service.INVENTORY),
    "finance-order-state-machine": (
        {
            (BW + m, "")
            for m in (
                "UserCheckedOutIntegrationEvent",
                "BasketDeletedCompleteIntegrationEvent",
                "BasketDeletedFailedIntegrationEvent",
                "OrderStatusChangedToCompleteIntegrationEvent",
                "OrderStatusChangedToCancelIntegrationEvent",
            )
        },
        Service.FINANCE,
    ),
    "basket-place-order": ({(BW + "PlaceOrderCommand", "")}, Service.ORDER),
    "basket-checkout-complete": ({(BW + "DeleteBasketCompleteCommand", "")}, Service.ORDER),
    "basket-checkout-failed": ({(BW + "DeleteBasketFailedCommand", "")}, Service.ORDER),
    "notification-place-order": ({(BW + "PlaceOrderCommand", "")}, Service.NOTIFICATION),
    "notification-complete-order": ({(BW + "CompleteOrderCommand", "")}, Service.NOTIFICATION),
    "notification-cancel-order": ({(BW + "CancelOrderCommand", "")}, Service.NOTIFICATION),
}


def test_exchanges_match_the_spec() -> None:
    types = {e.name: e.type for e in TOPOLOGY.exchanges}
    assert types["order_events"] is ExchangeType.TOPIC
    assert types["ecomm"] is ExchangeType.TOPIC
    bookworm = {n for n in types if n.startswith(BW)}
    assert bookworm == {BW + m for m in BOOKWORM_INTEGRATION_EVENTS + BOOKWORM_COMMANDS}
    assert len(bookworm) == 10
    assert all(types[n] is ExchangeType.FANOUT for n in bookworm)
    # The only others are the alternate exchanges that keep unroutable events.
    assert set(types) - bookworm == {
        "order_events",
        "ecomm",
        "order_events.unrouted",
        "ecomm.unrouted",
    }
    assert len(ORDER_EVENT_NAMES) == len(set(ORDER_EVENT_NAMES)) == 29


def test_consumer_queues_match_the_spec() -> None:
    consumer_queues = {q.name: q for q in TOPOLOGY.queues if q.owner is not None}
    assert set(consumer_queues) >= set(SPEC_QUEUES)
    for name, (bindings, owner) in SPEC_QUEUES.items():
        queue = consumer_queues[name]
        assert {(b.exchange, b.routing_key) for b in queue.bindings} == bindings, name
        assert queue.owner is owner, name
    # SPEC §3: a service may declare more queues of its own, named `<queue>.<purpose>`.
    for name in set(consumer_queues) - set(SPEC_QUEUES):
        base, _, purpose = name.rpartition(".")
        assert purpose, name
        assert base in SPEC_QUEUES, name
        assert consumer_queues[name].owner is SPEC_QUEUES[base][1], name
    for name, queue in consumer_queues.items():
        arguments = queue.arguments()
        assert arguments["x-queue-type"] == "quorum"
        assert arguments["x-delivery-limit"] == 20
        assert arguments["x-dead-letter-routing-key"] == f"{name}.dead-letter"


async def test_topology_declares_on_the_broker_and_again(infra: Infra) -> None:
    for _ in range(2):  # declaring is idempotent: a second service start changes nothing
        broker = Broker(infra.amqp_url, app_id="tests", topology=TOPOLOGY)
        broker.start()
        try:
            assert await broker.wait_connected(20)
        finally:
            await broker.close()
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        channel = await connection.channel()
        for queue in TOPOLOGY.all_queues():  # passive: fails if missing
            await channel.declare_queue(queue.name, passive=True)
    finally:
        await connection.close()


async def test_live_bindings_and_queue_types(infra: Infra) -> None:
    if not infra.local_broker:
        pytest.skip("rabbitmqctl cannot reach the broker under test")
    broker = Broker(infra.amqp_url, app_id="tests", topology=TOPOLOGY)
    broker.start()
    try:
        assert await broker.wait_connected(20)
    finally:
        await broker.close()
    bindings = json.loads(
        await rabbitmqctl(
            "list_bindings",
            "-q",
            "--formatter",
            "json",
            "source_name",
            "destination_name",
            "routing_key",
        )
    )
    queues = {
        q["name"]: q
        for q in json.loads(
            await rabbitmqctl("list_queues", "-q", "--formatter", "json", "name", "type")
        )
    }
    for name, (expected, _) in SPEC_QUEUES.items():
        live = {
            (b["source_name"], b["routing_key"])
            for b in bindings
            if b["destination_name"] == name and b["source_name"]
        }
        assert live == expected, name
        assert queues[name]["type"] == "quorum", name
        assert queues[f"{name}.dead-letter"]["type"] == "quorum", name


def test_a_namespace_moves_every_name_and_binding() -> None:
    spaced = TOPOLOGY.with_prefix("t1.")
    assert {e.name for e in spaced.exchanges} == {"t1." + e.name for e in TOPOLOGY.exchanges}
    assert spaced.exchange("t1.order_events").alternate == "t1.order_events.unrouted"
    queue = spaced.queue("t1.inventory_order_consumer")
    assert {b.exchange for b in queue.bindings} == {"t1.order_events"}
    assert queue.arguments()["x-dead-letter-routing-key"] == (
        "t1.inventory_order_consumer.dead-letter"
    )
    assert TOPOLOGY.with_prefix("") is TOPOLOGY
