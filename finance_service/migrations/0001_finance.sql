-- The checkout saga (SPEC §6). search_path is the service schema: names are unqualified.

-- One row per order. Correlated by the BookWorm orderId, which is globally unique, so the table
-- is organization-agnostic (the saga messages carry no organization).
CREATE TABLE sagas (
    order_id    uuid        PRIMARY KEY,
    state       text        NOT NULL CHECK (state IN ('Placed', 'Completed', 'Cancelled', 'Failed')),
    -- PlaceOrderCommands sent in the current run (the first one counts; a replay starts again).
    attempts    int         NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    basket_id   uuid        NOT NULL,
    full_name   text,
    email       text,
    total_money numeric     NOT NULL,
    -- The durable timeout: when the periodic job acts on a Placed saga; NULL when none is due.
    timeout_at  timestamptz,
    -- Optimistic concurrency: every write is `UPDATE ... WHERE version = <the version read>`.
    version     int         NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (timeout_at IS NULL OR state = 'Placed')
);
-- The timeout job only ever scans sagas with a timeout, in due order.
CREATE INDEX sagas_due ON sagas (timeout_at) WHERE timeout_at IS NOT NULL;
CREATE INDEX sagas_by_state ON sagas (state, updated_at);

-- Every transition with the message that caused it (for a timeout or a replay, an id of its own).
CREATE TABLE saga_transitions (
    id         bigserial   PRIMARY KEY,
    order_id   uuid        NOT NULL REFERENCES sagas (order_id),
    from_state text,
    to_state   text        NOT NULL,
    message_id text        NOT NULL,
    -- What caused it: the integration event's name, 'timeout' or 'replay'.
    cause      text        NOT NULL,
    at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX saga_transitions_by_order ON saga_transitions (order_id, id);
