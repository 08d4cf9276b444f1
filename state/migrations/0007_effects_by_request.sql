-- Effects are keyed by what they ask for, not only by deal and step: a fork with
-- other terms performs its own effects, a retry of the same request gets the receipt.
ALTER TABLE dealflow_effects
    ADD COLUMN idempotency_key text,
    ADD COLUMN fingerprint     text,
    ADD COLUMN request         jsonb,
    ADD COLUMN thread_id       text,
    ADD COLUMN checkpoint_id   text;
UPDATE dealflow_effects SET idempotency_key = deal_id || ':' || step, fingerprint = '';
ALTER TABLE dealflow_effects
    ALTER COLUMN idempotency_key SET NOT NULL,
    ALTER COLUMN fingerprint SET NOT NULL,
    DROP CONSTRAINT dealflow_effects_pkey,
    ADD PRIMARY KEY (idempotency_key);
CREATE INDEX dealflow_effects_deal_idx ON dealflow_effects (deal_id, claimed_at);

-- A deal may hold records of more than one branch (time travel): one per request,
-- not one per deal. A repeated idempotency key with other arguments is refused.
ALTER TABLE sandbox_pm_projects DROP CONSTRAINT sandbox_pm_projects_deal_id_key;
CREATE INDEX sandbox_pm_projects_deal_idx ON sandbox_pm_projects (deal_id);
ALTER TABLE sandbox_contracts DROP CONSTRAINT sandbox_contracts_deal_id_key;
CREATE INDEX sandbox_contracts_deal_idx ON sandbox_contracts (deal_id);
ALTER TABLE sandbox_esign_envelopes DROP CONSTRAINT sandbox_esign_envelopes_deal_id_key;
CREATE INDEX sandbox_esign_envelopes_deal_idx ON sandbox_esign_envelopes (deal_id);
ALTER TABLE sandbox_esign_envelopes
    ADD COLUMN void_key    text UNIQUE,
    ADD COLUMN void_reason text,
    ADD COLUMN voided_at   timestamptz,
    ADD CONSTRAINT sandbox_esign_envelopes_status_check CHECK (status IN ('sent', 'voided'));
ALTER TABLE sandbox_billing_invoices DROP CONSTRAINT sandbox_billing_invoices_deal_id_key;
CREATE INDEX sandbox_billing_invoices_deal_idx ON sandbox_billing_invoices (deal_id);
CREATE TABLE sandbox_requests (
    idempotency_key text PRIMARY KEY,
    system          text NOT NULL,
    request_hash    text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
