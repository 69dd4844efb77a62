-- depends: 0001.initial-schema
-- What the matcher needs beyond the first schema.
--
-- stp_size: base units taken off an order by self-trade prevention (decrement) without a trade.
--   With filled_size it gives the size still open, which is what the book is rebuilt from.
-- accepted_seq: the sequence number of the first event of the order's submit, i.e. its arrival
--   order at the engine. NULL for an order never submitted (still pending, or cancelled while
--   pending). `exchange check` replays a product's submits and cancels in this order.
-- cancel_seq: the sequence number of the Done event of an explicit cancel, NULL otherwise.
ALTER TABLE orders
    ADD COLUMN stp_size     numeric(78, 0) NOT NULL DEFAULT 0 CHECK (stp_size >= 0),
    ADD COLUMN accepted_seq bigint,
    ADD COLUMN cancel_seq   bigint;

CREATE UNIQUE INDEX orders_accepted ON orders (product_id, accepted_seq)
    WHERE accepted_seq IS NOT NULL;
-- The sweeper's question: which orders of my products are still pending, oldest first.
CREATE INDEX orders_pending ON orders (product_id, created_at) WHERE status = 'pending';
