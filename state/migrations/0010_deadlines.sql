-- Deadlines on every wait. A wait (a review, a signature) is one row, keyed by
-- the thread and the interrupted task's id; whatever ends it (a person, a
-- signature event, an expiry) claims the row once, so exactly one answer takes
-- effect. Its deadlines are stored when the wait opens and fired by the
-- service's workers (procrastinate jobs scheduled at due_at); a claim cancels
-- the wait's scheduled deadlines in the same transaction.
CREATE TABLE dealflow_waits (
    thread_id    text NOT NULL,
    wait_key     text NOT NULL,
    deal_id      text NOT NULL,
    wait         text NOT NULL,
    node         text NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}',
    opened_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    resolved_at  timestamptz,
    resolved_by  text,
    resolution   jsonb,
    PRIMARY KEY (thread_id, wait_key)
);
CREATE INDEX dealflow_waits_open_idx ON dealflow_waits (thread_id) WHERE resolved_at IS NULL;

CREATE TABLE dealflow_deadlines (
    id          bigserial PRIMARY KEY,
    thread_id   text NOT NULL,
    wait_key    text NOT NULL,
    deal_id     text NOT NULL,
    name        text NOT NULL,
    action      text NOT NULL CHECK (action IN ('remind', 'escalate', 'expire')),
    due_at      timestamptz NOT NULL,
    status      text NOT NULL DEFAULT 'scheduled'
                CHECK (status IN ('scheduled', 'fired', 'cancelled')),
    job_id      bigint,
    settled_at  timestamptz,
    note        text,
    UNIQUE (thread_id, wait_key, name),
    FOREIGN KEY (thread_id, wait_key) REFERENCES dealflow_waits (thread_id, wait_key)
);
CREATE INDEX dealflow_deadlines_due_idx ON dealflow_deadlines (due_at) WHERE status = 'scheduled';
CREATE INDEX dealflow_deadlines_unqueued_idx ON dealflow_deadlines (id)
    WHERE status = 'scheduled' AND job_id IS NULL;
CREATE INDEX dealflow_deadlines_thread_idx ON dealflow_deadlines (thread_id);

-- Notifications: written in the transaction of what they announce, posted by
-- the workers with retries (at least once; `id` lets a receiver de-duplicate).
CREATE TABLE dealflow_outbox (
    id              bigserial PRIMARY KEY,
    dedupe_key      text NOT NULL UNIQUE,
    event           text NOT NULL,
    deal_id         text NOT NULL,
    thread_id       text,
    message         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'skipped')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at         timestamptz,
    last_error      text
);
CREATE INDEX dealflow_outbox_pending_idx ON dealflow_outbox (next_attempt_at)
    WHERE status = 'pending';

-- The sandbox e-sign system's reminders to signers, once per idempotency key.
CREATE TABLE sandbox_esign_reminders (
    reminder_id     bigserial PRIMARY KEY,
    envelope_id     text NOT NULL REFERENCES sandbox_esign_envelopes (envelope_id),
    deal_id         text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    sent_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
