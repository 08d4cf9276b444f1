"""Pool sizes and the direct URL: what each process's connections are built with."""

from __future__ import annotations

import procrastinate

from dealflow.service.queue_connector import DirectListenConnector, queue_connector
from state.config import Settings
from state.database import PoolExhausted, connection_kwargs, pool_options, pool_timeout

POOLER = "postgresql://app@bouncer:6432/deals"
SERVER = "postgresql://app@db:5432/deals"


def test_the_pools_take_their_sizes_and_wait_from_the_settings() -> None:
    settings = Settings.from_env({"DATABASE_URL": SERVER, "DEALFLOW_POOL_MIN_SIZE": "2",
                                  "DEALFLOW_POOL_MAX_SIZE": "6",
                                  "DEALFLOW_POOL_TIMEOUT_SECONDS": "4.5"})
    assert pool_options(settings) == {"min_size": 2, "max_size": 6, "wait_seconds": 4.5,
                                      "pooled": False}
    assert pool_options(Settings()) == {"min_size": 1, "max_size": 10, "wait_seconds": 30,
                                        "pooled": False}


def test_a_direct_url_of_its_own_makes_the_database_url_a_transaction_poolers() -> None:
    pooled = Settings(database_url=POOLER, direct_database_url=SERVER)
    assert pool_options(pooled)["pooled"] is True
    same = Settings(database_url=SERVER, direct_database_url=SERVER)
    assert pool_options(same)["pooled"] is False
    kwargs = connection_kwargs(pooled=True)
    assert kwargs["prepare_threshold"] is None and "options" not in kwargs
    assert kwargs["autocommit"] is True
    direct = connection_kwargs()
    assert direct["prepare_threshold"] == 0 and "idle_in_transaction" in direct["options"]


def test_the_queue_listens_directly_only_behind_a_pooler() -> None:
    pooled = Settings(database_url=POOLER, direct_database_url=SERVER, queue_pool_max_size=3)
    connector = queue_connector(POOLER, pooled)
    assert isinstance(connector, DirectListenConnector)
    plain = queue_connector(SERVER, Settings(database_url=SERVER))
    assert type(plain) is procrastinate.PsycopgConnector


def test_a_timeout_says_whether_the_pool_was_exhausted() -> None:
    full = {"pool_max": 4, "pool_size": 4, "pool_available": 0}
    exhausted = pool_timeout(full, 2.0, "DEALFLOW_POOL_MAX_SIZE")
    assert isinstance(exhausted, PoolExhausted)
    assert "all 4 of this process's pool are in use (raise DEALFLOW_POOL_MAX_SIZE" in str(
        exhausted)
    down = pool_timeout({"pool_max": 4, "pool_size": 0, "pool_available": 0}, 2.0, "X")
    assert not isinstance(down, PoolExhausted)  # an outage: no connection could be made
