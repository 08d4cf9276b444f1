-- A wait's opening in one statement (state.waits): the fence, the wait (once: a node
-- that runs again on resume opens nothing), its deadlines (due their delay after the
-- opening, on the database's clock), the `wait.opened` audit entry listing them, and
-- the announcement in the outbox, its `due_at` the last deadline. `p_after` is unused:
-- the caller passes the count of the rows its statement carries, so that Postgres
-- writes them before it calls the function. Returns whether the wait opened now, and
-- its deadlines as audited.
CREATE FUNCTION dealflow_open_wait(
    p_after bigint, p_thread text, p_token bigint, p_key text, p_deal text, p_wait text,
    p_node text, p_detail jsonb, p_names text[], p_actions text[], p_delays interval[],
    p_step text, p_agent text, p_checkpoint text, p_notice_key text, p_event text,
    p_message jsonb)
RETURNS TABLE (opened boolean, deadlines jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    at timestamptz;
    due jsonb;
    expiry timestamptz;
BEGIN
    PERFORM dealflow_fence(p_thread, p_token);
    INSERT INTO dealflow_waits AS w (thread_id, wait_key, deal_id, wait, node, detail)
    VALUES (p_thread, p_key, p_deal, p_wait, p_node, p_detail)
    ON CONFLICT DO NOTHING RETURNING w.opened_at INTO at;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, NULL::jsonb;
        RETURN;
    END IF;
    INSERT INTO dealflow_deadlines (thread_id, wait_key, deal_id, name, action, due_at)
    SELECT p_thread, p_key, p_deal, d.name, d.action, at + d.delay
    FROM unnest(p_names, p_actions, p_delays) WITH ORDINALITY AS d(name, action, delay, n)
    ORDER BY d.n;
    SELECT coalesce(jsonb_agg(jsonb_build_object('name', d.name, 'due_at', at + d.delay)
                              ORDER BY d.n), '[]'::jsonb), max(at + d.delay)
    INTO due, expiry
    FROM unnest(p_names, p_delays) WITH ORDINALITY AS d(name, delay, n);
    INSERT INTO dealflow_audit (deal_id, thread_id, step, agent, action, checkpoint_id, detail)
    VALUES (p_deal, p_thread, p_step, p_agent, 'wait.opened', p_checkpoint,
            jsonb_build_object('wait', p_wait, 'wait_key', p_key, 'deadlines', due));
    IF p_event IS NOT NULL THEN
        INSERT INTO dealflow_outbox (dedupe_key, event, deal_id, thread_id, message)
        VALUES (p_notice_key, p_event, p_deal, p_thread,
                p_message || jsonb_build_object('due_at', expiry))
        ON CONFLICT (dedupe_key) DO NOTHING;
    END IF;
    RETURN QUERY SELECT true, due;
END $$;
