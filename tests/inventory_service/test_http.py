"""The seed-002 HTTP API: bins, bin items, transactions, checks; each change publishes."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from messaging.settings import RuntimeSettings
from tests.inventory_service.conftest import stock_bin, stock_of
from tests.support import OTHER_ORG_KEY, Recorder, auth, unique


async def test_bins_are_created_read_updated_and_deleted_with_their_events(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, namespaced: RuntimeSettings
) -> None:
    name = unique("bin-")
    body = {
        "name": name,
        "description": "New Bin",
        "status": 1,
        "channel": "Mobile",
        "type": "Primary",
        "leafBin": False,
        "properties": [{"name": "Brand", "value": "Adidas"}],
    }
    async with Recorder(namespaced, "ecomm", "inventory.bin.*") as events:
        created = await client.post("/bins", json=body, headers=auth())
        assert created.status_code == 201, created.text
        assert created.json()["properties"] == [{"name": "Brand", "value": "Adidas"}]
        assert (await client.post("/bins", json=body, headers=auth())).status_code == 409
        assert (await client.get(f"/bins/{name}", headers=auth(OTHER_ORG_KEY))).status_code == 404
        updated = await client.put(
            f"/bins/{name}", json={**body, "description": "Renamed"}, headers=auth()
        )
        assert updated.json()["description"] == "Renamed"
        listed = await client.get("/bins", headers=auth())
        assert name in [b["name"] for b in listed.json()]
        deleted = await client.delete(f"/bins/{name}", headers=auth())
        assert deleted.json()["responseCode"] == "INV_BIN_003"
        assert (await client.get(f"/bins/{name}", headers=auth())).status_code == 404
        gone = await events.wait_for("inventory.bin.deleted", lambda b: b["bin"]["binName"] == name)
    assert gone["eventName"] == "BIN_DELETED"
    first = events.bodies("inventory.bin.created")[-1]
    assert first == {
        "eventName": "BIN_CREATED",
        "bin": {
            "binName": name,
            "description": "New Bin",
            "status": 1,
            "channel": "Mobile",
            "type": "Primary",
            "leafBin": False,
        },
    }
    assert events.bodies("inventory.bin.updated")[-1]["bin"]["description"] == "Renamed"


async def test_a_bin_with_stock_cannot_be_deleted(
    client: AsyncTestClient[Any], conn: asyncpg.Connection
) -> None:
    name = await stock_bin(client, {unique("sku-"): 1})
    response = await client.delete(f"/bins/{name}", headers=auth())
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"


async def test_bin_items_show_atp_and_display_status_and_patch_through_the_ledger(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, namespaced: RuntimeSettings
) -> None:
    sku = unique("SKUID_")
    name = await stock_bin(client, {})
    body = {
        "skuId": sku,
        "atpQty": 0,
        "preOrderedQty": 0,
        "backOrderedQty": 20,
        "lowStockThreshold": 5,
        "outOfStockThreshold": 3,
    }
    async with Recorder(namespaced, "ecomm", "inventory.#") as events:
        created = await client.post(f"/bins/{name}/items", json=body, headers=auth())
        assert created.status_code == 201, created.text
        assert created.json()["displayStatus"] == "BACKORDER"
        patched = await client.patch(
            f"/bins/{name}/items/{sku}", json={"atpQty": 10, "lowStockThreshold": 6}, headers=auth()
        )
        assert patched.status_code == 200, patched.text
        assert (patched.json()["atpQty"], patched.json()["displayStatus"]) == (10, "IN STOCK")
        low = await client.patch(f"/bins/{name}/items/{sku}", json={"atpQty": 4}, headers=auth())
        assert low.json()["displayStatus"] == "LOW STOCK"
        alert = await events.wait_for("inventory.stock.low", lambda b: b["subject"] == sku)
        update = await events.wait_for(
            "inventory.binitem.updated", lambda b: b["binItem"]["atpQty"] == 4
        )
    assert alert["data"]["currentQuantity"] == 4
    assert alert["data"]["minStock"] == 6
    assert update["eventName"] == "BINITEM_UPDATED"
    assert update["binItem"]["skuId"] == sku
    assert events.bodies("inventory.binitem.created")[-1]["binItem"]["displayStatus"] == "BACKORDER"
    got = await client.get(f"/bins/{name}/items/{sku}", headers=auth())
    assert got.json()["atpQty"] == 4
    kinds = await conn.fetch(
        "SELECT m.kind, m.on_hand_delta FROM stock_movements m JOIN bin_items bi"
        " ON bi.id = m.bin_item_id WHERE bi.sku_id = $1 ORDER BY m.id",
        sku,
    )
    assert [(k["kind"], k["on_hand_delta"]) for k in kinds] == [
        ("adjust", 0),
        ("adjust", 10),
        ("adjust", -6),
    ]


async def test_transactions_add_remove_transfer_reconcile(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, namespaced: RuntimeSettings
) -> None:
    sku = unique("sku-")
    source = await stock_bin(client, {sku: 0})
    target = await stock_bin(client, {sku: 0})

    async def transact(**body: Any) -> Any:
        response = await client.post("/transactions", json={"skuId": sku, **body}, headers=auth())
        return response

    async with Recorder(namespaced, "ecomm", "inventory.transaction.*") as events:
        added = await transact(binName=source, type=1, atpQty=100, notes="Add Transaction")
        assert added.status_code == 201, added.text
        assert (await transact(binName=source, type=2, atpQty=30)).status_code == 201
        too_much = await transact(binName=source, type=2, atpQty=71)
        assert too_much.status_code == 409
        moved = await transact(fromBinName=source, toBinName=target, type=3, atpQty=20)
        assert moved.status_code == 201, moved.text
        counted = await transact(binName=target, type=4, atpQty=18)
        assert counted.status_code == 201
        assert (await transact(binName=unique("nobin-"), type=1, atpQty=1)).status_code == 404
        invalid = await transact(binName=source, type=1, atpQty=0)
        assert invalid.status_code == 400
        assert invalid.json()["field"] == "atpQty"
        transaction_id = added.json()["id"]
        patched = await client.patch(
            f"/transactions/{transaction_id}",
            json={"status": 0, "notes": "Status Changed"},
            headers=auth(),
        )
        assert patched.json()["status"] == 0
        await events.wait_for(
            "inventory.transaction.updated",
            lambda b: b["transaction"]["transactionId"] == transaction_id,
        )
        created = await events.wait_for(
            "inventory.transaction.created",
            lambda b: b["transaction"]["transactionType"] == 4 and b["transaction"]["skuId"] == sku,
        )
    assert created["eventName"] == "TRANSACTION_CREATED"
    level = {b["binName"]: b["atpQty"] for b in (await stock_of(client, sku))["bins"]}
    assert level == {source: 50, target: 18}
    assert (
        len(
            [
                b
                for b in events.bodies("inventory.transaction.created")
                if b["transaction"]["skuId"] == sku
            ]
        )
        == 4
    )


async def test_inventory_check_answers_each_line(
    client: AsyncTestClient[Any], conn: asyncpg.Connection
) -> None:
    sku = unique("sku-")
    name = await stock_bin(client, {sku: 5})
    lines = [
        {"binName": name, "skuId": sku, "atpQty": 5},
        {"skuId": sku, "atpQty": 6},
        {"binName": name, "skuId": "SKU_missing", "atpQty": 1},
        {"binName": unique("nobin-"), "skuId": sku, "atpQty": 1},
    ]
    response = await client.post("/inventory/check", json={"binItems": lines}, headers=auth())
    assert response.status_code == 200, response.text
    answers = response.json()["binItems"]
    assert [a["available"] for a in answers] == [True, False, False, False]
    assert [a.get("response", {}).get("responseCode") for a in answers] == [
        None,
        "INV_BTM_002",
        "INV_BTM_005",
        "INV_BTM_003",
    ]


async def test_requests_are_validated_and_authenticated(
    client: AsyncTestClient[Any], conn: asyncpg.Connection
) -> None:
    assert (await client.get("/stock/x")).status_code == 401
    assert (await client.get("/bins", headers=auth("wrong"))).status_code == 401
    name = await stock_bin(client, {})
    negative = await client.post(
        f"/bins/{name}/items", json={"skuId": "s", "atpQty": -1}, headers=auth()
    )
    assert negative.status_code == 400
    assert negative.json()["field"] == "atpQty"
    unknown = await client.post(
        "/transactions", json={"skuId": "s", "binName": name, "type": 9}, headers=auth()
    )
    assert unknown.status_code == 400
    assert unknown.json()["field"] == "type"
    assert (await client.get(f"/stock/{unique('nosku-')}", headers=auth())).status_code == 404
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/schema/openapi.json")).status_code == 200
