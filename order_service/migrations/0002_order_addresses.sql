-- Shipping and billing address of an order, as checkout took them (schemas.AddressIn: name,
-- line1, line2, city, postal_code, region, country). Both optional; orders placed before this
-- migration have none. The order events do not carry them (their payloads follow the seeds).
ALTER TABLE orders
    ADD COLUMN shipping_address jsonb CHECK (jsonb_typeof(shipping_address) = 'object'),
    ADD COLUMN billing_address  jsonb CHECK (jsonb_typeof(billing_address) = 'object');
