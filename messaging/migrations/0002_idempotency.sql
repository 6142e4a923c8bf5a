-- Idempotency-Key (SPEC §8): the first response to a key is kept and replayed for the same body.
CREATE TABLE idempotency_keys (
    organization_id text        NOT NULL,
    key             text        NOT NULL,
    request_hash    text        NOT NULL,
    status          int,
    body            bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, key)
);
