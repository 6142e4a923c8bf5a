"""Publishing: confirms, `mandatory`, and the metadata of SPEC §2.4 on every message."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from aio_pika.abc import AbstractChannel

from contracts.topology import Binding, Exchange, ExchangeType, Queue, Topology
from messaging import topology
from messaging.broker import Broker
from messaging.errors import PublishRejected
from messaging.message import OutgoingMessage
from tests.messaging.conftest import ScratchExchange
from tests.support import unique


def message(exchange: str, routing_key: str, **overrides: object) -> OutgoingMessage:
    fields: dict[str, object] = {
        "exchange": exchange,
        "routing_key": routing_key,
        "body": b'{"n": 1}',
        "type": routing_key,
        "app_id": "tests",
    }
    fields.update(overrides)
    return OutgoingMessage(**fields)  # type: ignore[arg-type]


async def test_published_message_carries_the_spec_metadata(
    broker: Broker, channel: AbstractChannel, exchange: ScratchExchange
) -> None:
    queue = await topology.declare_queue(channel, exchange.queue("order.created"))
    order_id = str(uuid.uuid4())
    sent = message(
        exchange.name,
        "order.created",
        correlation_id=order_id,
        subject=order_id,
        timestamp=datetime(2025, 11, 23, 15, 0, tzinfo=UTC),
    )

    await broker.publish(sent)

    received = await queue.get(timeout=5)
    await received.ack()
    assert received.body == b'{"n": 1}'
    assert received.message_id == sent.message_id
    assert received.type == "order.created"
    assert received.content_type == "application/json"
    assert received.delivery_mode == 2
    assert received.app_id == "tests"
    assert received.correlation_id == order_id
    assert received.timestamp == datetime(2025, 11, 23, 15, 0, tzinfo=UTC)
    cloud_events = {k: v for k, v in received.headers.items() if k.startswith("cloudEvents:")}
    assert cloud_events == {
        "cloudEvents:specversion": "1.0",
        "cloudEvents:id": sent.message_id,
        "cloudEvents:type": "order.created",
        "cloudEvents:source": "/tests",
        "cloudEvents:time": "2025-11-23T15:00:00Z",
        "cloudEvents:subject": order_id,
    }


async def test_unroutable_message_is_an_error(broker: Broker, exchange: ScratchExchange) -> None:
    with pytest.raises(PublishRejected, match="unroutable"):
        await broker.publish(message(exchange.name, "nobody.listens"))


async def test_missing_exchange_is_an_error_and_publishing_goes_on(
    broker: Broker, channel: AbstractChannel, exchange: ScratchExchange
) -> None:
    queue = await topology.declare_queue(channel, exchange.queue("ok"))

    with pytest.raises(PublishRejected, match="NOT_FOUND"):
        await broker.publish(message(unique("missing."), "ok"))
    await broker.publish(message(exchange.name, "ok"))

    assert (await queue.get(timeout=5)).routing_key == "ok"


async def test_alternate_exchange_keeps_what_no_queue_is_bound_for(
    broker: Broker, channel: AbstractChannel
) -> None:
    name = unique("test.ae.")
    keep = Queue(
        f"{name}.unrouted",
        None,
        (Binding(f"{name}.unrouted"),),
        delivery_limit=None,
        dead_letter=False,
        max_length=10,
    )
    await topology.declare(
        channel,
        Topology(
            exchanges=(
                Exchange(name, ExchangeType.TOPIC, alternate=f"{name}.unrouted"),
                Exchange(f"{name}.unrouted", ExchangeType.FANOUT),
            ),
            queues=(keep,),
        ),
    )
    try:
        await broker.publish(message(name, "cart.created"))  # no binding, yet no error

        kept = await (await channel.get_queue(keep.name)).get(timeout=5)
        assert kept.routing_key == "cart.created"
    finally:
        await channel.queue_delete(keep.name)
        await channel.exchange_delete(name)
        await channel.exchange_delete(f"{name}.unrouted")
