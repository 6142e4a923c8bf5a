-- The analytics read model: counters per organization and UTC day.
CREATE TABLE analytics_daily (
    organization_id   text    NOT NULL,
    day               date    NOT NULL,
    orders_created    int     NOT NULL DEFAULT 0,
    orders_confirmed  int     NOT NULL DEFAULT 0,
    confirmed_revenue numeric NOT NULL DEFAULT 0,
    carts_abandoned   int     NOT NULL DEFAULT 0,
    carts_converted   int     NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, day)
);

-- One row per order: its total (from order.created) and whether it was counted as created,
-- confirmed and in the confirmed revenue, so the revenue settles whichever event comes first.
CREATE TABLE analytics_orders (
    order_id        text        PRIMARY KEY,
    organization_id text        NOT NULL,
    total_amount    numeric,
    created_day     date,
    confirmed_day   date,
    revenue_counted boolean     NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
