-- A sandbox system's request log, checked by the statement that serves the request.
-- Logs the request under its idempotency key, or finds the one logged before (a
-- request of another transaction that committed while this one waited included);
-- the same key with another request is refused with SQLSTATE DF003, which undoes
-- the whole statement (agents.systems.sandbox_base maps it to IdempotencyConflict).
CREATE FUNCTION sandbox_accept(p_key text, p_system text, p_hash text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    logged text;
BEGIN
    INSERT INTO sandbox_requests (idempotency_key, system, request_hash)
    VALUES (p_key, p_system, p_hash) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        SELECT request_hash INTO logged FROM sandbox_requests WHERE idempotency_key = p_key;
        IF logged IS DISTINCT FROM p_hash THEN
            RAISE EXCEPTION USING ERRCODE = 'DF003', MESSAGE = format(
                '%s: idempotency key %s was used before with other arguments', p_system, p_key);
        END IF;
    END IF;
    RETURN true;
END $$;
