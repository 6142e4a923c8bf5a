-- Inventory (SPEC §5): bins, bin items, the stock-movement ledger, transactions, reservations.
-- search_path is the service schema, so names are unqualified.

-- A bin is a stock location; `warehouse_id` in order events is its name.
CREATE TABLE bins (
    id              bigserial   PRIMARY KEY,
    organization_id text        NOT NULL,
    name            text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description     text,
    status          int         NOT NULL DEFAULT 1,
    channel         text,
    type            text,
    leaf_bin        boolean     NOT NULL DEFAULT false,
    properties      jsonb       NOT NULL DEFAULT '[]',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- Deleted bins stay for the ledger's sake; the name becomes free again.
    deleted_at      timestamptz
);
CREATE UNIQUE INDEX bins_name ON bins (organization_id, name) WHERE deleted_at IS NULL;

-- One SKU in one bin. atpQty = on_hand - reserved; the database, not only the code, keeps it
-- from going negative.
CREATE TABLE bin_items (
    id                    bigserial   PRIMARY KEY,
    organization_id       text        NOT NULL,
    bin_id                bigint      NOT NULL REFERENCES bins (id),
    sku_id                text        NOT NULL CHECK (length(sku_id) BETWEEN 1 AND 200),
    status                int         NOT NULL DEFAULT 1,
    on_hand               int         NOT NULL DEFAULT 0,
    reserved              int         NOT NULL DEFAULT 0,
    back_ordered_qty      int         NOT NULL DEFAULT 0,
    pre_ordered_qty       int         NOT NULL DEFAULT 0,
    low_stock_threshold   int         NOT NULL DEFAULT 0,
    out_of_stock_threshold int        NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bin_id, sku_id),
    CONSTRAINT bin_items_reserved_not_negative CHECK (reserved >= 0),
    CONSTRAINT bin_items_atp_not_negative CHECK (on_hand - reserved >= 0),
    CONSTRAINT bin_items_back_ordered_not_negative CHECK (back_ordered_qty >= 0),
    CONSTRAINT bin_items_pre_ordered_not_negative CHECK (pre_ordered_qty >= 0),
    CONSTRAINT bin_items_thresholds_not_negative
        CHECK (low_stock_threshold >= 0 AND out_of_stock_threshold >= 0)
);
CREATE INDEX bin_items_sku ON bin_items (organization_id, sku_id);

-- Seed-002 transactions (ADD 1, REMOVE 2, TRANSFER 3, RECONCILE 4). Their quantities are
-- immutable once applied: the ledger rows point here.
CREATE TABLE transactions (
    id               bigserial   PRIMARY KEY,
    organization_id  text        NOT NULL,
    bin_item_id      bigint      NOT NULL REFERENCES bin_items (id),
    type             int         NOT NULL CHECK (type BETWEEN 1 AND 4),
    status           int         NOT NULL DEFAULT 1,
    atp_qty          int         NOT NULL DEFAULT 0,
    back_ordered_qty int         NOT NULL DEFAULT 0,
    from_bin_name    text,
    to_bin_name      text,
    reference_id     text,
    notes            text,
    properties       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reservations (
    id              uuid        PRIMARY KEY,
    organization_id text        NOT NULL,
    order_id        text        NOT NULL,
    status          text        NOT NULL CHECK (status IN
        ('held', 'committed', 'released', 'expired', 'deducted', 'failed')),
    reason          text,
    expires_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, order_id)
);
CREATE INDEX reservations_due ON reservations (expires_at) WHERE status = 'held';

-- What a reservation holds, per bin item. Inactive rows are history (released or expired holds).
CREATE TABLE reservation_items (
    id             bigserial PRIMARY KEY,
    reservation_id uuid      NOT NULL REFERENCES reservations (id),
    bin_item_id    bigint    NOT NULL REFERENCES bin_items (id),
    variant_id     text      NOT NULL,
    warehouse_id   text      NOT NULL,
    quantity       int       NOT NULL CHECK (quantity > 0),
    deducted       int       NOT NULL DEFAULT 0 CHECK (deducted >= 0 AND deducted <= quantity),
    active         boolean   NOT NULL DEFAULT true
);
CREATE INDEX reservation_items_reservation ON reservation_items (reservation_id);
CREATE INDEX reservation_items_bin_item ON reservation_items (bin_item_id) WHERE active;

-- Every quantity change is a row; current quantities equal the sums (see check_ledger).
CREATE TABLE stock_movements (
    id                 bigserial   PRIMARY KEY,
    organization_id    text        NOT NULL,
    bin_item_id        bigint      NOT NULL REFERENCES bin_items (id),
    kind               text        NOT NULL CHECK (kind IN ('adjust', 'add', 'remove',
        'transfer_out', 'transfer_in', 'reconcile', 'reserve', 'release', 'expire', 'deduct',
        'restock')),
    on_hand_delta      int         NOT NULL DEFAULT 0,
    reserved_delta     int         NOT NULL DEFAULT 0,
    back_ordered_delta int         NOT NULL DEFAULT 0,
    pre_ordered_delta  int         NOT NULL DEFAULT 0,
    order_id           text,
    transaction_id     bigint      REFERENCES transactions (id),
    return_id          text,
    reservation_id     uuid,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stock_movements_bin_item ON stock_movements (bin_item_id);

-- order.shipped: one row per shipment, so a redelivered shipment deducts once.
CREATE TABLE shipment_deductions (
    organization_id text        NOT NULL,
    shipment_id     text        NOT NULL,
    order_id        text        NOT NULL,
    deducted_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, shipment_id)
);

-- return.received: what came back, restocked (condition good) or only recorded.
CREATE TABLE return_receipts (
    organization_id text        NOT NULL,
    return_id       text        NOT NULL,
    order_id        text        NOT NULL,
    warehouse_id    text        NOT NULL,
    received_at     timestamptz NOT NULL,
    PRIMARY KEY (organization_id, return_id)
);
CREATE TABLE return_items (
    id              bigserial PRIMARY KEY,
    organization_id text      NOT NULL,
    return_id       text      NOT NULL,
    variant_id      text      NOT NULL,
    quantity        int       NOT NULL CHECK (quantity > 0),
    condition       text      NOT NULL,
    return_reason   text      NOT NULL,
    restocked       boolean   NOT NULL,
    bin_item_id     bigint    REFERENCES bin_items (id)
);

-- The hot path of order.placed in one round trip: take the organization's stock lock, read the
-- order's reservation status and lock the candidate bin items in id order. A row with `status`
-- set (and no bin item) means the order has a reservation (or tombstone) already.
CREATE FUNCTION reservation_candidates(p_organization text, p_order text, p_skus text[])
RETURNS TABLE (status text, id bigint, bin_name text, sku_id text, on_hand int, reserved int,
    back_ordered_qty int, pre_ordered_qty int, low_stock_threshold int,
    out_of_stock_threshold int)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_status text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('inventory:' || p_organization));
    SELECT r.status INTO v_status FROM reservations r
        WHERE r.organization_id = p_organization AND r.order_id = p_order;
    IF v_status IS NOT NULL THEN
        RETURN QUERY SELECT v_status, NULL::bigint, NULL::text, NULL::text, NULL::int, NULL::int,
            NULL::int, NULL::int, NULL::int, NULL::int;
        RETURN;
    END IF;
    RETURN QUERY SELECT NULL::text, bi.id, b.name, bi.sku_id, bi.on_hand, bi.reserved,
            bi.back_ordered_qty, bi.pre_ordered_qty, bi.low_stock_threshold,
            bi.out_of_stock_threshold
        FROM bin_items bi JOIN bins b ON b.id = bi.bin_id
        WHERE bi.organization_id = p_organization AND bi.sku_id = ANY (p_skus)
            AND b.deleted_at IS NULL AND b.status = 1 AND bi.status = 1
        ORDER BY bi.id FOR UPDATE OF bi;
END
$$;
