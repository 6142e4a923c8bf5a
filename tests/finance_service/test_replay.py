"""Replay of failed checkouts over HTTP and the CLI, and the admin API that shows sagas."""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid

import pytest

from contracts.bookworm import (
    BasketDeletedFailedIntegrationEvent,
    UserCheckedOutIntegrationEvent,
    new_bookworm,
)
from messaging import cli
from tests.finance_service.conftest import (
    ADMIN,
    NO_TIMEOUT,
    Client,
    Commands,
    OrderService,
    in_state,
    saga_of,
    wait_saga,
)
from tests.support import auth


async def failed_checkout(client: Client, orders: OrderService) -> UserCheckedOutIntegrationEvent:
    """A checkout whose basket could not be deleted: the saga is Failed."""
    checkout = await orders.checkout()
    await wait_saga(client, checkout.order_id, in_state("Placed"))
    await orders.publish(
        new_bookworm(
            BasketDeletedFailedIntegrationEvent,
            order_id=checkout.order_id,
            basket_id=checkout.basket_id,
            email=checkout.email,
            total_money=checkout.total_money,
        )
    )
    await wait_saga(client, checkout.order_id, in_state("Failed"))
    return checkout


async def test_replay_returns_a_failed_saga_to_placed_and_resends_place_order(
    client: Client, orders: OrderService, commands: Commands
) -> None:
    checkout = await failed_checkout(client, orders)

    response = await client.post(f"/sagas/{checkout.order_id}/replay", headers=ADMIN)

    assert response.status_code == 200, response.text
    saga = response.json()
    assert (saga["order_id"], saga["state"], saga["attempts"]) == (
        str(checkout.order_id),
        "Placed",
        1,
    )
    replayed = saga["transitions"][-1]
    assert (replayed["from_state"], replayed["to_state"]) == ("Failed", "Placed")
    earlier = {t["message_id"] for t in saga["transitions"][:-1]}
    assert uuid.UUID(replayed["message_id"])
    assert replayed["message_id"] not in earlier
    assert await saga_of(client, checkout.order_id) == saga
    first, again = await commands.wait("PlaceOrderCommand", checkout.order_id, 2)
    assert again["id"] != first["id"]
    assert {k: v for k, v in again.items() if k not in {"id", "creationDate"}} == {
        k: v for k, v in first.items() if k not in {"id", "creationDate"}
    }


async def test_replay_of_a_saga_that_did_not_fail_is_refused(
    client: Client, orders: OrderService, commands: Commands
) -> None:
    checkout = await orders.checkout()
    await wait_saga(client, checkout.order_id, in_state("Placed"))

    refused = await client.post(f"/sagas/{checkout.order_id}/replay", headers=ADMIN)
    unknown = await client.post(f"/sagas/{uuid.uuid4()}/replay", headers=ADMIN)

    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == (
        f"saga {checkout.order_id} is Placed; only Failed sagas can be replayed"
    )
    assert unknown.status_code == 404
    saga = await saga_of(client, checkout.order_id)
    assert len(saga["transitions"]) == 1
    await commands.wait("PlaceOrderCommand", checkout.order_id)
    assert commands.all_of(checkout.order_id) == {"PlaceOrderCommand": 1}


async def test_replay_all_failed_and_list_by_state(
    client: Client, orders: OrderService, commands: Commands
) -> None:
    failed = [await failed_checkout(client, orders) for _ in range(3)]
    placed = await orders.checkout()
    await wait_saga(client, placed.order_id, in_state("Placed"))

    listed = await client.get("/sagas", params={"state": "Failed", "limit": 1000}, headers=ADMIN)
    assert listed.status_code == 200
    failed_ids = {s["order_id"] for s in listed.json()}
    assert {str(c.order_id) for c in failed} <= failed_ids
    assert str(placed.order_id) not in failed_ids
    assert all(s["state"] == "Failed" for s in listed.json())

    response = await client.post("/sagas/replay", json={"state": "Failed"}, headers=ADMIN)

    assert response.status_code == 200, response.text
    assert {str(c.order_id) for c in failed} <= set(response.json()["replayed"])
    assert str(placed.order_id) not in response.json()["replayed"]
    for checkout in failed:
        assert (await saga_of(client, checkout.order_id))["state"] == "Placed"
        await commands.wait("PlaceOrderCommand", checkout.order_id, 2)


async def test_saga_endpoints_need_the_admin_key_and_valid_input(client: Client) -> None:
    order_id = uuid.uuid4()
    for method, path in [
        ("GET", "/sagas"),
        ("GET", f"/sagas/{order_id}"),
        ("POST", f"/sagas/{order_id}/replay"),
        ("POST", "/sagas/replay"),
    ]:
        for headers in ({}, auth()):
            response = await client.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers)
    assert (await client.get(f"/sagas/{order_id}", headers=ADMIN)).status_code == 404
    bad_state = await client.get("/sagas", params={"state": "Lost"}, headers=ADMIN)
    assert (bad_state.status_code, bad_state.json()["field"]) == (400, "state")
    bad_body = await client.post("/sagas/replay", json={"state": "Placed"}, headers=ADMIN)
    assert (bad_body.status_code, bad_body.json()["field"]) == (400, "state")


# -- the CLI ------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(finance_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {**finance_env, **NO_TIMEOUT}.items():
        monkeypatch.setenv(key, value)


async def commerce(*argv: str) -> tuple[int, str, str]:
    """`commerce …` in a thread of its own (it runs its own event loop), output captured."""
    out, err = io.StringIO(), io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return cli.main(list(argv))

    code = await asyncio.to_thread(run)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.usefixtures("cli_env")
async def test_cli_lists_and_replays_one_failed_saga(
    client: Client, orders: OrderService, commands: Commands
) -> None:
    checkout = await failed_checkout(client, orders)

    code, out, _ = await commerce("saga", "list", "--state", "Failed", "--limit", "1000")
    assert code == 0
    assert f"{checkout.order_id}  Failed" in out

    code, out, err = await commerce("saga", "replay", str(checkout.order_id))
    assert (code, err) == (0, "")
    assert "1 saga(s) replayed, 0 refused" in out
    saga = await saga_of(client, checkout.order_id)
    assert (saga["state"], saga["attempts"]) == ("Placed", 1)
    assert saga["transitions"][-1]["from_state"] == "Failed"
    await commands.wait("PlaceOrderCommand", checkout.order_id, 2)

    code, _, err = await commerce("saga", "replay", str(checkout.order_id))
    assert code == 1
    assert f"saga {checkout.order_id} is Placed; only Failed sagas can be replayed" in err
    code, out, _ = await commerce("saga", "show", str(checkout.order_id))
    assert code == 0
    assert "Failed    → Placed" in out


@pytest.mark.usefixtures("cli_env")
async def test_cli_replays_all_failed_with_a_progress_bar(
    client: Client, orders: OrderService, commands: Commands
) -> None:
    failed = [await failed_checkout(client, orders) for _ in range(3)]

    code, out, err = await commerce("saga", "replay", "--all-failed")

    assert code == 0
    replayed = int(out.split(" saga(s) replayed")[0].split()[-1])
    assert replayed >= 3
    assert f"[{'#' * 30}] {replayed}/{replayed}" in err
    for checkout in failed:
        assert (await saga_of(client, checkout.order_id))["state"] == "Placed"
        await commands.wait("PlaceOrderCommand", checkout.order_id, 2)


def _sagas_metric(text: str, state: str) -> float:
    line = next(
        line for line in text.splitlines() if line.startswith(f'commerce_sagas{{state="{state}"}}')
    )
    return float(line.rsplit(" ", 1)[1])


async def test_metrics_count_sagas_by_state(client: Client, orders: OrderService) -> None:
    before = (await client.get("/metrics")).text
    await failed_checkout(client, orders)

    after = (await client.get("/metrics")).text

    assert _sagas_metric(after, "Failed") == _sagas_metric(before, "Failed") + 1
    for state in ("Placed", "Completed", "Cancelled"):
        assert f'commerce_sagas{{state="{state}"}}' in after
