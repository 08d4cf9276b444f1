-- Retention's second tier (`dealflow prune --forget-before`, DEALFLOW_FORGET_AFTER): a deal
-- that ended long ago is forgotten whole. Everything dealflow held about it (its registry
-- row, audit trail, effect ledger, facts, spans, waits and deadlines, outbox rows, lease,
-- prunes and what is left of its checkpoints) is written to its archive, then deleted;
-- this row is all that stays, so that `dealflow status` and `history` can say when it was
-- forgotten and where the archive is. The sandbox systems' tables stand for external
-- systems of record and are not touched. One row per forgotten deal (an id is unique
-- while its deal is registered, so a row per forget: `id` orders them).
CREATE TABLE dealflow_forgotten_deals (
    id            bigserial PRIMARY KEY,
    deal_id       text NOT NULL,
    thread_id     text NOT NULL,
    status        text NOT NULL,             -- how it ended (`completed`, `declined`, ...)
    ended_at      timestamptz NOT NULL,      -- the registry row's last update
    forgotten_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    rows_deleted  integer NOT NULL,
    archive       text                       -- NULL: forgotten with --no-archive
);
CREATE INDEX dealflow_forgotten_deals_deal_idx ON dealflow_forgotten_deals (deal_id);
CREATE INDEX dealflow_forgotten_deals_thread_idx ON dealflow_forgotten_deals (thread_id);

-- The audit trail stays append-only, but for a deal being forgotten: its rows may be
-- deleted once its tombstone is written (the forget writes it first, in the same
-- transaction). An UPDATE is refused as before.
CREATE OR REPLACE FUNCTION dealflow_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (SELECT FROM dealflow_forgotten_deals AS f
                                    WHERE f.deal_id = OLD.deal_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'dealflow_audit is append-only (% refused)', TG_OP;
END $$;
