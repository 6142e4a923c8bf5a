-- The messaging runtime's tables, created in every service schema (search_path is the schema).

-- Transactional outbox: written in the caller's transaction, published by the relay.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    message_id      text        NOT NULL,
    exchange        text        NOT NULL,
    routing_key     text        NOT NULL,
    type            text        NOT NULL,
    app_id          text        NOT NULL,
    correlation_id  text,
    subject         text,
    reply_to        text,
    headers         jsonb       NOT NULL DEFAULT '{}',
    body            bytea       NOT NULL,
    created_at      timestamptz NOT NULL,
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    sent_at         timestamptz,
    failed_at       timestamptz
);
-- The relay only ever scans what is still to send, in id order.
CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL AND failed_at IS NULL;

-- Idempotent consumer: one row per (consumer queue, message id), written with the effects.
CREATE TABLE inbox (
    consumer     text        NOT NULL,
    message_id   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

-- Messages a consumer gave up on, with the reason; listed and replayed by operators.
CREATE TABLE dead_letters (
    id             bigserial PRIMARY KEY,
    queue          text        NOT NULL,
    message_id     text        NOT NULL,
    exchange       text        NOT NULL,
    routing_key    text        NOT NULL,
    type           text,
    app_id         text,
    correlation_id text,
    reply_to       text,
    headers        jsonb       NOT NULL DEFAULT '{}',
    body           bytea       NOT NULL,
    reason         text        NOT NULL,
    attempts       int         NOT NULL DEFAULT 1,
    failed_at      timestamptz NOT NULL DEFAULT now(),
    replayed_at    timestamptz,
    replay_count   int         NOT NULL DEFAULT 0
);
CREATE INDEX dead_letters_pending ON dead_letters (queue, id) WHERE replayed_at IS NULL;
