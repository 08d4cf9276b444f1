"""A PgBouncer of the test's own: transaction pooling in front of the test's Postgres.

`running_pgbouncer(url)` starts Debian's `pgbouncer` on a free port with a
temporary ini (`pool_mode = transaction`, `auth_type = trust`, every database
forwarded to the server of `url`) and yields the URL of the same database
through it. `direct_sockets(pid, port)` tells the local ports of a process's
connections to the server, to find the sessions it opened itself, not through the pooler.
"""

from __future__ import annotations

import getpass
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.integration.service_procs import free_port

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
MISSING = (f"pgbouncer is not installed ({PGBOUNCER} missing; apt-get install pgbouncer): "
           ".ci/run installs it, so CI runs this test")

_INI = """[databases]
* = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
idle_transaction_timeout = 30
server_reset_query =
{run_as}"""


def installed() -> bool:
    """Whether the pgbouncer binary is there."""
    return os.access(PGBOUNCER, os.X_OK)


def version() -> tuple[int, ...]:
    """The installed PgBouncer's version, e.g. (1, 18, 0)."""
    out = subprocess.run([PGBOUNCER, "--version"], capture_output=True, text=True,
                         check=True).stdout
    found = re.search(r"PgBouncer (\d+)\.(\d+)(?:\.(\d+))?", out)
    assert found is not None, out
    return tuple(int(part or 0) for part in found.groups())


@contextmanager
def running_pgbouncer(url: str, pool_size: int = 4) -> Iterator[str]:
    """PgBouncer in transaction mode in front of `url`'s server; `url` through it.

    `pool_size` server sessions per database and user (`default_pool_size`):
    few, so that clients really share them. Stopped (by its pid) after.
    """
    params = conninfo_to_dict(url)
    user = str(params.get("user") or getpass.getuser())
    server = {k: params[k] for k in ("host", "port", "password") if params.get(k)}
    folder = Path(tempfile.mkdtemp(prefix="dfbouncer-"))
    folder.chmod(0o755)  # read by the unprivileged user it switches to as root
    (folder / "users.txt").write_text(f'"{user}" ""\n')
    port = free_port()
    ini = folder / "pgbouncer.ini"
    ini.write_text(_INI.format(
        server=" ".join(f"{k}={v}" for k, v in server.items()), port=port,
        users=folder / "users.txt", pool_size=pool_size,
        run_as=f"user = {_unprivileged(server.get('host', ''))}\n" if os.geteuid() == 0
        else ""))  # it refuses to run as root
    for name in ("users.txt", "pgbouncer.ini"):
        (folder / name).chmod(0o644)
    log = (folder / "pgbouncer.log").open("w")
    proc = subprocess.Popen([PGBOUNCER, str(ini)], stdout=log, stderr=subprocess.STDOUT)
    pooled = make_conninfo("", **{k: v for k, v in params.items() if k != "password"}
                           | {"host": "127.0.0.1", "port": str(port)})
    try:
        _wait_until_it_answers(pooled, proc, folder / "pgbouncer.log")
        yield pooled
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def _unprivileged(host: str) -> str:
    """Whom PgBouncer runs as under root: the owner of a server's socket folder, or nobody."""
    if host.startswith("/"):  # the embedded server's socket, in a folder only it may enter
        return pwd.getpwuid(Path(host).stat().st_uid).pw_name
    return "nobody"


def _wait_until_it_answers(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not start: {log.read_text()[-2000:]}"
                                   ) from None
            time.sleep(0.1)


def direct_sockets(pid: int, server_port: int) -> set[int]:
    """The local ports of process `pid`'s TCP connections to `server_port` (its own)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == server_port:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
