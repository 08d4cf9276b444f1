-- The service: API tokens (stored hashed, shown once) and e-signature webhook
-- deliveries (one row per provider event id: a repeat is recognised, even concurrently).
CREATE TABLE dealflow_api_tokens (
    name        text PRIMARY KEY,
    role        text NOT NULL CHECK (role IN ('operator', 'reviewer')),
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE TABLE dealflow_webhook_events (
    event_id     text PRIMARY KEY,
    envelope_id  text NOT NULL,
    event        text NOT NULL,
    deal_id      text NOT NULL,
    job_id       bigint,
    received_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX dealflow_effects_envelope_idx ON dealflow_effects ((receipt->>'envelope_id'))
    WHERE effect = 'esign.send_envelope';
