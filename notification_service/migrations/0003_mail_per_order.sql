-- notification_service: one mail per order and template.

-- The key of a mail was `<message id>:<template>`, so every PlaceOrderCommand the saga re-sent
-- (a new message id each time) wrote the same mail again. It is now `order:<order id>:<template>`
-- (`return:<return id>:<template>` for return mail). The oldest mail of each order and template
-- takes the new key, so a message that asks for it again after this migration writes nothing;
-- the duplicates written before keep their old key and are left as they are.
WITH keyed AS (
    SELECT id,
           CASE WHEN return_id IS NOT NULL THEN 'return:' || return_id
                ELSE 'order:' || order_id::text END || ':' || template AS new_key
    FROM mails
), oldest AS (
    SELECT DISTINCT ON (new_key) id, new_key FROM keyed ORDER BY new_key, id
)
UPDATE mails m SET dedup_key = oldest.new_key FROM oldest WHERE m.id = oldest.id;
