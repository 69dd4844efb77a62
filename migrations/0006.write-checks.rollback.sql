DROP FUNCTION write_check(boolean, text, text);
