"""`dealflow serve` and `dealflow mcp --transport http` on a busy port: one line, exit 7.

uvicorn's own answer was a log line and exit status 3, the CLI's "unknown deal".
"""

from __future__ import annotations

import socket

import pytest

from tests.conftest import cli_env, run_cli


@pytest.mark.parametrize("command", [["serve", "--workers", "0"], ["mcp", "--transport", "http"]])
def test_a_busy_port_is_a_clear_error_with_its_own_exit_code(database_url: str,
                                                             command: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli([*command, "--port", str(port)], cli_env(database_url), timeout=60,
                       cold=True)
    assert done.returncode == 7, done.stderr
    assert done.stderr == (f"dealflow {command[0]}: error: port {port} is in use on 127.0.0.1; "
                           "stop the process that listens there or choose another port with "
                           "--port\n")
