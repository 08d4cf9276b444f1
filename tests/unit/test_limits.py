"""The body cap (`dealflow.service.limits`) as plain ASGI calls, without a server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dealflow.service.limits import BodyLimit, BodyTooLarge

CAP = 1000


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"read": len(await request.body())})


def _call(app: Any, headers: list[tuple[bytes, bytes]], chunks: list[bytes],
          endless: bool = False) -> tuple[list[dict[str, Any]], int]:
    """POST `chunks` to `app`; the messages it sent and how many body chunks it took."""
    sent: list[dict[str, Any]] = []
    taken = 0

    async def receive() -> dict[str, Any]:
        nonlocal taken
        taken += 1
        if endless or taken < len(chunks):
            return {"type": "http.request", "body": chunks[(taken - 1) % len(chunks)],
                    "more_body": True}
        return {"type": "http.request", "body": chunks[-1], "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers,
             "query_string": b"", "http_version": "1.1", "scheme": "http",
             "server": ("test", 80), "client": ("test", 1), "root_path": ""}
    asyncio.run(app(scope, receive, send))
    return sent, taken


def _status(sent: list[dict[str, Any]]) -> int:
    return int(sent[0]["status"])


def _app() -> BodyLimit:
    return BodyLimit(Starlette(routes=[Route("/", _echo, methods=["POST"])]), max_bytes=CAP)


def test_a_declared_length_over_the_cap_is_refused_before_anything_is_read() -> None:
    ran: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        ran.append(True)

    sent, taken = _call(BodyLimit(app, max_bytes=CAP),
                        [(b"content-length", str(64 * 1024 * 1024).encode())], [b"x" * 100])
    assert (ran, taken, _status(sent)) == ([], 0, 413)
    assert (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"]) == {
        "error": f"the request body is over the limit of {CAP} bytes"}


def test_an_undeclared_body_is_cut_off_at_the_cap() -> None:
    """Chunks of 300 bytes, without end: the fourth takes it over, and no fifth is read."""
    sent, taken = _call(_app(), [(b"transfer-encoding", b"chunked")], [b"x" * 300],
                        endless=True)
    assert (_status(sent), taken) == (413, 4)
    assert (b"connection", b"close") in sent[0]["headers"]


def test_a_body_up_to_the_cap_is_read_whole() -> None:
    sent, _ = _call(_app(), [(b"content-length", str(CAP).encode())],
                    [b"x" * 400, b"x" * 400, b"x" * 200])
    assert _status(sent) == 200 and json.loads(sent[1]["body"]) == {"read": CAP}
    assert (b"connection", b"close") not in sent[0]["headers"]


def test_an_app_that_lets_the_error_through_gets_the_413_from_the_middleware() -> None:
    after: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            while (await receive()).get("more_body"):
                pass
        except BodyTooLarge:
            after.append((await receive())["type"])  # the body was abandoned
            raise

    sent, taken = _call(BodyLimit(app, max_bytes=CAP), [], [b"x" * 600], endless=True)
    assert (_status(sent), taken, after) == (413, 2, ["http.disconnect"])


def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    async def nothing() -> dict[str, Any]:
        return {}

    async def drop(message: Any) -> None:
        return None

    asyncio.run(BodyLimit(app, max_bytes=CAP)({"type": "lifespan"}, nothing, drop))
    assert seen == ["lifespan"]
