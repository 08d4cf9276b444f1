"""Running the service in tests: `dealflow serve` and `dealflow worker` as real processes.

`api_factory` (a fixture in this package's conftest) starts `dealflow serve`
with tokens for it; `start_process` a bare worker; `webhook` posts a signed
e-sign event as the provider would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from dealflow.api import DealService
from dealflow.service.auth import create_token
from dealflow.service.webhooks import sign
from tests.conftest import cli_env, dealflow_executable
from tests.integration.fencing import wait_until

SECRET = "whsec-for-tests"


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Api:
    """A running `dealflow serve` and tokens for it."""

    base: str
    operator: dict[str, str]
    reviewer: dict[str, str]
    proc: subprocess.Popen[str]

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """GET with the operator's token unless other headers are given."""
        return httpx.get(self.base + path, headers=self.operator if headers is None else headers,
                         timeout=60)

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None
             ) -> httpx.Response:
        """POST JSON with the operator's token unless other headers are given."""
        return httpx.post(self.base + path, json=body, timeout=60,
                          headers=self.operator if headers is None else headers)

    def status(self, deal_id: str) -> str:
        """The deal's status as the API reports it."""
        answer = self.get(f"/v1/deals/{deal_id}")
        if answer.status_code == 503:  # "try again": a loaded machine may say so
            return f"unavailable: {answer.text}"
        assert answer.status_code == 200, (answer.status_code, answer.text, log_tail(self.proc))
        return str(answer.json()["status"])


_LOGS: dict[int, Path] = {}


def start_process(database_url: str, *args: str, **env: str) -> subprocess.Popen[str]:
    """`dealflow <args>` on the test database, with the webhook secret and `env`.

    Its standard error goes to a temporary file (never an unread pipe, which
    would stall a chatty server); `log_tail(proc)` reads it for a failure message.
    """
    handle, name = tempfile.mkstemp(prefix="dealflow-proc-", suffix=".log")
    os.close(handle)
    with open(name, "a") as log:  # append mode: the child always writes at the end
        proc = subprocess.Popen([dealflow_executable(), *args],
                                env=cli_env(database_url, DEALFLOW_WEBHOOK_SECRET=SECRET, **env),
                                stdout=subprocess.DEVNULL, stderr=log, text=True)
    _LOGS[proc.pid] = Path(name)
    return proc


def log_tail(proc: subprocess.Popen[str], chars: int = 4000) -> str:
    """The last `chars` characters a process started by `start_process` wrote to stderr."""
    log = _LOGS.get(proc.pid)
    return log.read_text(errors="replace")[-chars:] if log is not None else ""


def stop_process(proc: subprocess.Popen[str]) -> None:
    """SIGTERM (the jobs at hand finish), then SIGKILL after 30 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log = _LOGS.pop(proc.pid, None)
    if log is not None:
        log.unlink(missing_ok=True)


def api_factory_for(service: DealService, database_url: str) -> Iterator[Any]:
    """Start `dealflow serve` with the given workers and environment; stopped after."""
    started: list[subprocess.Popen[str]] = []

    def start(workers: int = 2, **env: str) -> Api:
        port = free_port()
        proc = start_process(database_url, "serve", "--port", str(port), "--workers", str(workers),
                      **env)
        started.append(proc)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(base) or proc.poll() is not None, 120, "the API")
        assert proc.poll() is None, log_tail(proc)
        tag = str(len(started))
        operator = create_token(service.pool, f"ops-{tag}", "operator")
        reviewer = create_token(service.pool, f"rita-{tag}", "reviewer")
        return Api(base, {"Authorization": f"Bearer {operator}"},
                   {"Authorization": f"Bearer {reviewer}"}, proc)

    yield start
    for proc in started:
        stop_process(proc)


def answers(base: str) -> bool:
    """Whether the API at `base` answers its health check."""
    try:
        return httpx.get(base + "/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def webhook(api: Api, body: dict[str, str], secret: str = SECRET) -> httpx.Response:
    """POST an e-sign event signed as the provider signs it."""
    raw = json.dumps(body).encode()
    return httpx.post(api.base + "/v1/webhooks/esign", content=raw, timeout=60,
                      headers={"X-Dealflow-Signature": sign(secret, raw)})


class Receiver:
    """A local notification receiver: records every JSON post, fails the first `fail_first`.

    With `delay_seconds`, it takes that long to answer each post (a slow receiver).
    """

    def __init__(self, fail_first: int = 0, delay_seconds: float = 0) -> None:
        """Listen on a free port of 127.0.0.1 (start with `with Receiver() as receiver`)."""
        self.posts: list[tuple[int, dict[str, Any]]] = []
        self._fail_first = fail_first
        self._delay = delay_seconds
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(receiver._delay)
                with receiver._lock:
                    code = 500 if len(receiver.posts) < receiver._fail_first else 200
                    receiver.posts.append((code, body))
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        """Serve in a thread."""
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop serving."""
        self._server.shutdown()

    def taken(self) -> list[dict[str, Any]]:
        """The messages answered 200, in order."""
        with self._lock:
            return [body for code, body in self.posts if code == 200]
