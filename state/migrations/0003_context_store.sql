-- The shared context store: one row per key (its current version) and an
-- append-only log of every version, which subscribers read to catch up.
CREATE TABLE dealflow_context (
    key         text PRIMARY KEY,
    deal_id     text NOT NULL,
    value       jsonb NOT NULL,
    version     integer NOT NULL CHECK (version >= 1),
    writer      text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX dealflow_context_deal_idx ON dealflow_context (deal_id);

CREATE TABLE dealflow_context_changes (
    change_id   bigserial PRIMARY KEY,
    key         text NOT NULL,
    deal_id     text NOT NULL,
    version     integer NOT NULL,
    value       jsonb NOT NULL,
    writer      text NOT NULL,
    thread_id   text,
    step        text,
    written_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (key, version)
);
CREATE INDEX dealflow_context_changes_deal_idx ON dealflow_context_changes (deal_id, change_id);
