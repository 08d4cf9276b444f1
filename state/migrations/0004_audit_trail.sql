-- The audit trail: appended, never updated or deleted (a trigger refuses both).
CREATE TABLE dealflow_audit (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    deal_id       text NOT NULL,
    thread_id     text,
    step          text,
    agent         text NOT NULL,
    action        text NOT NULL,
    key           text,
    checkpoint_id text,
    actor         text,
    reason        text,
    detail        jsonb NOT NULL DEFAULT '{}'::jsonb,
    dedupe_key    text UNIQUE
);
CREATE INDEX dealflow_audit_deal_idx ON dealflow_audit (deal_id, id);

CREATE FUNCTION dealflow_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'dealflow_audit is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER dealflow_audit_no_change BEFORE UPDATE OR DELETE ON dealflow_audit
    FOR EACH ROW EXECUTE FUNCTION dealflow_audit_append_only();
