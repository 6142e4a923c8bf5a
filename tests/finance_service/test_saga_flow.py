"""The saga over the live broker: every transition of SPEC §6, with the commands it sends."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg

from contracts.bookworm import (
    BasketDeletedCompleteIntegrationEvent,
    BasketDeletedFailedIntegrationEvent,
    OrderStatusChangedToCancelIntegrationEvent,
    OrderStatusChangedToCompleteIntegrationEvent,
    new_bookworm,
)
from tests.finance_service.conftest import (
    Client,
    Commands,
    OrderService,
    checkout_event,
    in_state,
    saga_of,
    wait_saga,
)
from tests.support import eventually


async def dead_letters(database: asyncpg.Connection, order_id: uuid.UUID) -> int:
    count: int = await database.fetchval(
        "SELECT count(*) FROM dead_letters WHERE correlation_id = $1", str(order_id)
    )
    return count


async def test_checkout_places_the_order_and_schedules_a_timeout(
    client: Client, orders: OrderService, commands: Commands, database: asyncpg.Connection
) -> None:
    checkout = await orders.checkout()

    saga = await wait_saga(client, checkout.order_id, in_state("Placed"))
    [placed] = await commands.wait("PlaceOrderCommand", checkout.order_id)

    assert saga["attempts"] == 1
    [transition] = saga["transitions"]
    assert transition["from_state"] is None
    assert transition["to_state"] == "Placed"
    assert transition["message_id"] == str(checkout.id)
    assert placed == {
        "id": placed["id"],
        "creationDate": placed["creationDate"],
        "basketId": str(checkout.basket_id),
        "fullName": "Ada Lovelace",
        "email": "ada@example.com",
        "orderId": str(checkout.order_id),
        "totalMoney": 42.5,
    }
    timeout_at = await database.fetchval(
        "SELECT timeout_at - now() FROM sagas WHERE order_id = $1", checkout.order_id
    )
    assert 3500 < timeout_at.total_seconds() <= 3600


async def test_a_second_checkout_of_the_same_order_is_ignored(
    client: Client, orders: OrderService, commands: Commands, database: asyncpg.Connection
) -> None:
    first = await orders.checkout()
    await wait_saga(client, first.order_id, in_state("Placed"))
    second = await orders.checkout(first.order_id, total_money=Decimal("99"))

    # The second message is handled (acknowledged, recorded in the inbox) and changes nothing.
    async def handled() -> bool:
        found = await database.fetchval(
            "SELECT true FROM inbox WHERE message_id = $1", str(second.id)
        )
        return found is True

    await eventually(handled, bool)
    saga = await saga_of(client, first.order_id)
    assert [t["message_id"] for t in saga["transitions"]] == [str(first.id)]
    assert commands.all_of(first.order_id) == {"PlaceOrderCommand": 1}
    assert await dead_letters(database, first.order_id) == 0


async def test_basket_deleted_completes_the_basket_and_cancels_the_timeout(
    client: Client, orders: OrderService, commands: Commands, database: asyncpg.Connection
) -> None:
    checkout = await orders.checkout()
    await wait_saga(client, checkout.order_id, in_state("Placed"))
    deleted = new_bookworm(
        BasketDeletedCompleteIntegrationEvent,
        order_id=checkout.order_id,
        basket_id=checkout.basket_id,
        total_money=checkout.total_money,
    )
    await orders.publish(deleted)

    saga = await wait_saga(client, checkout.order_id, in_state("Placed", transitions=2))
    [command] = await commands.wait("DeleteBasketCompleteCommand", checkout.order_id)

    assert saga["transitions"][1]["from_state"] == "Placed"
    assert saga["transitions"][1]["message_id"] == str(deleted.id)
    assert set(command) == {"id", "creationDate", "orderId", "totalMoney"}
    assert command["totalMoney"] == 42.5
    timeout_at = await database.fetchval(
        "SELECT timeout_at FROM sagas WHERE order_id = $1", checkout.order_id
    )
    assert timeout_at is None


async def test_basket_delete_failed_fails_the_saga(
    client: Client, orders: OrderService, commands: Commands
) -> None:
    checkout = await orders.checkout()
    await wait_saga(client, checkout.order_id, in_state("Placed"))
    failed = new_bookworm(
        BasketDeletedFailedIntegrationEvent,
        order_id=checkout.order_id,
        basket_id=checkout.basket_id,
        email=checkout.email,
        total_money=checkout.total_money,
    )
    await orders.publish(failed)

    saga = await wait_saga(client, checkout.order_id, in_state("Failed"))
    [command] = await commands.wait("DeleteBasketFailedCommand", checkout.order_id)

    assert saga["transitions"][-1] == {**saga["transitions"][-1], "from_state": "Placed"}
    assert saga["transitions"][-1]["message_id"] == str(failed.id)
    assert command["basketId"] == str(checkout.basket_id)
    assert command["email"] == "ada@example.com"


async def test_order_completed_sends_complete_order(
    client: Client, orders: OrderService, commands: Commands
) -> None:
    checkout = await orders.checkout()
    await wait_saga(client, checkout.order_id, in_state("Placed"))
    completed = await orders.status(checkout, OrderStatusChangedToCompleteIntegrationEvent)

    saga = await wait_saga(client, checkout.order_id, in_state("Completed"))
    [command] = await commands.wait("CompleteOrderCommand", checkout.order_id)

    assert saga["transitions"][-1]["message_id"] == str(completed.id)
    assert command["fullName"] == "Ada Lovelace"
    assert command["email"] == "ada@example.com"
    assert command["totalMoney"] == 42.5


async def test_order_cancelled_sends_cancel_order(
    client: Client, orders: OrderService, commands: Commands
) -> None:
    checkout = await orders.checkout()
    await wait_saga(client, checkout.order_id, in_state("Placed"))
    cancelled = await orders.status(checkout, OrderStatusChangedToCancelIntegrationEvent)

    saga = await wait_saga(client, checkout.order_id, in_state("Cancelled"))
    [command] = await commands.wait("CancelOrderCommand", checkout.order_id)

    assert saga["transitions"][-1]["message_id"] == str(cancelled.id)
    assert set(command) == {"id", "creationDate", "orderId", "fullName", "email", "totalMoney"}


async def test_without_email_or_name_the_order_finishes_but_nobody_is_told(
    client: Client, orders: OrderService, commands: Commands
) -> None:
    anonymous = await orders.checkout(full_name=None, email=None)
    await wait_saga(client, anonymous.order_id, in_state("Placed"))
    await orders.status(anonymous, OrderStatusChangedToCompleteIntegrationEvent)
    nameless = await orders.checkout(full_name=None)
    await wait_saga(client, nameless.order_id, in_state("Placed"))
    await orders.status(nameless, OrderStatusChangedToCancelIntegrationEvent)

    await wait_saga(client, anonymous.order_id, in_state("Completed"))
    await wait_saga(client, nameless.order_id, in_state("Cancelled"))
    # Both PlaceOrderCommands arrived, so the (absent) Complete/Cancel ones had their chance.
    await commands.wait("PlaceOrderCommand", nameless.order_id)
    assert commands.all_of(anonymous.order_id) == {"PlaceOrderCommand": 1}
    assert commands.all_of(nameless.order_id) == {"PlaceOrderCommand": 1}


async def test_messages_for_finished_or_unknown_sagas_are_acknowledged_not_dead_lettered(
    client: Client, orders: OrderService, commands: Commands, database: asyncpg.Connection
) -> None:
    checkout = await orders.checkout()
    await wait_saga(client, checkout.order_id, in_state("Placed"))
    await orders.status(checkout, OrderStatusChangedToCompleteIntegrationEvent)
    await wait_saga(client, checkout.order_id, in_state("Completed"))
    late = [
        await orders.status(checkout, OrderStatusChangedToCancelIntegrationEvent),
        new_bookworm(
            BasketDeletedFailedIntegrationEvent,
            order_id=checkout.order_id,
            basket_id=checkout.basket_id,
            email=None,
            total_money=checkout.total_money,
        ),
    ]
    await orders.publish(late[1])
    never_checked_out = checkout_event()
    unknown = await orders.status(never_checked_out, OrderStatusChangedToCompleteIntegrationEvent)

    async def handled() -> int:
        count: int = await database.fetchval(
            "SELECT count(*) FROM inbox WHERE message_id = ANY($1::text[])",
            [str(m.id) for m in [*late, unknown]],
        )
        return count

    await eventually(handled, lambda n: n == 3)
    saga = await saga_of(client, checkout.order_id)
    assert [t["to_state"] for t in saga["transitions"]] == ["Placed", "Completed"]
    assert await saga_of(client, never_checked_out.order_id) == {}
    assert await dead_letters(database, checkout.order_id) == 0
    assert await dead_letters(database, never_checked_out.order_id) == 0
    await commands.wait("CompleteOrderCommand", checkout.order_id)
    assert commands.all_of(checkout.order_id) == {"PlaceOrderCommand": 1, "CompleteOrderCommand": 1}


async def test_a_message_without_a_type_is_named_by_its_exchange(
    client: Client, orders: OrderService, commands: Commands
) -> None:
    event = checkout_event(full_name="Grace Hopper", total_money=Decimal("7"))
    await orders.publish(event, with_type=False)

    await wait_saga(client, event.order_id, in_state("Placed"))
    await commands.wait("PlaceOrderCommand", event.order_id)
