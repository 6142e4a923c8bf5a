"""Cart abandonment (SPEC §4): carts idle longer than CART_ABANDON_AFTER_SECONDS are announced
once with `cart.abandoned`. Replicas may sweep at the same time: each claims its carts with
`FOR UPDATE SKIP LOCKED` and the status change in the same transaction as the event."""

from __future__ import annotations

from collections.abc import Callable

from contracts.order_events import CartAbandonedData
from messaging import db
from messaging.logs import get_logger
from order_service.adapters import repository as repo
from order_service.adapters.messages import order_event
from order_service.commands import Context
from order_service.domain import rules

log = get_logger(__name__)


class CartAbandonmentSweeper:
    def __init__(self, pool: Callable[[], db.Pool], ctx: Context) -> None:
        #: The pool exists only once the runtime started, hence a callable.
        self.pool = pool
        self.ctx = ctx

    async def __call__(self) -> int:
        """One pass; returns how many carts were announced."""
        settings = self.ctx.settings
        total = 0
        while True:
            async with db.acquire(self.pool()) as conn, conn.transaction():
                carts = await repo.claim_idle_carts(
                    conn, settings.cart_abandon_after_seconds, settings.cart_sweep_batch
                )
                lines = await repo.items_of_carts(conn, [cart["id"] for cart in carts])
                messages = [
                    order_event(
                        "cart.abandoned",
                        cart["organization_id"],
                        CartAbandonedData(
                            cart_id=str(cart["id"]),
                            customer_id=cart["customer_id"],
                            items_count=rules.units(lines[cart["id"]]),
                            total_value=rules.total(lines[cart["id"]]),
                            abandoned_at=cart["abandoned_at"],
                            last_activity_at=cart["last_activity_at"],
                        ),
                        at=cart["abandoned_at"],
                    )
                    for cart in carts
                ]
                await self.ctx.publish(conn, *messages)
            total += len(carts)
            if len(carts) < settings.cart_sweep_batch:
                break
        if total:
            log.info("carts abandoned", count=total)
        return total
