-- A fact write in one statement (state.fact_store): the writer's fence (p_fenced: it
-- writes for a leased thread), the deal's context lock, the key's current row (read
-- after the lock is granted, by a statement of the function's own: in READ COMMITTED
-- each one takes a new snapshot), the checks, then the value, its change (notified)
-- and its audit entry. `p_after` is unused: the caller passes the count of the rows
-- its statement carries, so that Postgres writes them before it calls the function.
-- Returns 'written', 'unchanged' (the writer's same value again) or 'conflict'
-- (another version than expected: nothing written), with the key's version then.
CREATE FUNCTION dealflow_write_fact(
    p_after bigint, p_fenced boolean, p_thread text, p_token bigint, p_lock text,
    p_key text, p_deal text, p_value jsonb, p_writer text, p_expected integer,
    p_only_own boolean, p_step text, p_agent text, p_checkpoint text, p_channel text)
RETURNS TABLE (outcome text, version integer, updated_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    cur dealflow_context%ROWTYPE;
    found_row boolean;
    current integer;
    expected integer := p_expected;
    written timestamptz;
    change bigint;
BEGIN
    IF p_fenced THEN
        PERFORM dealflow_fence(p_thread, p_token);
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(p_lock, 0));
    SELECT * INTO cur FROM dealflow_context c WHERE c.key = p_key;
    found_row := FOUND;
    current := CASE WHEN found_row THEN cur.version ELSE 0 END;
    IF p_only_own THEN
        expected := CASE WHEN found_row AND cur.writer = p_writer THEN current ELSE 0 END;
    END IF;
    IF found_row AND cur.value = p_value AND cur.writer = p_writer THEN
        RETURN QUERY SELECT 'unchanged'::text, current, cur.updated_at;
        RETURN;
    END IF;
    IF expected IS NOT NULL AND expected <> current THEN
        RETURN QUERY SELECT 'conflict'::text, current, NULL::timestamptz;
        RETURN;
    END IF;
    INSERT INTO dealflow_context AS c (key, deal_id, value, version, writer)
    VALUES (p_key, p_deal, p_value, current + 1, p_writer)
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version,
        writer = EXCLUDED.writer, updated_at = clock_timestamp()
    RETURNING c.updated_at INTO written;
    INSERT INTO dealflow_context_changes (key, deal_id, version, value, writer, thread_id, step)
    VALUES (p_key, p_deal, current + 1, p_value, p_writer, p_thread, p_step)
    RETURNING change_id INTO change;
    PERFORM pg_notify(p_channel, json_build_object('deal_id', p_deal, 'key', p_key,
                                                   'change_id', change)::text);
    INSERT INTO dealflow_audit (deal_id, thread_id, step, agent, action, key, checkpoint_id,
                                detail)
    VALUES (p_deal, p_thread, p_step, p_agent, 'context.write', p_key, p_checkpoint,
            jsonb_build_object('version', current + 1, 'value', p_value));
    RETURN QUERY SELECT 'written'::text, current + 1, written;
END $$;
