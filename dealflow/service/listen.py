"""The listening socket of `dealflow serve` and `dealflow mcp --transport http`.

Bound here, before uvicorn starts, so that a port in use is one line and exit
code 7 (`CannotListen`), not uvicorn's log line and its exit status 3, which the
CLI uses for "unknown deal".
"""

from __future__ import annotations

import errno
import socket

from dealflow.errors import CannotListen


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port`, as uvicorn binds one (uvicorn listens on it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise CannotListen(_why(host, port, exc)) from None
    sock.set_inheritable(True)
    return sock


def _why(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} is in use on {host}; stop the process that listens there or "
                "choose another port with --port")
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on {host}:{port}; choose a port above 1023 with --port"
    reason = exc.strerror or type(exc).__name__
    return f"cannot listen on {host}:{port}: {reason}; check --host and --port"
