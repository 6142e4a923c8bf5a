"""The analytics read model (SPEC §9): per organization and day — orders created, orders
confirmed, confirmed revenue, carts abandoned, carts converted and the conversion rate — from
`analytics_order_consumer`, served at `GET /analytics/summary?from=&to=`.

Why it lives here, as its own subpackage of notification_service:

- SPEC §3 names notification_service the consumer that owns `analytics_order_consumer`, and
  SPEC §1 says the read model may live beside notification. A fifth service would have meant a
  fifth process, port and schema that the SPEC's table of four services does not have.
- It shares only the *process* with the mail code: the runtime (pool, broker, inbox), the HTTP
  server and the `notification` schema. It has its own tables (`analytics_daily`,
  `analytics_orders`), its own migration component (`analytics`, in `analytics/migrations/`),
  its own domain rules, handler and controller, and imports nothing from the mail code (nor
  the mail code from it). Moving it into a service of its own later is a new `bootstrap`
  calling `analytics.wiring.install`; no code or SQL changes.
- It is a read model, not a mailer: nothing here writes to the outbox or sends anything.

Counting is exact under redelivery: the runtime's inbox records each message id in the same
transaction as the counter update (`INSERT ... ON CONFLICT (organization_id, day) DO UPDATE SET
x = x + n`), and a per-order row (`analytics_orders`) makes an order count once as created and
once as confirmed even if an event about it is published twice under different ids.
Confirmed revenue needs the order total, which `order.confirmed` does not carry: it is taken
from `order.created` (kept in `analytics_orders`) and added to the day of confirmation when both
are known, whichever of the two arrives first. The day of an event is the UTC date of its
envelope `timestamp`. Amounts are summed as given; mixed currencies in one organization are not
converted.
"""
