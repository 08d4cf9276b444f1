-- A fact write is one statement since 0015 (dealflow_write_fact takes the fence, the
-- deal's lock and the version check itself); 0012's separate lock-and-read has no caller.
DROP FUNCTION IF EXISTS dealflow_lock_fact(boolean, text, bigint, text, text);
