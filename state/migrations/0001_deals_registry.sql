-- One row per deal: which thread runs it and the status it last reached.
CREATE TABLE dealflow_deals (
    deal_id     text PRIMARY KEY,
    thread_id   text NOT NULL UNIQUE,
    client      text NOT NULL,
    value       numeric(16, 2) NOT NULL,
    currency    text NOT NULL,
    input       jsonb NOT NULL,
    status      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dealflow_deals_status_idx ON dealflow_deals (status, updated_at DESC);
