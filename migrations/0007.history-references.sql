-- depends: 0006.write-checks
-- The references of trades and ledger rows to orders and products are not checked by foreign
-- keys, row by row; the writer proves them, and `exchange check` verifies them.
--
-- Why: a batch of 10 orders writes about 50 ledger rows and 5 trades, and each of these
-- foreign keys is a trigger that looks up and share-locks the referenced row once per row
-- written: about 150 lookups per batch, a large share of the batch's time in Postgres. Every
-- one of them re-proves what the same transaction has just proven: the matcher writes a trade
-- or a ledger row only for orders the batch updates, and that UPDATE fails the batch unless
-- every one of them is a live order of the product (write_check EX003); the product's row is
-- the fence the batch updates first (EX002). Orders and products are never deleted. The
-- ledger's link to its balance is left to 0008, which drops it on the same grounds.
--
-- `exchange check` (matcher/check.py) reports a trade whose orders are missing or of another
-- product, and a ledger row whose order or product is missing.
ALTER TABLE trades
    DROP CONSTRAINT trades_maker_order_id_fkey,
    DROP CONSTRAINT trades_taker_order_id_fkey,
    DROP CONSTRAINT trades_product_id_fkey;
ALTER TABLE ledger_entries
    DROP CONSTRAINT ledger_entries_order_id_fkey,
    DROP CONSTRAINT ledger_entries_product_id_fkey;
