"""Declaring the topology of `contracts.topology` on a channel (idempotent)."""

from __future__ import annotations

from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue

from contracts.topology import Exchange, Queue, Topology


def _table(arguments: dict[str, int | str]) -> dict[str, Any]:
    return dict(arguments)


async def declare_exchange(channel: AbstractChannel, exchange: Exchange) -> None:
    await channel.declare_exchange(
        exchange.name,
        aio_pika.ExchangeType(exchange.type.value),
        durable=True,
        arguments=dict(exchange.arguments()),
    )


async def declare_queue(channel: AbstractChannel, queue: Queue) -> AbstractQueue:
    """The queue, its bindings and, for consumer queues, its dead-letter queue."""
    if queue.dead_letter:
        await channel.declare_queue(
            queue.dead_letter_queue,
            durable=True,
            arguments=_table(queue.dead_letter_spec().arguments()),
        )
    declared = await channel.declare_queue(
        queue.name, durable=True, arguments=_table(queue.arguments())
    )
    for binding in queue.bindings:
        await declared.bind(binding.exchange, routing_key=binding.routing_key)
    return declared


async def declare(channel: AbstractChannel, topology: Topology) -> None:
    for exchange in topology.exchanges:
        await declare_exchange(channel, exchange)
    for queue in topology.queues:
        await declare_queue(channel, queue)
