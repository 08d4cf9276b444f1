"""The bench's child processes: `dealflow serve` and `dealflow worker`, started and stopped.

Each child's output goes to a temporary file, shown (its last lines) when it exits early.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import psycopg

EXE = str(Path(sys.executable).parent / "dealflow")


@dataclass
class Proc:
    """A child process and the file its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes]

    def tail(self) -> str:
        """The last lines it wrote."""
        self.log.flush()
        self.log.seek(0)
        return b"\n".join(self.log.read().splitlines()[-15:]).decode(errors="replace")

    def check(self) -> None:
        """Raise if it has exited."""
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")


def child_env(url: str) -> dict[str, str]:
    """The environment of a child: the database URL, PATH, HOME and strict msgpack."""
    env = {"DATABASE_URL": url, "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "LANGGRAPH_STRICT_MSGPACK": os.environ.get("LANGGRAPH_STRICT_MSGPACK", "true")}
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    return env


@contextmanager
def processes() -> Iterator[list[Proc]]:
    """Processes started into the list are stopped on the way out: SIGTERM, wait, then SIGKILL."""
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in started:
            try:
                proc.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=10)
            proc.log.close()


def start(started: list[Proc], name: str, args: list[str], url: str) -> Proc:
    """Start `dealflow *args` on `url` into `started` (a `processes` list)."""
    log = tempfile.TemporaryFile(prefix="dfscale-")  # noqa: SIM115 (closed by `processes`)
    try:
        popen = subprocess.Popen([EXE, *args], env=child_env(url), stdout=log,
                                 stderr=subprocess.STDOUT)
    except OSError:
        log.close()
        raise
    proc = Proc(name, popen, log)
    started.append(proc)
    return proc


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, ready: Callable[[], bool], procs: list[Proc],
             timeout: float = 120) -> None:
    """Poll `ready` until it is true; raise if one of `procs` exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            proc.check()
        with suppress(httpx.HTTPError, psycopg.Error):
            if ready():
                return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")
