-- depends: 0004.cancel-requests
-- Checkpoints of `exchange check`'s replay, so that each run replays only what is new.
--
-- One row per product, the latest: a run restores it, replays the orders and cancels after
-- `seq`, and replaces it when the product's replay passed. Older checkpoints are never read (a
-- doubted checkpoint is replaced by a replay from 0, `exchange check --full`), so keeping them
-- would only grow the table by a whole book per product per run. An upsert from a slower,
-- concurrent check may put back an older checkpoint: that only costs a longer replay next time.
--
-- book: OrderBook.snapshot() of the replayed book at `seq` (the resting orders, their
--   priorities, the engine's rules), as jsonb so that an operator can read it.
-- last_trade_id: the product's last trade when the book was at `seq`.
-- trade_count, trade_digest: the count and the sum of a 64-bit hash of every field the replay
--   compares of the product's trades with trade_id <= last_trade_id; order_count, order_digest:
--   the same over the replay's inputs, the orders with accepted_seq <= seq (matcher/check.py
--   computes both). The next run recomputes them to see that the covered history is unchanged.
CREATE TABLE check_checkpoints (
    product_id    text PRIMARY KEY REFERENCES products (id),
    seq           bigint NOT NULL CHECK (seq >= 0),
    last_trade_id bigint NOT NULL CHECK (last_trade_id >= 0),
    book          jsonb NOT NULL,
    trade_count   bigint NOT NULL,
    trade_digest  numeric NOT NULL,
    order_count   bigint NOT NULL,
    order_digest  numeric NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
