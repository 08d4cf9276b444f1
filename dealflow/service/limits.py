"""A cap on request bodies, as a pure ASGI middleware in front of the whole API.

Every HTTP request (the API, the unauthenticated e-sign webhook, the inbox's
forms) may carry at most `max_bytes` of body (`DEALFLOW_MAX_BODY_BYTES`). A
request whose `Content-Length` says more is answered 413 at once: the app never
runs and nothing of the body is read. A body without a length (chunked) is
counted as it streams in, and the chunk that takes it over the cap is never
handed on, so the app holds at most `max_bytes`; the app's reader then raises
`BodyTooLarge`, a 413 the API's error handler answers as `{"error": ...}`
(this middleware answers it itself if the app let it through). Either way the
response closes the connection, since the rest of the body is left unread.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """The request body is over the cap (413)."""

    def __init__(self, max_bytes: int) -> None:
        """The error for a cap of `max_bytes`."""
        super().__init__(413, f"the request body is over the limit of {max_bytes} bytes")


class BodyLimit:
    """Answer 413 to any HTTP request whose body is over `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        """Wrap `app` (add with `app.add_middleware(BodyLimit, max_bytes=...)`)."""
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a declared length over the cap at once; count an undeclared one."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _too_large(scope, receive, send, BodyTooLarge(self.max_bytes))
            return
        request = _CappedRequest(receive, send, self.max_bytes)
        try:
            await self.app(scope, request.receive, request.send)
        except BodyTooLarge as exc:
            if request.started:
                raise
            await _too_large(scope, receive, send, exc)


class _CappedRequest:
    """One request's `receive` that counts body bytes, and `send` that notes the answer."""

    def __init__(self, receive: Receive, send: Send, max_bytes: int) -> None:
        self._receive = receive
        self._send = send
        self._max = max_bytes
        self._seen = 0
        self.over = False
        self.started = False

    async def receive(self) -> Message:
        """The next message; `BodyTooLarge` when the body passes the cap, then a disconnect."""
        if self.over:  # the body was abandoned: nothing more of it is read
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self._seen += len(message.get("body", b""))
            if self._seen > self._max:
                self.over = True
                raise BodyTooLarge(self._max)
        return message

    async def send(self, message: Message) -> None:
        """Pass `message` on; an answer to an over-cap body closes the connection."""
        if message["type"] == "http.response.start":
            self.started = True
            if self.over:  # the body's rest stays unread: the connection cannot be reused
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"connection", b"close")]}
        await self._send(message)


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None without one (or with one the server would refuse)."""
    value = (Headers(scope=scope).get("content-length") or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


async def _too_large(scope: Scope, receive: Receive, send: Send, error: BodyTooLarge) -> None:
    """Answer 413 in the API's error shape, closing the connection."""
    response = JSONResponse({"error": error.detail}, status_code=error.status_code,
                            headers={"connection": "close"})
    await response(scope, receive, send)
