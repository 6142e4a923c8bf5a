-- notification_service: contact projection, order facts and the mail outbox.

-- Who to mail about an order: from the saga commands that carry email/fullName. `updated_at` is
-- the creation date of the message it came from, so an older message never overwrites a newer.
CREATE TABLE contacts (
    order_id   uuid        PRIMARY KEY,
    email      text        NOT NULL,
    full_name  text,
    updated_at timestamptz NOT NULL
);

-- What order events tell about an order: its organization, human number and currency.
CREATE TABLE orders (
    order_id        uuid        PRIMARY KEY,
    organization_id text,
    order_number    text,
    currency        text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- return.approved names the return, not the order: return.requested maps one to the other.
CREATE TABLE returns (
    return_id       text        PRIMARY KEY,
    order_id        uuid        NOT NULL,
    organization_id text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- The mail outbox: one row per (message id, template), written in the consumer's transaction.
CREATE TABLE mails (
    id              bigserial   PRIMARY KEY,
    dedup_key       text        NOT NULL UNIQUE,
    message_id      text        NOT NULL,
    order_id        uuid,
    return_id       text,
    organization_id text,
    template        text        NOT NULL,
    params          jsonb       NOT NULL DEFAULT '{}',
    recipient       text,
    subject         text,
    text_body       text,
    html_body       text,
    status          text        NOT NULL,
    attempts        int         NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    CONSTRAINT mails_status CHECK (
        status IN ('waiting_for_contact', 'pending', 'sent', 'failed')),
    -- Only a waiting mail may lack its recipient and rendered content.
    CONSTRAINT mails_rendered CHECK (
        status = 'waiting_for_contact'
        OR (recipient IS NOT NULL AND subject IS NOT NULL
            AND text_body IS NOT NULL AND html_body IS NOT NULL)),
    CONSTRAINT mails_addressed CHECK (order_id IS NOT NULL OR return_id IS NOT NULL)
);
CREATE INDEX mails_due ON mails (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX mails_waiting ON mails (order_id) WHERE status = 'waiting_for_contact';
CREATE INDEX mails_waiting_return ON mails (return_id)
    WHERE status = 'waiting_for_contact' AND order_id IS NULL;
CREATE INDEX mails_of_order ON mails (order_id, id);
