-- A wait's claim in one statement (state.waits): end the wait with a resolution unless
-- something ended it first; the winner's audit entry, its deadlines settled (the
-- expiry's own, p_deadline, fired; the others cancelled, audited together). A claim
-- that lost returns the wait as it is, read by a statement of its own (a new
-- snapshot: the winner's commit is seen); no row: the thread never stored the wait.
CREATE FUNCTION dealflow_claim_wait(
    p_thread text, p_key text, p_resolution jsonb, p_by text, p_deadline bigint,
    p_deal text, p_step text, p_agent text, p_checkpoint text)
RETURNS TABLE (o_won boolean, o_thread_id text, o_wait_key text, o_deal_id text, o_wait text,
               o_node text, o_opened_at timestamptz, o_resolved_at timestamptz,
               o_resolved_by text, o_resolution jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    w dealflow_waits%ROWTYPE;
    cancelled jsonb;
BEGIN
    UPDATE dealflow_waits AS x SET resolved_at = clock_timestamp(), resolved_by = p_by,
        resolution = p_resolution
    WHERE x.thread_id = p_thread AND x.wait_key = p_key AND x.resolved_at IS NULL
    RETURNING x.* INTO w;
    IF FOUND THEN
        INSERT INTO dealflow_audit (deal_id, thread_id, step, agent, action, checkpoint_id,
                                    actor, detail)
        VALUES (p_deal, p_thread, p_step, p_agent, 'wait.answered', p_checkpoint, p_by,
                jsonb_build_object('wait_key', p_key, 'resolution', p_resolution));
        WITH settled AS (
            UPDATE dealflow_deadlines AS d
            SET status = CASE WHEN d.id = p_deadline THEN 'fired' ELSE 'cancelled' END,
                settled_at = clock_timestamp(),
                note = CASE WHEN d.id = p_deadline THEN 'fired'
                            ELSE format('the wait ended first (%s)', p_by) END
            WHERE d.thread_id = p_thread AND d.wait_key = p_key AND d.status = 'scheduled'
            RETURNING d.id, d.name, d.status)
        SELECT jsonb_agg(s.name ORDER BY s.id) FILTER (WHERE s.status = 'cancelled')
        INTO cancelled FROM settled AS s;
        IF cancelled IS NOT NULL THEN
            INSERT INTO dealflow_audit (deal_id, thread_id, step, agent, action, checkpoint_id,
                                        actor, reason, detail)
            VALUES (p_deal, p_thread, p_step, p_agent, 'deadline.cancelled', p_checkpoint,
                    p_by, 'the wait ended before they were due',
                    jsonb_build_object('wait_key', p_key, 'deadlines', cancelled));
        END IF;
        RETURN QUERY SELECT true, w.thread_id, w.wait_key, w.deal_id, w.wait, w.node,
                            w.opened_at, w.resolved_at, w.resolved_by, w.resolution;
        RETURN;
    END IF;
    SELECT * INTO w FROM dealflow_waits AS x WHERE x.thread_id = p_thread AND x.wait_key = p_key;
    IF FOUND THEN
        RETURN QUERY SELECT false, w.thread_id, w.wait_key, w.deal_id, w.wait, w.node,
                            w.opened_at, w.resolved_at, w.resolved_by, w.resolution;
    END IF;
END $$;
