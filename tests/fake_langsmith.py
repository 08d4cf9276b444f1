"""A local HTTP server that answers LangSmith's ingestion API and keeps what it gets.

`GET /info`, `POST /runs/multipart`, `POST /runs/batch` (and run PATCHes).
`runs()` merges the multipart parts (`post.<id>`, `.extra`, `.inputs`, ...) per run.
"""

from __future__ import annotations

import email
import json
import re
import threading
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INFO = {"version": "0.10.0", "instance_flags": {},
        "batch_ingest_config": {"use_multipart_endpoint": True, "size_limit": 100,
                                "size_limit_bytes": 20971520, "scale_up_qsize_trigger": 1000,
                                "scale_up_nthreads_limit": 16, "scale_down_nempty_trigger": 4}}


class FakeLangSmith:
    """Serve on 127.0.0.1 (free port); `bodies` holds every raw request body."""

    def __init__(self) -> None:
        """Start serving."""
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def _reply(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                server.requests.append(("GET", self.path, dict(self.headers), b""))
                self._reply(INFO if self.path.startswith("/info") else {})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append((self.command, self.path, dict(self.headers), body))
                self._reply({})

            do_PATCH = do_POST  # noqa: N815 (the handler's method naming)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    @property
    def raw(self) -> bytes:
        """Everything that was sent, concatenated."""
        return b"\n".join(body for *_, body in self.requests)

    def runs(self) -> dict[str, dict[str, Any]]:
        """Runs by id, with `extra`, `inputs`, `outputs`... merged in."""
        runs: dict[str, dict[str, Any]] = {}
        for _method, path, headers, body in self.requests:
            if path.startswith("/runs/multipart"):
                for name, data in _parts(headers.get("Content-Type", ""), body):
                    _kind, run_id, *field = name.split(".", 2)
                    run = runs.setdefault(run_id, {"id": run_id})
                    if field:
                        run[field[0]] = data
                    else:
                        run.update(data)
            elif path.startswith("/runs/batch"):
                batch = json.loads(body)
                for run in [*batch.get("post", []), *batch.get("patch", [])]:
                    runs.setdefault(str(run["id"]), {}).update(run)
        return runs

    def close(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._httpd.server_close()


def _parts(content_type: str, body: bytes) -> list[tuple[str, Any]]:
    boundary = re.search(r"boundary=([^;]+)", content_type)
    if not boundary:
        return []
    message = email.message_from_bytes(
        f"Content-Type: multipart/form-data; boundary={boundary.group(1)}\r\n\r\n".encode()
        + body, policy=policy.HTTP)
    parts = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        parts.append((str(name), json.loads(payload) if payload else None))
    return parts
