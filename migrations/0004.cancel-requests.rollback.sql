DROP INDEX orders_cancel_requested;
ALTER TABLE orders DROP COLUMN cancel_requested_at;
