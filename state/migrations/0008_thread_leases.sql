-- Fenced ownership of a thread: one lease per thread, with a fencing token that
-- only grows. Every ledger claim, receipt, fact write and checkpoint write calls
-- dealflow_fence in its own transaction, so a process whose lease was taken over
-- (or has expired) fails its next write instead of acting twice.
CREATE SEQUENCE dealflow_lease_tokens;
CREATE TABLE dealflow_leases (
    thread_id   text PRIMARY KEY,
    token       bigint NOT NULL,
    owner       text NOT NULL,
    host        text NOT NULL,
    pid         integer NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at  timestamptz NOT NULL
);

-- Raises SQLSTATE DF001 unless the writer may write to the thread: a writer
-- holding token p_token must hold the thread's live lease with that token; a
-- writer without a lease (p_token NULL) must not meet another's live lease.
-- FOR SHARE keeps a takeover waiting until the writer's transaction ends.
CREATE FUNCTION dealflow_fence(p_thread text, p_token bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    held dealflow_leases%ROWTYPE;
BEGIN
    SELECT * INTO held FROM dealflow_leases WHERE thread_id = p_thread FOR SHARE;
    IF p_token IS NULL THEN
        IF FOUND AND held.expires_at > clock_timestamp() THEN
            RAISE EXCEPTION USING ERRCODE = 'DF001', MESSAGE = format(
                'thread %s is leased to %s until %s; this writer holds no lease',
                p_thread, held.owner, held.expires_at);
        END IF;
    ELSIF NOT FOUND OR held.token <> p_token THEN
        RAISE EXCEPTION USING ERRCODE = 'DF001', MESSAGE = format(
            'thread %s: lease %s was taken over by %s (lease %s)',
            p_thread, p_token, coalesce(held.owner, 'nobody'), held.token);
    ELSIF held.expires_at <= clock_timestamp() THEN
        RAISE EXCEPTION USING ERRCODE = 'DF001', MESSAGE = format(
            'thread %s: lease %s expired at %s', p_thread, p_token, held.expires_at);
    END IF;
END $$;

-- Which lease claimed an effect: a second performer is refused while it is alive.
ALTER TABLE dealflow_effects ADD COLUMN claimant_token bigint;
