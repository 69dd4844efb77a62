DROP INDEX orders_pending;
DROP INDEX orders_accepted;
ALTER TABLE orders DROP COLUMN cancel_seq, DROP COLUMN accepted_seq, DROP COLUMN stp_size;
