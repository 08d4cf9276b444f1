"""The base of every local provider server: routing, scripted faults, a request log.

A provider server is a real HTTP server on 127.0.0.1 (stdlib `ThreadingHTTPServer`
in a thread), so connectors are tested over real sockets. A test scripts
faults per route with `fail(method, pattern, kind, times, after)` (the `after`
first matching requests are served as usual, then `times` fail):
- `drop`: the request is carried out, then the connection is closed unanswered
  (the lost response);
- `drop_before`: the connection is closed before anything is done;
- `429` / `503`: refused with `Retry-After: retry_after` (if given), nothing done;
- `500`: refused before anything is done;
- `kill`: the request is carried out, then `on_kill()` runs (a test kills its
  client there: a SIGKILL between the provider's write and its answer).
`down()` answers every request 503 without `Retry-After` until `up()`.

A server whose class sets `openapi` (the vendor's document, see
`tests.providers.swagger`) checks every request against it before anything
else: a misfit is answered 400 (`misfit`, in the vendor's error shape) and kept
in `violations`, as are 2xx answers that do not fit the document's schema.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar, Self
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from tests.providers.swagger import OpenAPIDocument


@dataclass
class Request:
    """One request as the provider saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def form(self) -> dict[str, str]:
        """The body as `application/x-www-form-urlencoded` pairs (flat keys, as sent)."""
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    @property
    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body or b"null")


@dataclass
class Answer:
    """What a route answers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request, re.Match[str]], Answer]


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    kind: str
    times: int
    retry_after: str | None
    after: int = 0  # matching requests still to serve as usual before this fault applies


class ProviderServer:
    """A provider on a local port: subclasses register routes in `__init__` with `route`."""

    openapi: ClassVar[OpenAPIDocument | None] = None  # the vendor's document, if checked

    def __init__(self, name: str) -> None:
        """An unstarted server; `start()` gives its base URL."""
        self.name = name
        self.lock = threading.RLock()
        self.log: list[tuple[Request, int]] = []  # every request and its status (0: dropped)
        self.violations: list[str] = []  # what did not fit `openapi`
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._faults: list[_Fault] = []
        self._down = False
        self.on_kill: Callable[[], None] = lambda: None
        self.latency = 0.0  # seconds every request takes before it is served
        self._server: ThreadingHTTPServer | None = None

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Serve `method` on paths matching `pattern` (whole path, no query) with `handler`."""
        self._routes.append((method, re.compile(pattern), handler))

    def authorized(self, request: Request) -> bool:
        """Whether the request carries valid credentials (override)."""
        return True

    def misfit(self, problem: str) -> Answer:
        """The vendor's 400 for a request its document does not allow (override)."""
        return Answer(400, {"error": {"message": problem}})

    def fail(self, method: str, pattern: str, kind: str, times: int = 1,
             retry_after: str | None = None, after: int = 0) -> None:
        """The `times` requests to the route after the next `after` fail as `kind` (see above)."""
        with self.lock:
            self._faults.append(_Fault(method, re.compile(pattern), kind, times, retry_after,
                                       after))

    def clear_faults(self) -> None:
        """Forget the scripted faults not yet used."""
        with self.lock:
            self._faults.clear()

    def down(self) -> None:
        """Answer every request 503 (no Retry-After) until `up()`."""
        self._down = True

    def up(self) -> None:
        """Serve again after `down()`."""
        self._down = False

    def requests(self, method: str | None = None, pattern: str | None = None) -> list[Request]:
        """The requests served or dropped so far, optionally of one route."""
        with self.lock:
            return [r for r, _ in self.log if (method is None or r.method == method)
                    and (pattern is None or re.fullmatch(pattern, r.path))]

    def most_in_any(self, seconds: float) -> int:
        """The most requests that arrived within any `seconds` (sliding over the log's times)."""
        with self.lock:
            times = sorted(request.at for request, _ in self.log)
        first = most = 0
        for last, at in enumerate(times):
            while at - times[first] >= seconds:
                first += 1
            most = max(most, last - first + 1)
        return most

    def start(self) -> str:
        """Listen on a free local port; the base URL."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name=f"{self.name}-server").start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Self:
        """Started."""
        self.base_url = self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stopped."""
        self.stop()

    def _fault(self, request: Request) -> _Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.times > 0 and fault.method == request.method \
                        and fault.pattern.fullmatch(request.path):
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.times -= 1
                    return fault
        return None

    def handle(self, request: Request) -> Answer | None:
        """The answer to `request`, or None: close the connection unanswered."""
        if self.openapi is None:
            return self._serve(request)
        problems = self.openapi.request_problems(request)
        if problems:
            with self.lock:
                self.violations.extend(problems)
            return self.misfit(problems[0])
        answer = self._serve(request)
        if answer is not None and 200 <= answer.status < 300:
            wrong = self.openapi.answer_problems(request.method, request.path, answer.status,
                                                 answer.body)
            with self.lock:
                self.violations.extend(wrong)
        return answer

    def _serve(self, request: Request) -> Answer | None:
        fault = self._fault(request)
        if self._down:
            return Answer(503, {"error": {"message": f"{self.name} is down"}})
        if fault is not None and fault.kind == "drop_before":
            return None
        if fault is not None and fault.kind in ("429", "503", "500"):
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return Answer(int(fault.kind), {"error": {"message": f"scripted {fault.kind}"}},
                          headers)
        if not self.authorized(request):
            return Answer(401, {"error": {"message": "invalid credentials"}})
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if method == request.method and match:
                with self.lock:
                    answer = handler(request, match)
                if fault is not None and fault.kind == "kill":
                    self.on_kill()
                return None if fault is not None and fault.kind in ("drop", "kill") else answer
        return Answer(404, {"error": {"message": f"no route {request.method} {request.path}"}})


def _handler_for(provider: ProviderServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body leave at once, as a real server's

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(self.command, parts.path,
                              dict(parse_qsl(parts.query, keep_blank_values=True)),
                              {k.lower(): v for k, v in self.headers.items()},
                              self.rfile.read(length) if length else b"")
            time.sleep(provider.latency)
            answer = provider.handle(request)
            with provider.lock:
                provider.log.append((request, answer.status if answer else 0))
            if answer is None:
                self.close_connection = True
                self.connection.close()
                return
            body = b"" if answer.body is None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            for name, value in {"Content-Type": "application/json", **answer.headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815 (http.server names)

    return _Handler
