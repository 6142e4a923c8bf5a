"""Bulk transactions: the `inventory.bulktransactions` queue (request/reply) and HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from litestar.testing import AsyncTestClient

from contracts.topology import BULK_TRANSACTIONS_QUEUE
from messaging.settings import RuntimeSettings
from tests.inventory_service.conftest import stock_bin, stock_of
from tests.support import ORG, auth, eventually, unique


def request(all_or_none: bool, *lines: tuple[str, str, int, int]) -> dict[str, Any]:
    return {
        "allOrNone": all_or_none,
        "binItems": [
            {"binName": b, "skuId": s, "transaction": {"type": t, "atpQty": q, "notes": "bulk"}}
            for b, s, t, q in lines
        ],
    }


async def ask(
    channel: AbstractChannel, namespaced: RuntimeSettings, body: dict[str, Any]
) -> tuple[AbstractIncomingMessage, str]:
    """Send a bulk request with a reply queue of our own; return the reply."""
    replies = await channel.declare_queue(exclusive=True, auto_delete=True)
    received: list[AbstractIncomingMessage] = []

    async def keep(message: AbstractIncomingMessage) -> None:
        received.append(message)

    await replies.consume(keep, no_ack=True)
    correlation_id = str(uuid.uuid4())
    await channel.default_exchange.publish(
        aio_pika.Message(
            json.dumps(body).encode(),
            message_id=str(uuid.uuid4()),
            correlation_id=correlation_id,
            reply_to=replies.name,
            headers={"organization_id": ORG},
            content_type="application/json",
        ),
        routing_key=namespaced.topology_prefix + BULK_TRANSACTIONS_QUEUE,
    )

    async def got() -> list[AbstractIncomingMessage]:
        return received

    await eventually(got, bool)
    return received[0], correlation_id


async def test_bulk_without_all_or_none_applies_what_it_can_and_answers_each_item(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    channel: AbstractChannel,
    namespaced: RuntimeSettings,
) -> None:
    sku = unique("sku-")
    name = await stock_bin(client, {sku: 5})
    body = request(False, (name, sku, 1, 10), (name, "Active_Sku1", 1, 500), (name, sku, 2, 99))
    reply, correlation_id = await ask(channel, namespaced, body)
    assert reply.correlation_id == correlation_id
    answer = json.loads(reply.body)
    codes = [item["response"]["responseCode"] for item in answer["binItems"]]
    assert codes == ["INV_BTM_001", "INV_BTM_005", "INV_BTM_002"]
    assert answer["binItems"][1]["response"]["responseMessage"] == "BinItem not found"
    assert answer["binItems"][0]["transaction"]["id"] > 0
    assert (await stock_of(client, sku))["atpQty"] == 15


async def test_bulk_with_all_or_none_rolls_everything_back_when_one_item_fails(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    channel: AbstractChannel,
    namespaced: RuntimeSettings,
) -> None:
    sku = unique("sku-")
    name = await stock_bin(client, {sku: 5})
    failing = request(True, (name, sku, 1, 10), (name, sku, 2, 99))
    first, second = await asyncio.gather(
        ask(channel, namespaced, failing),
        ask(channel, namespaced, request(True, (name, sku, 1, 1), (name, sku, 2, 2))),
    )
    for reply, correlation_id in (first, second):
        assert reply.correlation_id == correlation_id
    codes = [i["response"]["responseCode"] for i in json.loads(first[0].body)["binItems"]]
    assert codes == ["INV_BTM_006", "INV_BTM_002"]
    assert "id" not in json.loads(first[0].body)["binItems"][0]["transaction"]
    codes = [i["response"]["responseCode"] for i in json.loads(second[0].body)["binItems"]]
    assert codes == ["INV_BTM_001", "INV_BTM_001"]
    assert (await stock_of(client, sku))["atpQty"] == 4


async def test_bulk_over_http_answers_the_same_way(
    client: AsyncTestClient[Any], conn: asyncpg.Connection
) -> None:
    sku = unique("sku-")
    source = await stock_bin(client, {sku: 5})
    target = await stock_bin(client, {sku: 0})
    body = request(True, (source, sku, 2, 1))
    body["binItems"].append(
        {
            "binName": source,
            "skuId": sku,
            "transaction": {"type": 3, "atpQty": 2, "fromBinName": source, "toBinName": target},
        }
    )
    response = await client.post("/transactions/bulk", json=body, headers=auth())
    assert response.status_code == 200, response.text
    codes = [i["response"]["responseCode"] for i in response.json()["binItems"]]
    assert codes == ["INV_BTM_001", "INV_BTM_001"]
    bins = {b["binName"]: b["atpQty"] for b in (await stock_of(client, sku))["bins"]}
    assert bins == {source: 2, target: 2}
    bad_type = request(False, (source, sku, 7, 1))
    answer = await client.post("/transactions/bulk", json=bad_type, headers=auth())
    assert answer.json()["binItems"][0]["response"]["responseCode"] == "INV_BTM_004"
