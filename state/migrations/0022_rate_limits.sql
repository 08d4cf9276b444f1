-- Rate limits shared by every process on this database (agents/systems/rate_limits.py):
-- per provider, the calls of its sliding window and a pause its own 429 asked for.
-- A call holds its slot from the grant until a window after its answer came back
-- (`released`, `at` restamped then): the provider saw it somewhere in between, so in any
-- window of the declared length it sees at most the limit, whatever the network's delays.
CREATE TABLE dealflow_rate_limits (
    provider      text PRIMARY KEY,
    paused_until  timestamptz            -- no slot before this (a 429's Retry-After)
);
CREATE TABLE dealflow_rate_calls (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider  text NOT NULL,
    at        timestamptz NOT NULL,      -- granted; once released, when the answer was back
    released  boolean NOT NULL DEFAULT false
);
CREATE INDEX dealflow_rate_calls_provider_idx ON dealflow_rate_calls (provider, at);

-- Take a slot of `p_provider`'s limit (`p_limit` calls per `p_window` seconds), under the
-- lock of the provider's row (slots are granted in one order, on one clock): calls that
-- left the window are forgotten (an unreleased one `p_stale` seconds later: its process
-- died in flight), the rest counted; under the limit the call is recorded and its id
-- returned (`o_wait` 0), else no slot and the seconds until one may be free (a call still
-- in flight is taken to end now). `p_pause` > 0 records a pause of that many seconds
-- first (a 429's Retry-After): no slot is granted before it ends, to any process.
CREATE FUNCTION dealflow_rate_slot(p_provider text, p_limit integer, p_window double precision,
                                   p_stale double precision, p_pause double precision)
RETURNS TABLE (o_slot bigint, o_wait double precision)
LANGUAGE plpgsql AS $$
DECLARE
    span interval := make_interval(secs => p_window);
    paused timestamptz;
    at_now timestamptz;
    used integer;
    slot bigint;
BEGIN
    INSERT INTO dealflow_rate_limits (provider) VALUES (p_provider) ON CONFLICT DO NOTHING;
    SELECT r.paused_until INTO paused FROM dealflow_rate_limits AS r
    WHERE r.provider = p_provider FOR UPDATE;
    at_now := clock_timestamp();  -- after the lock
    IF p_pause > 0 THEN
        paused := greatest(paused, at_now + make_interval(secs => p_pause));
        UPDATE dealflow_rate_limits AS r SET paused_until = paused
        WHERE r.provider = p_provider;
    END IF;
    IF paused > at_now THEN
        RETURN QUERY SELECT NULL::bigint, extract(epoch FROM paused - at_now)::double precision;
        RETURN;
    END IF;
    DELETE FROM dealflow_rate_calls AS c
    WHERE c.provider = p_provider AND c.at <= at_now - span
      AND (c.released OR c.at <= at_now - span - make_interval(secs => p_stale));
    SELECT count(*) INTO used FROM dealflow_rate_calls AS c WHERE c.provider = p_provider;
    IF used < p_limit THEN
        INSERT INTO dealflow_rate_calls (provider, at) VALUES (p_provider, at_now)
        RETURNING id INTO slot;
        RETURN QUERY SELECT slot, 0::double precision;
        RETURN;
    END IF;
    RETURN QUERY SELECT NULL::bigint, extract(epoch FROM s.leaves - at_now)::double precision
    FROM (SELECT CASE WHEN c.released THEN c.at ELSE at_now END + span AS leaves
          FROM dealflow_rate_calls AS c WHERE c.provider = p_provider
          ORDER BY 1 OFFSET used - p_limit LIMIT 1) AS s;
END $$;

-- A step attempt a rate limit held back (its job deferred) is a span of its own status,
-- `deferred`: not a failed attempt in `dealflow stats` and `trace`. The old rows fit.
ALTER TABLE dealflow_spans DROP CONSTRAINT dealflow_spans_status_check,
    ADD CONSTRAINT dealflow_spans_status_check
        CHECK (status IN ('ok', 'error', 'waiting', 'deferred')) NOT VALID;
