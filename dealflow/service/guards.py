"""The service's front door: the Host rule, security headers, and 429 answers.

- **Host** (DNS-rebinding protection, the same rule as `dealflow mcp`): a request
  is answered only if its Host names localhost (`localhost`, `127.0.0.1`,
  `[::1]`), the address the server was reached at (the host `serve` binds to;
  an IP literal cannot be rebound), or a name in `DEALFLOW_ALLOWED_HOSTS`; any
  port. Anything else, a missing Host included, is 400 `{"error": ...}`.
- **Headers** on every answer: a strict `Content-Security-Policy` (scripts,
  styles, images and fetches from this origin only, nothing inline, no
  framing, forms post here only: the inbox ships its one script and stylesheet
  under `/inbox/static`), `X-Frame-Options: DENY`, `X-Content-Type-Options:
  nosniff` and `Referrer-Policy: same-origin`. The API's own docs pages
  (`/docs`, `/redoc`: Swagger UI and ReDoc, served from here by `docs`) get
  `DOCS_POLICY`: this origin only too, plus the inline styles and the `data:`
  images and `blob:` workers those two use.
- **429**: a `Throttled` authentication is answered with `Retry-After`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dealflow.service.auth import Throttled
from dealflow.service.docs import PAGES as DOCS_PAGES
from state.config import Settings

LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_WILDCARDS = ("", "0.0.0.0", "::", "[::]")
_HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]/@\s]+)(?::[0-9]{1,5})?")

STRICT_POLICY = "; ".join((
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'",
    "connect-src 'self'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"))
DOCS_POLICY = "; ".join((
    "default-src 'none'", "script-src 'self'", "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:", "font-src 'self'", "connect-src 'self'", "worker-src 'self' blob:",
    "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"))


def as_host(address: str) -> str:
    """`address` as it appears in a Host header: lower case, an IPv6 address bracketed."""
    name = address.strip().lower()
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def allowed_host_names(bound: str | None, extra: Iterable[str]) -> list[str]:
    """The Host names clients may use: localhost, `bound` (unless a wildcard), `extra`."""
    hosts = [*LOCAL_HOSTS, *([as_host(bound)] if bound and as_host(bound) not in _WILDCARDS
                             else []), *(as_host(name) for name in extra)]
    return list(dict.fromkeys(hosts))


def host_name(header: str | None) -> str | None:
    """The name in a Host header (`deals.example.com:8000` → `deals.example.com`), or None."""
    match = _HOST_HEADER.fullmatch(header or "")
    return match.group(1).lower() if match else None


def security_headers(docs: bool = False) -> dict[str, str]:
    """The headers every answer carries (`docs`: the policy of the API's docs pages)."""
    return {"Content-Security-Policy": DOCS_POLICY if docs else STRICT_POLICY,
            "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin"}


class FrontDoor:
    """ASGI middleware: refuse a Host not allowed (400), add the security headers."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str],
                 docs_paths: Sequence[str | None] = ()) -> None:
        """Wrap `app`; `allowed_hosts` adds to localhost; `docs_paths` get DOCS_POLICY."""
        self.app = app
        self.allowed = frozenset(allowed_host_names(None, allowed_hosts))
        self.docs_paths = frozenset(path for path in docs_paths if path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request (other scopes pass through untouched)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope["path"] in self.docs_paths)

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers.setdefault(name, value)
            await send(message)

        refusal = self.refusal(scope)
        if refusal is not None:
            await JSONResponse({"error": refusal}, 400)(scope, receive, send_secured)
            return
        await self.app(scope, receive, send_secured)

    def refusal(self, scope: Scope) -> str | None:
        """Why this request's Host is refused, or None if it is allowed."""
        raw = Headers(scope=scope).get("host")
        if not raw:
            return "missing Host header"
        name = host_name(raw)
        server = scope.get("server")
        if name is not None and (name in self.allowed or (
                server is not None and name == as_host(str(server[0])))):
            return None
        return (f"host {raw[:80]!r} is not served here; add its name to "
                "DEALFLOW_ALLOWED_HOSTS")


def install(app: FastAPI, settings: Settings) -> None:
    """Put the front door on `app`: the Host rule, the headers, 429 with Retry-After.

    Call it last in building the app: an unexpected error is answered outside every
    middleware, so its handler (if any) is wrapped to add the headers too.
    """
    app.add_middleware(FrontDoor, allowed_hosts=settings.allowed_hosts,
                       docs_paths=(*DOCS_PAGES, app.docs_url, app.redoc_url,
                                   app.swagger_ui_oauth2_redirect_url))
    app.add_exception_handler(Throttled, _throttled)
    unexpected = app.exception_handlers.get(Exception)
    if unexpected is not None:
        app.add_exception_handler(Exception, _with_headers(unexpected))


async def _throttled(request: Request, exc: Exception) -> Response:
    retry = exc.retry_after if isinstance(exc, Throttled) else 60
    return JSONResponse({"error": str(exc)}, 429, headers={"Retry-After": str(retry)})


def _with_headers(handler: Callable[..., Any]) -> Callable[..., Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        response = handler(request, exc)
        if isinstance(response, Awaitable):
            response = await response
        for name, value in security_headers().items():
            response.headers.setdefault(name, value)
        return response

    return handle
