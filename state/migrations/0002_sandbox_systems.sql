-- The sandbox systems of record: real rows, real constraints, idempotent by key.
CREATE TABLE sandbox_crm_leads (
    id              bigserial PRIMARY KEY,
    deal_id         text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    client          text NOT NULL,
    contact_email   text NOT NULL,
    score           integer NOT NULL CHECK (score BETWEEN 0 AND 10),
    qualified       boolean NOT NULL,
    icp_fit         boolean NOT NULL,
    reasons         jsonb NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sandbox_crm_leads_deal_idx ON sandbox_crm_leads (deal_id);

CREATE SEQUENCE sandbox_pm_project_seq;
CREATE TABLE sandbox_pm_projects (
    project_id      text PRIMARY KEY,
    deal_id         text NOT NULL UNIQUE,
    idempotency_key text NOT NULL UNIQUE,
    name            text NOT NULL,
    template        text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE sandbox_pm_tasks (
    project_id  text NOT NULL REFERENCES sandbox_pm_projects (project_id),
    position    integer NOT NULL,
    title       text NOT NULL,
    owner_role  text NOT NULL,
    due_in_days integer NOT NULL,
    PRIMARY KEY (project_id, position)
);

CREATE SEQUENCE sandbox_contract_seq;
CREATE TABLE sandbox_contracts (
    contract_id      text PRIMARY KEY,
    deal_id          text NOT NULL UNIQUE,
    idempotency_key  text NOT NULL UNIQUE,
    template_version text NOT NULL,
    sha256           text NOT NULL CHECK (length(sha256) = 64),
    body             text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE sandbox_esign_envelope_seq;
CREATE TABLE sandbox_esign_envelopes (
    envelope_id     text PRIMARY KEY,
    deal_id         text NOT NULL UNIQUE,
    idempotency_key text NOT NULL UNIQUE,
    contract_id     text NOT NULL REFERENCES sandbox_contracts (contract_id),
    signer_name     text NOT NULL,
    signer_email    text NOT NULL,
    status          text NOT NULL DEFAULT 'sent',
    sent_at         timestamptz NOT NULL DEFAULT now()
);

-- Gap-free invoice numbers: the counter row is locked and advanced in the
-- same transaction that inserts the invoice, so a rollback leaves no hole.
CREATE TABLE sandbox_billing_counter (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_number bigint NOT NULL
);
INSERT INTO sandbox_billing_counter (last_number) VALUES (0);
CREATE TABLE sandbox_billing_invoices (
    number          text PRIMARY KEY,
    seq             bigint NOT NULL UNIQUE,
    deal_id         text NOT NULL UNIQUE,
    idempotency_key text NOT NULL UNIQUE,
    currency        text NOT NULL,
    lines           jsonb NOT NULL,
    subtotal        numeric(16, 2) NOT NULL,
    tax_rate        numeric(6, 4) NOT NULL,
    tax             numeric(16, 2) NOT NULL,
    total           numeric(16, 2) NOT NULL CHECK (total = subtotal + tax),
    issued_on       date NOT NULL,
    due_on          date NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
