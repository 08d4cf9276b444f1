-- Local spans: one row per node attempt, written by the span recorder callback.
CREATE TABLE dealflow_spans (
    id                bigserial PRIMARY KEY,
    deal_id           text NOT NULL,
    thread_id         text NOT NULL,
    node              text NOT NULL,
    agent             text NOT NULL,
    system            text,
    task              text,
    attempt           integer NOT NULL DEFAULT 1,
    started_at        timestamptz NOT NULL,
    duration_ms       double precision NOT NULL CHECK (duration_ms >= 0),
    status            text NOT NULL CHECK (status IN ('ok', 'error', 'waiting')),
    error             text,
    llm_calls         integer NOT NULL DEFAULT 0,
    prompt_tokens     integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0
);
CREATE INDEX dealflow_spans_thread_idx ON dealflow_spans (thread_id, started_at);
CREATE INDEX dealflow_spans_time_idx ON dealflow_spans (started_at);
