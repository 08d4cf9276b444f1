-- Raised by a registry update that names another thread than the deal's own
-- (SQLSTATE DF002): a deal id runs in one thread. The update can then be sent
-- with a step's checkpoint and still refuse the step (see state.registry).
CREATE FUNCTION dealflow_deal_owned_elsewhere(p_deal text, p_owner text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'DF002', MESSAGE = format(
        'deal %s already runs in thread %s; a deal id has one thread', p_deal, p_owner);
END $$;
