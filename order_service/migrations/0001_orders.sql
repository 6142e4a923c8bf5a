-- order_service (SPEC §4, §10). search_path is the service schema: unqualified names.

-- Human numbers ORD/RMA/INV-YYYY-NNNN: one counter row per organization, kind and year, bumped
-- with INSERT ... ON CONFLICT DO UPDATE in the transaction that uses the number. The row lock
-- serialises concurrent requests and a rollback gives the number back: gap-free, no collisions.
CREATE TABLE number_counters (
    organization_id text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('ORD', 'RMA', 'INV')),
    year            int  NOT NULL,
    last            int  NOT NULL CHECK (last > 0),
    PRIMARY KEY (organization_id, kind, year)
);

CREATE TABLE carts (
    id               uuid PRIMARY KEY,
    organization_id  text NOT NULL,
    customer_id      text NOT NULL,
    session_id       text,
    status           text NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'checked_out', 'converted', 'abandoned')),
    order_id         uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    abandoned_at     timestamptz,
    converted_at     timestamptz
);
-- The abandonment sweeper scans only live carts, oldest activity first.
CREATE INDEX carts_idle ON carts (last_activity_at) WHERE status = 'active' AND abandoned_at IS NULL;

CREATE TABLE cart_items (
    cart_id    uuid NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    variant_id text NOT NULL,
    quantity   int  NOT NULL CHECK (quantity > 0),
    unit_price numeric(14, 2) NOT NULL CHECK (unit_price >= 0),
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cart_id, variant_id)
);

CREATE TABLE orders (
    id                      uuid PRIMARY KEY,
    organization_id         text NOT NULL,
    order_number            text NOT NULL,
    customer_id             text NOT NULL,
    cart_id                 uuid NOT NULL,
    email                   text NOT NULL,
    full_name               text NOT NULL,
    currency                text NOT NULL,
    local_id                text,
    preferred_warehouse_id  text,
    reservation_ttl_minutes int  NOT NULL CHECK (reservation_ttl_minutes > 0),
    status                  text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'confirmed', 'processing', 'packed',
                                              'shipped', 'delivered', 'cancelled')),
    total_amount            numeric(14, 2) NOT NULL CHECK (total_amount >= 0),
    paid_amount             numeric(14, 2) NOT NULL DEFAULT 0 CHECK (paid_amount >= 0),
    refunded_amount         numeric(14, 2) NOT NULL DEFAULT 0,
    payment_id              uuid,
    failed_payments         int  NOT NULL DEFAULT 0,
    reservation_id          text,
    reservation_status      text NOT NULL DEFAULT 'none'
                            CHECK (reservation_status IN ('none', 'reserved', 'committed',
                                                          'released', 'failed')),
    reserved_items          jsonb NOT NULL DEFAULT '[]',
    basket_status           text NOT NULL DEFAULT 'pending'
                            CHECK (basket_status IN ('pending', 'deleted', 'failed')),
    fulfillment_warehouse_id text,
    assigned_to             text,
    fulfillment_started_at  timestamptz,
    package_count           int,
    total_weight            numeric(12, 3),
    packed_by               text,
    packed_at               timestamptz,
    confirmed_at            timestamptz,
    shipped_at              timestamptz,
    delivered_at            timestamptz,
    cancelled_at            timestamptz,
    cancellation_reason     text,
    cancelled_by            text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, order_number),
    -- Refunds never exceed what was paid (SPEC §4), enforced by the database as well.
    CHECK (refunded_amount >= 0 AND refunded_amount <= paid_amount)
);
CREATE INDEX orders_page ON orders (organization_id, created_at DESC, id DESC);
CREATE INDEX orders_page_by_status ON orders (organization_id, status, created_at DESC, id DESC);

CREATE TABLE order_items (
    id              uuid PRIMARY KEY,
    order_id        uuid NOT NULL REFERENCES orders (id),
    line            int  NOT NULL,
    variant_id      text NOT NULL,
    quantity        int  NOT NULL CHECK (quantity > 0),
    unit_price      numeric(14, 2) NOT NULL CHECK (unit_price >= 0),
    warehouse_id    text,
    quantity_picked int  NOT NULL DEFAULT 0 CHECK (quantity_picked BETWEEN 0 AND quantity),
    UNIQUE (order_id, line)
);

CREATE TABLE payments (
    id                 uuid PRIMARY KEY,
    organization_id    text NOT NULL,
    order_id           uuid NOT NULL REFERENCES orders (id),
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
    amount             numeric(14, 2) NOT NULL CHECK (amount >= 0),
    currency           text NOT NULL,
    payment_method     text NOT NULL,
    card_last4         text,
    gateway_payment_id text,
    error_code         text,
    error_message      text,
    refunded_amount    numeric(14, 2) NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    paid_at            timestamptz,
    failed_at          timestamptz,
    CHECK (refunded_amount >= 0 AND refunded_amount <= amount)
);
-- Never two live payments for one order ("pay twice" is a conflict, also under concurrency).
CREATE UNIQUE INDEX payments_one_live ON payments (order_id)
    WHERE status IN ('pending', 'succeeded');

CREATE TABLE invoices (
    id              uuid PRIMARY KEY,
    organization_id text NOT NULL,
    order_id        uuid NOT NULL REFERENCES orders (id),
    payment_id      uuid NOT NULL REFERENCES payments (id),
    invoice_number  text NOT NULL,
    total_amount    numeric(14, 2) NOT NULL,
    currency        text NOT NULL,
    status          text NOT NULL DEFAULT 'issued' CHECK (status IN ('issued', 'sent')),
    recipient_email text,
    issued_at       timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (organization_id, invoice_number),
    UNIQUE (payment_id)
);
CREATE INDEX invoices_of_order ON invoices (order_id);

CREATE TABLE shipments (
    id                 uuid PRIMARY KEY,
    organization_id    text NOT NULL,
    order_id           uuid NOT NULL UNIQUE REFERENCES orders (id),
    status             text NOT NULL DEFAULT 'created'
                       CHECK (status IN ('created', 'label_created', 'dispatched', 'in_transit',
                                         'delivered')),
    carrier            text NOT NULL,
    service            text NOT NULL,
    shipping_cost      numeric(14, 2) NOT NULL,
    tracking_number    text,
    label_url          text,
    carrier_cost       numeric(14, 2),
    warehouse_id       text,
    current_location   text,
    status_description text,
    recipient          text,
    signature          text,
    delivery_photo_url text,
    signature_required boolean,
    estimated_delivery date,
    created_at         timestamptz NOT NULL DEFAULT now(),
    dispatched_at      timestamptz,
    delivered_at       timestamptz
);

CREATE TABLE returns (
    id                        uuid PRIMARY KEY,
    organization_id           text NOT NULL,
    order_id                  uuid NOT NULL REFERENCES orders (id),
    rma_number                text NOT NULL,
    status                    text NOT NULL DEFAULT 'requested'
                              CHECK (status IN ('requested', 'approved', 'received', 'refunded')),
    reason                    text NOT NULL,
    approved_by               text,
    refund_amount             numeric(14, 2),
    return_shipping_label_url text,
    warehouse_id              text,
    received_items            jsonb,
    refund_method             text,
    requested_at              timestamptz NOT NULL DEFAULT now(),
    approved_at               timestamptz,
    received_at               timestamptz,
    refunded_at               timestamptz,
    UNIQUE (organization_id, rma_number)
);
CREATE INDEX returns_of_order ON returns (order_id);

CREATE TABLE return_items (
    return_id     uuid NOT NULL REFERENCES returns (id),
    order_item_id uuid NOT NULL REFERENCES order_items (id),
    variant_id    text NOT NULL,
    quantity      int  NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (return_id, order_item_id)
);
