-- depends: 0003.market-data
-- A cancel is recorded before its message is sent, so a failed send is not lost.
--
-- cancel_requested_at: when the owner first asked to cancel the order (DELETE /orders...),
--   NULL if never. The API sets it before sending the cancel message; the matcher's sweeper
--   re-sends the cancel of a live order whose request is older than a few seconds. Once the
--   order is done the column is history: nothing reads it.
ALTER TABLE orders ADD COLUMN cancel_requested_at timestamptz;

-- The sweeper's question: which orders of my products are still live with a cancel requested,
-- oldest request first. Small: an order leaves the index when it is done.
CREATE INDEX orders_cancel_requested ON orders (product_id, cancel_requested_at)
    WHERE cancel_requested_at IS NOT NULL AND status IN ('pending', 'open');
