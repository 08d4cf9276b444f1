-- The effect ledger: one row per external effect of a deal's step. A step that
-- runs again finds the receipt instead of calling the system a second time.
CREATE TABLE dealflow_effects (
    deal_id      text NOT NULL,
    step         text NOT NULL,
    effect       text NOT NULL,
    status       text NOT NULL CHECK (status IN ('claimed', 'performed')),
    attempts     integer NOT NULL DEFAULT 0,
    receipt      jsonb,
    claimed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    performed_at timestamptz,
    PRIMARY KEY (deal_id, step, effect),
    CHECK ((status = 'performed') = (receipt IS NOT NULL))
);
