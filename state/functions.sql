-- dealflow's one-statement acts, as functions with versioned names (state.functions).
--
-- Applied with CREATE OR REPLACE by every setup (`setup_database`), after the numbered
-- migrations. A function's name carries its version: a change of its arguments or its
-- result is a new name (`_v2`) beside the old one, so during a rolling deploy the old
-- workers keep calling the version they know. Arguments are named: call them with
-- `name => value`. Every audit row is written by `dealflow_audit_v1`.

-- Audit entries, in the order given: a JSON array of objects whose keys are the
-- columns (`state.rows.COLUMNS["audit"]`); an entry whose dedupe_key was written before
-- is dropped. Returns how many were added.
CREATE OR REPLACE FUNCTION dealflow_audit_v1(p_entries jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    added bigint;
BEGIN
    INSERT INTO dealflow_audit (deal_id, thread_id, step, agent, action, key, checkpoint_id,
                                actor, reason, detail, dedupe_key)
    SELECT a.deal_id, a.thread_id, a.step, a.agent, a.action, a.key, a.checkpoint_id,
           a.actor, a.reason, coalesce(a.detail, '{}'::jsonb), a.dedupe_key
    FROM ROWS FROM (jsonb_to_recordset(p_entries) AS (deal_id text, thread_id text,
        step text, agent text, action text, key text, checkpoint_id text, actor text,
        reason text, detail jsonb, dedupe_key text)) WITH ORDINALITY AS a
    ORDER BY a.ordinality
    ON CONFLICT (dedupe_key) DO NOTHING;
    GET DIAGNOSTICS added = ROW_COUNT;
    RETURN added;
END $$;

-- A step's held rows (state.pending.FLUSH): the fence, then each table's rows (p_rows: a
-- JSON object with an array of objects per table, blobs in base64; only the tables that
-- have rows are written), then the audit entries in order. Returns the rows written.
CREATE OR REPLACE FUNCTION dealflow_flush_v1(p_thread text, p_token bigint, p_rows jsonb,
                                             p_audit jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    written bigint := 0;
BEGIN
    PERFORM dealflow_fence(p_thread, p_token);
    IF jsonb_array_length(p_rows -> 'blobs') > 0 THEN
        INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
        SELECT b.thread_id, b.checkpoint_ns, b.channel, b.version, b.type,
               decode(b.blob, 'base64')
        FROM jsonb_to_recordset(p_rows -> 'blobs') AS b(thread_id text, checkpoint_ns text,
            channel text, version text, type text, blob text)
        ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING;
        GET DIAGNOSTICS n = ROW_COUNT; written := written + n;
    END IF;
    IF jsonb_array_length(p_rows -> 'checkpoints') > 0 THEN
        INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                                 checkpoint, metadata)
        SELECT * FROM jsonb_to_recordset(p_rows -> 'checkpoints') AS c(thread_id text,
            checkpoint_ns text, checkpoint_id text, parent_checkpoint_id text,
            checkpoint jsonb, metadata jsonb)
        ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)
        DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata;
        GET DIAGNOSTICS n = ROW_COUNT; written := written + n;
    END IF;
    IF jsonb_array_length(p_rows -> 'writes') > 0 THEN
        INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id,
                                       task_path, idx, channel, type, blob)
        SELECT w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.task_path, w.idx,
               w.channel, w.type, decode(w.blob, 'base64')
        FROM jsonb_to_recordset(p_rows -> 'writes') AS w(thread_id text, checkpoint_ns text,
            checkpoint_id text, task_id text, task_path text, idx int, channel text,
            type text, blob text)
        ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
        DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob
        WHERE EXCLUDED.idx < 0;  -- an error, an interrupt, a resume replace; task writes stay
        GET DIAGNOSTICS n = ROW_COUNT; written := written + n;
    END IF;
    IF jsonb_array_length(p_rows -> 'spans') > 0 THEN
        INSERT INTO dealflow_spans (deal_id, thread_id, node, agent, system, task, attempt,
            started_at, duration_ms, status, error, llm_calls, prompt_tokens,
            completion_tokens)
        SELECT * FROM jsonb_to_recordset(p_rows -> 'spans') AS s(deal_id text,
            thread_id text, node text, agent text, system text, task text, attempt int,
            started_at timestamptz, duration_ms float8, status text, error text,
            llm_calls int, prompt_tokens int, completion_tokens int);
        GET DIAGNOSTICS n = ROW_COUNT; written := written + n;
    END IF;
    IF jsonb_array_length(p_rows -> 'deals') > 0 THEN  -- DF002: a deal runs in one thread
        INSERT INTO dealflow_deals AS d (deal_id, thread_id, client, value, currency, input,
                                         status)
        SELECT * FROM jsonb_to_recordset(p_rows -> 'deals') AS r(deal_id text,
            thread_id text, client text, value numeric, currency text, input jsonb,
            status text)
        ON CONFLICT (deal_id) DO UPDATE SET client = EXCLUDED.client, value = EXCLUDED.value,
            currency = EXCLUDED.currency, input = EXCLUDED.input, updated_at = now(),
            status = CASE WHEN d.thread_id = EXCLUDED.thread_id THEN EXCLUDED.status
                     ELSE dealflow_deal_owned_elsewhere(d.deal_id, d.thread_id) END;
        GET DIAGNOSTICS n = ROW_COUNT; written := written + n;
    END IF;
    IF jsonb_array_length(p_rows -> 'receipts') > 0 THEN
        UPDATE dealflow_effects AS e
        SET status = 'performed', receipt = r.receipt, performed_at = clock_timestamp()
        FROM jsonb_to_recordset(p_rows -> 'receipts') AS r(idempotency_key text, receipt jsonb)
        WHERE e.idempotency_key = r.idempotency_key AND e.status = 'claimed';
        GET DIAGNOSTICS n = ROW_COUNT; written := written + n;
    END IF;
    IF jsonb_array_length(p_audit) > 0 THEN
        written := written + dealflow_audit_v1(p_audit);
    END IF;
    RETURN written;
END $$;

-- A fact write (state.fact_store): the writer's fence (p_fenced: it writes for a leased
-- thread), the audit entries the step made before it (p_before), the deal's context lock, the key's current row (read after the lock is
-- granted: in READ COMMITTED each statement takes a new snapshot), the checks, then the
-- value, its change (notified) and its audit entry. Returns 'written', 'unchanged' (the
-- writer's same value again) or 'conflict' (another version than expected: nothing
-- written), with the key's version then.
CREATE OR REPLACE FUNCTION dealflow_write_fact_v1(
    p_fenced boolean, p_thread text, p_token bigint, p_key text, p_deal text,
    p_value jsonb, p_writer text, p_expected integer, p_only_own boolean, p_step text,
    p_agent text, p_checkpoint text, p_channel text, p_before jsonb DEFAULT '[]')
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
    PERFORM dealflow_audit_v1(p_before);
    PERFORM pg_advisory_xact_lock(hashtextextended('context:' || p_deal, 0));
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
    PERFORM dealflow_audit_v1(jsonb_build_array(jsonb_build_object(
        'deal_id', p_deal, 'thread_id', p_thread, 'step', p_step, 'agent', p_agent,
        'action', 'context.write', 'key', p_key, 'checkpoint_id', p_checkpoint,
        'detail', jsonb_build_object('version', current + 1, 'value', p_value))));
    RETURN QUERY SELECT 'written'::text, current + 1, written;
END $$;

-- A wait's opening (state.waits): the fence, the audit entries the step made before it
-- (p_before), the wait (once: a node that runs again on
-- resume opens nothing), its deadlines (due their delay after the opening, on the
-- database's clock), the `wait.opened` audit entry listing them, and the announcement
-- in the outbox, its `due_at` the last deadline. Returns whether it opened now.
CREATE OR REPLACE FUNCTION dealflow_open_wait_v1(
    p_thread text, p_token bigint, p_key text, p_deal text, p_wait text, p_node text,
    p_detail jsonb, p_names text[], p_actions text[], p_delays interval[], p_agent text,
    p_checkpoint text, p_notice_key text, p_event text, p_message jsonb,
    p_before jsonb DEFAULT '[]')
RETURNS TABLE (opened boolean, deadlines jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    at timestamptz;
    due jsonb;
    expiry timestamptz;
BEGIN
    PERFORM dealflow_fence(p_thread, p_token);
    PERFORM dealflow_audit_v1(p_before);
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
    PERFORM dealflow_audit_v1(jsonb_build_array(jsonb_build_object(
        'deal_id', p_deal, 'thread_id', p_thread, 'step', p_node, 'agent', p_agent,
        'action', 'wait.opened', 'checkpoint_id', p_checkpoint,
        'detail', jsonb_build_object('wait', p_wait, 'wait_key', p_key, 'deadlines', due))));
    IF p_event IS NOT NULL THEN
        INSERT INTO dealflow_outbox (dedupe_key, event, deal_id, thread_id, message)
        VALUES (p_notice_key, p_event, p_deal, p_thread,
                p_message || jsonb_build_object('due_at', expiry))
        ON CONFLICT (dedupe_key) DO NOTHING;
    END IF;
    RETURN QUERY SELECT true, due;
END $$;

-- A wait's claim (state.waits): end the wait with a resolution unless something ended it
-- first; the winner's audit entry, its deadlines settled (the expiry's own, p_deadline,
-- fired; the others cancelled, audited together). A claim that lost returns the wait as
-- it is, read by a statement of its own (a new snapshot: the winner's commit is seen);
-- no row: the thread never stored the wait.
CREATE OR REPLACE FUNCTION dealflow_claim_wait_v1(
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
        PERFORM dealflow_audit_v1(jsonb_build_array(jsonb_build_object(
            'deal_id', p_deal, 'thread_id', p_thread, 'step', p_step,
            'agent', p_agent, 'action', 'wait.answered',
            'checkpoint_id', p_checkpoint, 'actor', p_by,
            'detail', jsonb_build_object('wait_key', p_key, 'resolution', p_resolution))));
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
            PERFORM dealflow_audit_v1(jsonb_build_array(jsonb_build_object(
                'deal_id', p_deal, 'thread_id', p_thread, 'step', p_step,
                'agent', p_agent, 'action', 'deadline.cancelled',
                'checkpoint_id', p_checkpoint, 'actor', p_by,
                'reason', 'the wait ended before they were due',
                'detail', jsonb_build_object('wait_key', p_key, 'deadlines', cancelled))));
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

-- A thread's stamp: its latest checkpoint's id and a digest of that checkpoint's pending
-- writes (an error, an interrupt, a resume written since change it), or NULL for a thread
-- with no checkpoint. `dealflow_deal_reports` serves a report only under the stamp it
-- was made at (state.registry).
CREATE OR REPLACE FUNCTION dealflow_thread_stamp_v1(p_thread text)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    latest text;
    digest text;
BEGIN
    SELECT c.checkpoint_id INTO latest FROM checkpoints c
    WHERE c.thread_id = p_thread AND c.checkpoint_ns = ''
    ORDER BY c.checkpoint_id DESC LIMIT 1;
    IF latest IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT md5(string_agg(w.task_id || '/' || w.idx || '/' || w.channel || '/' || md5(w.blob),
                          ',' ORDER BY w.task_id, w.idx)) INTO digest
    FROM checkpoint_writes w
    WHERE w.thread_id = p_thread AND w.checkpoint_ns = '' AND w.checkpoint_id = latest;
    RETURN latest || ':' || coalesce(digest, '');
END $$;
