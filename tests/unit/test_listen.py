"""`serve` and `mcp --transport http` on a port in use: one line, exit code 7."""

from __future__ import annotations

import socket

import pytest

from dealflow.errors import CannotListen
from dealflow.service.listen import bind


def test_a_port_in_use_is_one_clear_line_and_exit_code_7() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CannotListen) as refused:
            bind("127.0.0.1", port)
    assert str(refused.value) == (f"port {port} is in use on 127.0.0.1; stop the process that "
                                  "listens there or choose another port with --port")
    assert refused.value.exit_code == 7


def test_a_free_port_is_bound_for_uvicorn() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()
    with pytest.raises(CannotListen, match=r"cannot listen on 192\.0\.2\.1:8000: .*; check --host"):
        bind("192.0.2.1", 8000)  # not an address of this machine
