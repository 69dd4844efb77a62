-- depends: 0005.check-checkpoints
-- A check that fails inside a statement, so that a multi-statement write needs no client-side
-- check between its statements and its commit.
--
-- The matcher sends a batch's statements and commits them in one round trip (an implicit
-- transaction that ends at the pipeline's Sync: committed if every statement succeeded, rolled
-- back if one failed). Its checks (the fence still holds, every order row was still live,
-- no balance went below zero) must therefore abort the transaction on the server:
--   SELECT write_check(count(*) = 3, 'EX002', 'fenced') FROM ...
-- raises SQLSTATE `code` with `message` when `ok` is false, and returns true otherwise.
-- Codes (class EX, ours): EX001 insufficient funds, EX002 fenced, EX003 order row not live.
CREATE FUNCTION write_check(ok boolean, code text, message text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message;
    END IF;
    RETURN true;
END
$$;
