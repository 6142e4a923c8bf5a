"""Publishing: confirms, `mandatory`, and the metadata of SPEC §2.4 on every message."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from functools import partial
from operator import lt

import pytest
from aio_pika.abc import AbstractChannel

from contracts.topology import Binding, Exchange, ExchangeType, Queue, Topology
from messaging import topology
from messaging.broker import Broker
from messaging.errors import BrokerUnavailable, PublishRejected
from messaging.message import OutgoingMessage
from tests.messaging.conftest import ScratchExchange
from tests.support import (
    BLOCKING_WATERMARK,
    Infra,
    eventually,
    memory_watermark,
    rabbitmqctl,
    unique,
)


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


async def _connections(broker: Broker) -> int:
    return broker.connections_made


@pytest.mark.broker_restart
async def test_publishes_stuck_behind_a_resource_alarm_drop_the_connection_and_its_queue(
    infra: Infra, channel: AbstractChannel, exchange: ScratchExchange
) -> None:
    """RabbitMQ blocks publishing connections during a memory alarm. A batch gets no confirms;
    its frames, already queued on the connection, would all go out when the alarm clears, on
    top of the copies the relay publishes again on every retry. The stuck connection is
    dropped instead, and with it what it had queued."""
    if not infra.local_broker:
        pytest.skip("needs rabbitmqctl for the broker the tests use")
    queue = await topology.declare_queue(channel, exchange.queue("stuck.#"))
    broker = Broker(
        infra.amqp_url, app_id="tests", topology=None, publish_timeout=1.0, reconnect_min=0.1
    )
    broker.start()
    assert await broker.wait_connected(15)
    watermark = await memory_watermark()
    try:
        await broker.publish(message(exchange.name, "stuck.before"))
        await rabbitmqctl("set_vm_memory_high_watermark", BLOCKING_WATERMARK)  # alarm at once
        try:
            for _ in range(2):  # the relay's retries
                made = broker.connections_made
                batch = [message(exchange.name, "stuck.during") for _ in range(200)]
                outcomes = await broker.publish_many(batch)
                assert all(isinstance(o, BrokerUnavailable) for o in outcomes), outcomes[:3]
                assert "no confirm within 1 s" in str(outcomes[-1])
                await eventually(partial(_connections, broker), partial(lt, made), timeout=30)
        finally:
            await rabbitmqctl("set_vm_memory_high_watermark", watermark)
        await broker.publish(message(exchange.name, "stuck.after"))

        await asyncio.sleep(1)  # anything still queued somewhere would arrive by now
        received = []
        while (got := await queue.get(timeout=5, fail=False)) is not None:
            await got.ack()
            received.append(got.routing_key)
        # `before` and `after`, and of the batches only what the broker had read off each
        # connection before it blocked it (some tens here) — not every frame of every retry.
        assert received[0] == "stuck.before", received
        assert received[-1] == "stuck.after", received
        assert received.count("stuck.during") < 200, len(received)
    finally:
        await broker.close()
