-- A fact write's first statement: the writer's fence (p_fenced: it writes for a
-- leased thread), the deal's context lock, then the key's current row. The row is
-- read after the lock is granted, by a statement of the function's own (in READ
-- COMMITTED each one takes a new snapshot), so it sees the last writer's commit.
CREATE FUNCTION dealflow_lock_fact(p_fenced boolean, p_thread text, p_token bigint,
                                   p_lock text, p_key text)
RETURNS TABLE (value jsonb, version integer, writer text, updated_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_fenced THEN
        PERFORM dealflow_fence(p_thread, p_token);
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(p_lock, 0));
    RETURN QUERY SELECT c.value, c.version, c.writer, c.updated_at
                 FROM dealflow_context c WHERE c.key = p_key;
END $$;
